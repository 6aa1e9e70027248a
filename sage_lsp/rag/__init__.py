"""Retrieval over docs: chunking, the SQLite FTS5 index, and passages for the prompt."""
