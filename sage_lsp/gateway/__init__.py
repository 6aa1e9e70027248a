"""The gateway (``sage serve``): an OpenAI-compatible HTTP server in front of the backend
manager, so that any OpenAI-speaking tool uses the user's finetuned models (docs/gateway.md)."""
