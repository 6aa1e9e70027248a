"""Handlers of ``sage/models`` and ``sage/services``."""

from __future__ import annotations

import dataclasses

from sage_lsp import protocol
from sage_lsp.server.routes import Request
from sage_lsp.services.manager import held_service
from sage_lsp.services.registry import Registry, ServiceEntry
from sage_lsp.services.store import ModelStore


def service_info(entry: ServiceEntry) -> protocol.ServiceInfo:
    """A registry entry as ``sage/services`` reports it: held, with its state."""
    return protocol.ServiceInfo(**dataclasses.asdict(held_service(entry)), state=entry.state)


async def models(request: Request[protocol.Empty]) -> protocol.ModelsResult:
    """Every finetuned model of the store."""
    store = ModelStore(request.session.settings.sage_home)
    return protocol.ModelsResult(
        [protocol.ModelInfo(m.name, m.base_model, m.state, str(m.path)) for m in store.list()]
    )


async def services(request: Request[protocol.Empty]) -> protocol.ServicesResult:
    """Every live service of the registry."""
    entries = Registry(request.session.settings.paths.run_dir).live_entries()
    return protocol.ServicesResult([service_info(e) for e in entries])
