"""The gateway's dashboard: the page at ``/`` (static files, no key needed) and the API its
calls go to, under ``/api/*`` with the key: the state of the models, services and recent
requests, a service's log tail, and the start and stop of a model."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from sage_lsp.core.errors import InvalidInput, SageError
from sage_lsp.gateway.app import Gateway, openai_error, refused
from sage_lsp.gateway.pool import UnknownModel
from sage_lsp.services import logfile
from sage_lsp.services.registry import ServiceEntry
from sage_lsp.services.store import check_name

STATIC = Path(__file__).resolve().parent / "static"
"""The page, its script and its style sheet."""
LOG_LINES = 100
"""How many log lines ``/api/logs/{name}`` answers unless ``?lines=N`` says otherwise."""
MAX_LOG_LINES = 2000
PAGE_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
"""The page's Content-Security-Policy: its own script and style only, calls to its origin."""

Handler = Callable[[Request], Awaitable[Response]]


def service_json(gateway: Gateway, entry: ServiceEntry, now: float) -> dict[str, Any]:
    """One running service as the dashboard shows it."""
    holders = [
        {"pid": h.pid, "session": h.session, "gateway": h == gateway.pool.manager.holder}
        for h in entry.live_holders()
    ]
    return {
        "name": entry.name,
        "served_model_name": entry.served_model_name,
        "port": entry.port,
        "state": entry.state,
        "message": entry.message,
        "holders": holders,
        "version": entry.version,
        "base_model": entry.base_model,
        "adapters": sorted(entry.adapters),
        "started_at": entry.started_at,
        "uptime": max(0.0, now - entry.started_at),
    }


def snapshot(gateway: Gateway) -> dict[str, Any]:
    """What ``GET /api/state`` answers: the models (the store's and those of running
    services) with their state, the services, the recent requests and the chart's series."""
    now = time.time()
    pool = gateway.pool
    store = set(pool.store_models())
    services = pool.running()
    ports = {entry.name: entry.port for entry in services}
    for entry in services:  # adapter mode: a finetuned model served by its base's vLLM
        for adapter in entry.adapters:
            ports.setdefault(adapter, entry.port)
    models = [
        {
            "name": name,
            "finetuned": name in store,
            "state": pool.state(name),
            "failure": pool.failure(name),
            "port": ports.get(name),
        }
        for name in sorted(store | set(ports))
    ]
    return {
        "now": now,
        "models": models,
        "services": [service_json(gateway, entry, now) for entry in services],
        "requests": gateway.recent.latest(),
        "series": gateway.recent.series(now),
    }


def known(gateway: Gateway, name: str) -> bool:
    """Whether ``name`` is a finetuned model of the store or has a registry entry."""
    if name in gateway.pool.store_models():
        return True
    try:
        check_name(name)
    except InvalidInput:
        return False
    return gateway.pool.manager.registry.read(name) is not None


def not_found(name: str) -> Response:
    """404 for a model the gateway does not know, as a request for it is answered."""
    return refused(UnknownModel(name), name)


def log_lines(request: Request) -> int | None:
    """``?lines=N`` (default :data:`LOG_LINES`, at most :data:`MAX_LOG_LINES`); None if it
    is not a positive number."""
    text = request.query_params.get("lines", str(LOG_LINES))
    try:
        lines = int(text)
    except ValueError:
        return None
    return min(lines, MAX_LOG_LINES) if lines > 0 else None


def api_routes(gateway: Gateway, guarded: Callable[[Handler], Handler]) -> list[BaseRoute]:
    """The dashboard's ``/api/*`` routes, each behind ``guarded`` (the key)."""

    async def state(_: Request) -> Response:
        return JSONResponse(await asyncio.to_thread(snapshot, gateway))

    async def logs(request: Request) -> Response:
        name = request.path_params["name"]
        lines = log_lines(request)
        if lines is None:
            return openai_error(
                400, "`lines` must be a positive number", "invalid_request_error", None
            )
        try:
            check_name(name)  # before it names a registry file
        except InvalidInput:
            return not_found(name)
        entry = await asyncio.to_thread(gateway.pool.manager.registry.read, name)
        if entry is None:
            return openai_error(
                404, f"`{name}` has no service, so no log", "invalid_request_error", None
            )
        tail = await asyncio.to_thread(
            logfile.tail, Path(entry.log_path), lines, secret=entry.api_key
        )
        return JSONResponse({"name": name, "path": entry.log_path, "lines": tail})

    async def start(request: Request) -> Response:
        name = request.path_params["name"]
        try:
            handle = await gateway.pool.start(name)
        except SageError as exc:
            return refused(exc, name)
        return JSONResponse({"name": name, "state": "ready", "port": handle.port})

    async def stop(request: Request) -> Response:
        name = request.path_params["name"]
        if not await asyncio.to_thread(known, gateway, name):
            return not_found(name)
        stopped = await gateway.pool.stop(name)
        return JSONResponse({"name": name, "stopped": stopped})

    return [
        Route("/api/state", guarded(state)),
        Route("/api/logs/{name}", guarded(logs)),
        Route("/api/models/{name}/start", guarded(start), methods=["POST"]),
        Route("/api/models/{name}/stop", guarded(stop), methods=["POST"]),
    ]


def page_routes() -> list[BaseRoute]:
    """``/`` (the page) and ``/static/*`` (its script and style sheet), with no key."""

    async def page(_: Request) -> Response:
        return FileResponse(
            STATIC / "dashboard.html",
            headers={"Content-Security-Policy": PAGE_POLICY, "Cache-Control": "no-cache"},
        )

    return [Route("/", page), Mount("/static", StaticFiles(directory=STATIC), name="static")]
