"""Handlers of ``sage/backend/status``, ``sage/backend/start`` and ``sage/backend/stop``."""

from __future__ import annotations

from sage_lsp import protocol
from sage_lsp.server.routes import Request


async def status(request: Request[protocol.Empty]) -> protocol.BackendStatus:
    """The backend's state now."""
    return request.session.status()


async def start(request: Request[protocol.Empty]) -> protocol.BackendStatus:
    """Prepare the backend now; fails with the backend's error."""
    await request.server.configured()
    await request.session.backend()
    return request.session.status()


async def stop(request: Request[protocol.Empty]) -> protocol.BackendStatus:
    """Release this session's hold on the backend."""
    await request.session.stop_backend()
    return request.session.status()
