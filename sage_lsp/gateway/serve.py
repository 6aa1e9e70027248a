"""Run the gateway: its key, its settings, uvicorn, and a clean stop on SIGTERM."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

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


def run(settings: Settings, options: ServeOptions) -> None:
    """Serve until SIGTERM or Ctrl-C; then every service only the gateway held stops."""
    gateway = make_gateway(settings, options)
    server = uvicorn.Server(uvicorn_config(gateway, options))
    print(f"sage serve: http://{options.host}:{options.port}/v1", flush=True)
    server.run()
