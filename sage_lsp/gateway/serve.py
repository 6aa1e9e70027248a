"""Run the gateway: its key, its settings, uvicorn, and a clean stop on SIGTERM."""

from __future__ import annotations

import threading
import time
import webbrowser
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import quote

import uvicorn

from sage_lsp.config import Settings
from sage_lsp.gateway.app import Gateway, build_app
from sage_lsp.gateway.keys import default_key_path, load_or_create_key
from sage_lsp.gateway.metrics import GatewayMetrics
from sage_lsp.gateway.pool import ModelPool
from sage_lsp.services.manager import ServiceManager

GRACEFUL_SECONDS = 5
"""How long a stop waits for open requests before closing them (then the services stop)."""


@dataclass(frozen=True)
class ServeOptions:
    """``sage serve``'s options."""

    host: str = "127.0.0.1"
    port: int = 8765
    ttl: float = 300.0
    """Seconds a model stays held after its last request; 0: until the gateway stops."""
    key_file: Path | None = None
    """Where the key is; None: ``$SAGE_HOME/run/gateway.key``, created on first start."""
    max_models: int = 0
    """How many models' services the gateway runs at once; 0: no limit. Past it a request
    for another model waits for one to be idle, which is then released."""
    open_browser: bool = False
    """Open the dashboard in the browser once serving (``--open``)."""


def gateway_key(settings: Settings, key_file: Path | None) -> str:
    """The gateway's key: ``key_file``'s, else the default file's (created when missing)."""
    return load_or_create_key(key_file or default_key_path(settings.paths.run_dir))


def make_gateway(settings: Settings, options: ServeOptions) -> Gateway:
    """The gateway's state: its key, a backend manager (its holder) and its metrics."""
    manager = ServiceManager(settings)
    pool = ModelPool(manager, options.ttl, settings.finetune_port, options.max_models)
    return Gateway(gateway_key(settings, options.key_file), pool, GatewayMetrics())


def uvicorn_config(gateway: Gateway, options: ServeOptions) -> uvicorn.Config:
    """Uvicorn's settings for the gateway's app."""
    return uvicorn.Config(
        build_app(gateway),
        host=options.host,
        port=options.port,
        log_level="warning",
        timeout_graceful_shutdown=GRACEFUL_SECONDS,
        lifespan="on",
    )


class Serving(Protocol):
    """What :func:`open_when_serving` watches: uvicorn's server."""

    started: bool
    should_exit: bool


def dashboard_url(host: str, port: int, key: str) -> str:
    """The dashboard's address with the key in its fragment (never sent to the server); a
    gateway listening on every address is opened on loopback."""
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}/#key={quote(key, safe='')}"


def open_when_serving(
    server: Serving, url: str, opener: Callable[[str], object] = webbrowser.open
) -> threading.Thread:
    """A thread that opens ``url`` once ``server`` serves (none if it stops first)."""

    def wait_and_open() -> None:
        while not server.started:
            if server.should_exit:
                return
            time.sleep(0.05)
        opener(url)

    thread = threading.Thread(target=wait_and_open, name="sage-serve-open", daemon=True)
    thread.start()
    return thread


def run(settings: Settings, options: ServeOptions) -> None:
    """Serve until SIGTERM or Ctrl-C; then every service only the gateway held stops."""
    gateway = make_gateway(settings, options)
    server = uvicorn.Server(uvicorn_config(gateway, options))
    print(f"sage serve: http://{options.host}:{options.port}/v1", flush=True)
    print(f"sage serve: the dashboard is at http://{options.host}:{options.port}/", flush=True)
    if options.open_browser:
        open_when_serving(server, dashboard_url(options.host, options.port, gateway.key))
    server.run()
