"""Handlers of ``sage/backend/status``, ``sage/backend/start`` and ``sage/backend/stop``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sage_lsp import protocol
from sage_lsp.backends.base import BackendError
from sage_lsp.server.errors import check_no_params, rpc_error

if TYPE_CHECKING:
    from sage_lsp.server.app import SageServer


class BackendHandlers:
    """The backend method group of one server."""

    def __init__(self, server: SageServer) -> None:
        self.server = server
        self.session = server.session

    def register(self) -> None:
        """Register every handler of the group with the server."""
        self.server.route(protocol.BACKEND_STATUS, self.status)
        self.server.route(protocol.BACKEND_START, self.start)
        self.server.route(protocol.BACKEND_STOP, self.stop)

    def _status(self) -> dict[str, Any]:
        wire: dict[str, Any] = protocol.to_wire(self.session.status())
        return wire

    async def status(self, params: Any) -> dict[str, Any]:
        """The backend's state now."""
        check_no_params(params, protocol.BACKEND_STATUS)
        return self._status()

    async def start(self, params: Any) -> dict[str, Any]:
        """Prepare the backend now; fails with the backend's error."""
        check_no_params(params, protocol.BACKEND_START)
        await self.server.configured()
        try:
            await self.session.backend()
        except BackendError as exc:
            raise rpc_error(exc) from None
        return self._status()

    async def stop(self, params: Any) -> dict[str, Any]:
        """Release this session's hold on the backend."""
        check_no_params(params, protocol.BACKEND_STOP)
        await self.session.stop_backend()
        return self._status()
