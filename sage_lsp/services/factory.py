"""Build the backend that the settings ask for: an endpoint backend (``backends/``), or one
whose model server sage-lsp runs itself (:mod:`sage_lsp.services.managed_backend`).

It sits above both, so the backends never import the services that run models.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sage_lsp.backends.base import Backend
from sage_lsp.backends.mock import MockBackend
from sage_lsp.backends.openai_compat import ENDPOINTS, OpenAICompatibleBackend
from sage_lsp.config import Settings
from sage_lsp.core.errors import BackendError, ErrorKind

if TYPE_CHECKING:
    from sage_lsp.services.manager import ProgressCallback


def create_backend(settings: Settings, on_progress: ProgressCallback | None = None) -> Backend:
    """Return a new backend for ``settings.backend``; raises :class:`BackendError` if unusable.

    ``on_progress`` hears how a managed model service is being prepared (merge, start).
    """
    if settings.backend == "mock":
        return MockBackend()
    # The backend manager is imported only when needed: not at the language server's start-up.
    if settings.backend == "finetune":
        from sage_lsp.services.managed_backend import finetune_backend

        return finetune_backend(settings, on_progress)
    if settings.backend == "vllm" and settings.model and not settings.base_url:
        from sage_lsp.services.managed_backend import managed_vllm_backend

        return managed_vllm_backend(settings, on_progress)
    if settings.backend in ENDPOINTS:
        return OpenAICompatibleBackend(
            settings.backend,
            base_url=settings.base_url,
            model=settings.model,
            api_key=settings.api_key,
            timeout=settings.request_timeout_seconds,
        )
    raise BackendError(ErrorKind.CONFIG, f"unknown backend {settings.backend!r}")
