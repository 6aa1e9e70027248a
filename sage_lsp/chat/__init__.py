"""Conversations and the engine that runs one chat turn against a backend."""
