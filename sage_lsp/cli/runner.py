"""Running ``sage chat`` (shared by ``sage chat`` and ``sage finetune chat``) and reporting
failures as one line with an exit code."""

from __future__ import annotations

import asyncio
import sys
import traceback
from collections.abc import Mapping

import typer

from sage_lsp.backends.base import Backend, BackendError, ErrorKind
from sage_lsp.backends.factory import create_backend
from sage_lsp.cli.progress import ProgressPrinter
from sage_lsp.cli.repl import ChatSession
from sage_lsp.config import SettingsError, load_settings
from sage_lsp.paths import create_private_file
from sage_lsp.rag.index import RetrievalError
from sage_lsp.services.store import InvalidModelName

EXIT_FAILURE = 1
"""The backend or the model failed."""
EXIT_USAGE = 2
"""A setting or an argument is wrong."""
EXIT_INTERRUPTED = 130
"""The user pressed Ctrl-C."""


def fail(message: str, code: int, debug: bool) -> typer.Exit:
    """Print ``error: message`` on stderr (and the traceback with --debug); the Exit to raise."""
    if debug:
        traceback.print_exc()
    print(f"error: {message}", file=sys.stderr)
    return typer.Exit(code)


def error_code(exc: BackendError) -> int:
    """Exit code for a backend failure: 2 for configuration, 1 for everything else."""
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
    create_private_file(history_file)  # it holds what the user typed: 0600
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


def run_chat(overrides: Mapping[str, object], ask: str | None, stream: bool, debug: bool) -> None:
    """Run ``sage chat`` with these flag values (shared by ``sage finetune chat``)."""
    try:
        settings = load_settings(overrides)
        chosen: Backend = create_backend(settings, ProgressPrinter())
    except SettingsError as exc:
        raise fail(str(exc), EXIT_USAGE, debug) from None
    except (BackendError, InvalidModelName) as exc:
        code = error_code(exc) if isinstance(exc, BackendError) else EXIT_USAGE
        raise fail(str(exc), code, debug) from None

    session = ChatSession(settings, chosen)
    question = ask
    if question is None and not sys.stdin.isatty():
        question = sys.stdin.read().strip()
        if not question:
            raise fail("no question on stdin — pipe one in, or use --ask", EXIT_USAGE, debug)
    try:
        if question is not None:
            asyncio.run(_one_shot(session, question, stream))
        else:
            asyncio.run(_interactive(session, debug))
    except BackendError as exc:
        raise fail(str(exc), error_code(exc), debug) from None
    except (InvalidModelName, RetrievalError) as exc:
        raise fail(str(exc), EXIT_USAGE, debug) from None
    except KeyboardInterrupt:
        raise fail("stopped", EXIT_INTERRUPTED, debug) from None
