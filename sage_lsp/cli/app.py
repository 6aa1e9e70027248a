"""The ``sage`` command line (typer): ``sage chat`` and friends, as docs/configuration.md lists."""

from __future__ import annotations

import asyncio
import sys
import traceback
from typing import Annotated

import typer

from sage_lsp.backends.base import Backend, BackendError, ErrorKind
from sage_lsp.backends.factory import create_backend
from sage_lsp.cli.repl import ChatSession
from sage_lsp.config import BACKENDS, SettingsError, load_settings

EXIT_FAILURE = 1
"""The backend or the model failed."""
EXIT_USAGE = 2
"""A setting or an argument is wrong."""
EXIT_INTERRUPTED = 130
"""The user pressed Ctrl-C."""

app = typer.Typer(
    name="sage",
    help="Chat with your own finetuned code model from the terminal and the editor.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.callback()
def root() -> None:
    """Chat with your own finetuned code model from the terminal and the editor."""


def _fail(message: str, code: int, debug: bool) -> typer.Exit:
    if debug:
        traceback.print_exc()
    print(f"error: {message}", file=sys.stderr)
    return typer.Exit(code)


def _error_code(exc: BackendError) -> int:
    return EXIT_USAGE if exc.kind is ErrorKind.CONFIG else EXIT_FAILURE


async def _one_shot(session: ChatSession, question: str, stream: bool) -> None:
    try:
        await session.ask(question, stream=stream)
    finally:
        await session.backend.aclose()


async def _interactive(session: ChatSession, debug: bool) -> None:
    from prompt_toolkit import PromptSession
    from prompt_toolkit.history import FileHistory

    history_file = session.settings.paths.chat_history_file
    history_file.parent.mkdir(parents=True, exist_ok=True)
    prompt: PromptSession[str] = PromptSession(history=FileHistory(str(history_file)))

    def report(exc: Exception) -> None:
        if debug:
            traceback.print_exception(exc)
        print(f"error: {exc}", file=sys.stderr)

    try:
        await session.backend.prepare()
        await session.repl(lambda: prompt.prompt_async("you> "), report)
    finally:
        await session.backend.aclose()


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
    try:
        settings = load_settings(
            {
                "backend": backend,
                "model": model,
                "base_url": base_url,
                "api_key": api_key,
                "finetune_model": finetune_model,
                "finetune_port": finetune_port,
            }
        )
        chosen: Backend = create_backend(settings)
    except SettingsError as exc:
        raise _fail(str(exc), EXIT_USAGE, debug) from None
    except BackendError as exc:
        raise _fail(str(exc), _error_code(exc), debug) from None

    session = ChatSession(settings, chosen)
    question = ask
    if question is None and not sys.stdin.isatty():
        question = sys.stdin.read().strip()
        if not question:
            raise _fail("no question on stdin — pipe one in, or use --ask", EXIT_USAGE, debug)
    try:
        if question is not None:
            asyncio.run(_one_shot(session, question, not no_stream))
        else:
            asyncio.run(_interactive(session, debug))
    except BackendError as exc:
        raise _fail(str(exc), _error_code(exc), debug) from None
    except KeyboardInterrupt:
        raise _fail("stopped", EXIT_INTERRUPTED, debug) from None


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
