"""Build the backend that the settings ask for."""

from __future__ import annotations

from sage_lsp.backends.base import Backend, BackendError, ErrorKind
from sage_lsp.backends.mock import MockBackend
from sage_lsp.backends.openai_compat import ENDPOINTS, OpenAICompatibleBackend
from sage_lsp.config import Settings


def create_backend(settings: Settings) -> Backend:
    """Return a new backend for ``settings.backend``; raises :class:`BackendError` if unusable."""
    if settings.backend == "mock":
        return MockBackend()
    if settings.backend in ENDPOINTS:
        return OpenAICompatibleBackend(
            settings.backend,
            base_url=settings.base_url,
            model=settings.model,
            api_key=settings.api_key,
            timeout=settings.request_timeout_seconds,
        )
    raise BackendError(
        ErrorKind.CONFIG,
        f"the {settings.backend} backend is not available in this version of sage-lsp",
        "use --backend vllm with a running vLLM server, or --backend mock",
    )
