"""Handlers of ``sage/models`` and ``sage/services``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sage_lsp import protocol
from sage_lsp.server.errors import check_no_params
from sage_lsp.services.store import ModelStore

if TYPE_CHECKING:
    from sage_lsp.server.app import SageServer
    from sage_lsp.services.registry import ServiceEntry


def service_info(entry: ServiceEntry) -> protocol.ServiceInfo:
    """A registry entry as the protocol reports it (without its API key)."""
    return protocol.ServiceInfo(
        name=entry.name,
        served_model_name=entry.served_model_name,
        port=entry.port,
        pid=entry.pid,
        state=entry.state,
        owned=True,
        holders=len(entry.live_holders()),
        log_path=entry.log_path,
        started_at=entry.started_at,
    )


class ServiceHandlers:
    """The model-store and service-registry method group of one server."""

    def __init__(self, server: SageServer) -> None:
        self.server = server

    def register(self) -> None:
        """Register every handler of the group with the server."""
        self.server.route(protocol.MODELS, self.models)
        self.server.route(protocol.SERVICES, self.services)

    async def models(self, params: Any) -> dict[str, Any]:
        """Every finetuned model of the store."""
        check_no_params(params, protocol.MODELS)
        store = ModelStore(self.server.session.settings.sage_home)
        models = [
            protocol.ModelInfo(m.name, m.base_model, m.state, str(m.path)) for m in store.list()
        ]
        wire: dict[str, Any] = protocol.to_wire(protocol.ModelsResult(models))
        return wire

    async def services(self, params: Any) -> dict[str, Any]:
        """Every live service of the registry."""
        check_no_params(params, protocol.SERVICES)
        from sage_lsp.services.registry import Registry  # filelock: not at start-up

        entries = Registry(self.server.session.settings.paths.run_dir).live_entries()
        result = protocol.ServicesResult([service_info(e) for e in entries])
        wire: dict[str, Any] = protocol.to_wire(result)
        return wire
