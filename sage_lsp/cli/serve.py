"""``sage serve``: the OpenAI-compatible gateway to the finetuned models (docs/gateway.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sage_lsp.cli.failures import EXIT_USAGE, fail
from sage_lsp.config import load_settings

serve_app = typer.Typer(help="The OpenAI-compatible gateway to your finetuned models.")


@serve_app.callback(invoke_without_command=True)
def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="The address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="The port to listen on.")] = 8765,
    ttl: Annotated[
        float,
        typer.Option(min=0, help="Seconds a model is kept after its last request (0: always)."),
    ] = 300.0,
    api_key_file: Annotated[
        Path | None,
        typer.Option(
            help="The file with the key clients send (default $SAGE_HOME/run/gateway.key)."
        ),
    ] = None,
    max_models: Annotated[
        int,
        typer.Option(
            min=0,
            help="Models served at once (0: no limit); past it a request for another model "
            "waits for an idle one to be released.",
        ),
    ] = 0,
    open_dashboard: Annotated[
        bool, typer.Option("--open", help="Open the dashboard in the browser once serving.")
    ] = False,
) -> None:
    """Serve the finetuned models over OpenAI's API, started on demand, released when idle."""
    if ctx.invoked_subcommand is not None:
        return
    from sage_lsp.gateway.keys import is_loopback

    if not is_loopback(host) and api_key_file is None:
        raise fail(
            f"refusing to listen on {host} without --api-key-file "
            "(only loopback gets a default key)",
            EXIT_USAGE,
            False,
        )
    from sage_lsp.gateway.serve import ServeOptions, run

    run(load_settings(), ServeOptions(host, port, ttl, api_key_file, max_models, open_dashboard))


@serve_app.command("key")
def serve_key(
    api_key_file: Annotated[
        Path | None, typer.Option(help="The key file (default $SAGE_HOME/run/gateway.key).")
    ] = None,
) -> None:
    """Print the gateway's key alone on a line (created if there is none yet)."""
    from sage_lsp.gateway.serve import gateway_key

    print(gateway_key(load_settings(), api_key_file))
