"""The ``sage`` command line (typer): ``sage chat`` and friends, as docs/configuration.md lists."""

from __future__ import annotations

from typing import Annotated

import typer

from sage_lsp.cli.finetune import finetune_app
from sage_lsp.cli.runner import run_chat
from sage_lsp.cli.services import services_app
from sage_lsp.config import BACKENDS

app = typer.Typer(
    name="sage",
    help="Chat with your own finetuned code model from the terminal and the editor.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


app.add_typer(finetune_app, name="finetune")
app.add_typer(services_app, name="services")


@app.callback()
def root() -> None:
    """Chat with your own finetuned code model from the terminal and the editor."""


@app.command("chat")
def chat(
    backend: Annotated[
        str | None, typer.Option(help=f"Backend: {' | '.join(BACKENDS)} (default mock).")
    ] = None,
    model: Annotated[str | None, typer.Option(help="Model name to ask for.")] = None,
    base_url: Annotated[
        str | None, typer.Option(help="OpenAI-compatible endpoint, e.g. http://HOST:8000/v1.")
    ] = None,
    api_key: Annotated[
        str | None, typer.Option(help="API key (default from SAGE_CHAT_API_KEY).")
    ] = None,
    finetune_model: Annotated[
        str | None, typer.Option(help="Finetuned model name (default sage_code_expert).")
    ] = None,
    finetune_port: Annotated[
        int | None, typer.Option(help="Port for the finetuned model's server (default 8000).")
    ] = None,
    ask: Annotated[
        str | None, typer.Option("--ask", "-q", help="Answer this one question and exit.")
    ] = None,
    no_stream: Annotated[
        bool, typer.Option("--no-stream", help="Print the answer when it is complete.")
    ] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks of failures.")] = False,
) -> None:
    """Chat with a model: a REPL, or one answer with --ask or a question on stdin."""
    overrides = {
        "backend": backend,
        "model": model,
        "base_url": base_url,
        "api_key": api_key,
        "finetune_model": finetune_model,
        "finetune_port": finetune_port,
    }
    run_chat(overrides, ask, not no_stream, debug)


@app.command("lsp")
def lsp(
    tcp: Annotated[bool, typer.Option("--tcp", help="Serve one client over TCP.")] = False,
    host: Annotated[str, typer.Option(help="TCP host.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 2087,
) -> None:
    """Start the language server (stdio by default) for VS Code, Neovim and other editors."""
    from sage_lsp.server.main import main as serve

    serve(["--tcp", "--host", host, "--port", str(port)] if tcp else [])


def main() -> None:
    """Entry point of the ``sage`` console script."""
    app()
