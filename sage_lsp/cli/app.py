"""The ``sage`` command line (typer): ``sage chat`` and friends, as docs/configuration.md lists."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sage_lsp.cli.chat import chat_app
from sage_lsp.cli.failures import SageGroup
from sage_lsp.cli.finetune import finetune_app
from sage_lsp.cli.pipeline import pipeline_app
from sage_lsp.cli.serve import serve_app
from sage_lsp.cli.services import services_app
from sage_lsp.paths import private_umask
from sage_lsp.protocol import DEFAULT_TCP_PORT

app = typer.Typer(
    name="sage",
    cls=SageGroup,
    help="Chat with your own finetuned code model from the terminal and the editor.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


app.add_typer(chat_app, name="chat")
app.add_typer(finetune_app, name="finetune")
app.add_typer(pipeline_app, name="pipeline")
app.add_typer(services_app, name="services")
app.add_typer(serve_app, name="serve")


@app.callback()
def root() -> None:
    """Chat with your own finetuned code model from the terminal and the editor."""


@app.command("lsp")
def lsp(
    tcp: Annotated[bool, typer.Option("--tcp", help="Serve one client over TCP.")] = False,
    host: Annotated[str, typer.Option(help="TCP host.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = DEFAULT_TCP_PORT,
    token_file: Annotated[
        Path | None,
        typer.Option(
            help="With --tcp: the file holding the token clients must send as "
            "initializationOptions.authToken (default: a fresh one in "
            "$SAGE_HOME/run/lsp-tcp-PORT.token)."
        ),
    ] = None,
) -> None:
    """Start the language server (stdio by default) for VS Code, Neovim and other editors."""
    from sage_lsp.server.start import serve

    tcp_args = ["--tcp", "--host", host, "--port", str(port)] if tcp else []
    serve(tcp_args + (["--token-file", str(token_file)] if token_file else []))


def main() -> None:
    """Entry point of the ``sage`` console script."""
    private_umask()
    app()
