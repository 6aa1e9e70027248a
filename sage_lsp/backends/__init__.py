"""Backends: what answers a chat turn (mock, OpenAI-compatible servers, finetuned models)."""
