"""Running ``sage chat`` (shared by ``sage chat`` and ``sage finetune chat``)."""

from __future__ import annotations

import asyncio
import sys
import traceback
from collections.abc import Mapping

from sage_lsp.cli.failures import EXIT_USAGE, fail
from sage_lsp.cli.progress import ProgressPrinter
from sage_lsp.cli.render import markdown_console
from sage_lsp.cli.repl import ChatSession
from sage_lsp.config import load_settings
from sage_lsp.paths import create_private_file
from sage_lsp.services.factory import create_backend


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


def run_chat(
    overrides: Mapping[str, object],
    ask: str | None,
    stream: bool,
    debug: bool,
    markdown: bool = True,
) -> None:
    """Run ``sage chat`` with these flag values (shared by ``sage finetune chat``); answers
    are rendered as Markdown when ``markdown`` and stdout is a terminal, else plain text."""
    settings = load_settings(overrides)
    console = markdown_console(sys.stdout) if markdown else None
    session = ChatSession(settings, create_backend(settings, ProgressPrinter()), markdown=console)
    question = ask
    if question is None and not sys.stdin.isatty():
        question = sys.stdin.read().strip()
        if not question:
            raise fail("no question on stdin — pipe one in, or use --ask", EXIT_USAGE, debug)
    if question is not None:
        asyncio.run(_one_shot(session, question, stream))
    else:
        asyncio.run(_interactive(session, debug))
