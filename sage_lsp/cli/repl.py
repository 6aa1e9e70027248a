"""The ``sage chat`` session: one-shot answers and the interactive REPL."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import TextIO

from rich.console import Console
from rich.markup import escape

from sage_lsp.backends.base import Backend
from sage_lsp.chat.conversation import Conversation
from sage_lsp.chat.engine import ChatEngine, TurnResult
from sage_lsp.cli.render import AnswerView, MarkdownAnswer, PlainAnswer
from sage_lsp.config import Settings
from sage_lsp.core.types import Passage
from sage_lsp.pipeline.builder import build_pipeline, is_pipeline_request
from sage_lsp.pipeline.catalog import load_catalog
from sage_lsp.rag.chunking import slug
from sage_lsp.rag.retrieve import retrieve

EXIT_WORDS = frozenset({"exit", "quit", "q", "/exit", "/quit"})
HELP_WORDS = frozenset({"help", "?", "/help"})

HELP_TEXT = """\
Type a question and press Enter; the answer streams as it is written.
Ctrl-C stops an answer, Ctrl-D (or exit, quit, q) leaves.

  /help       this help (also: help, ?)
  /reset      start a new conversation
  /history    show the conversation so far
  /sources    show the passages the last answer could cite
  /pipeline DESCRIPTION   build a SAGE pipeline plan (also: "pipeline: ...", "build a ... pipeline")
  /backend    show the backend and model in use
  /exit       leave (also: exit, quit, q)"""


class ChatSession:
    """One terminal chat: a backend, a conversation, and where the answers are written: as
    plain text to ``out``, or rendered as Markdown on ``markdown``, a terminal's console."""

    def __init__(
        self,
        settings: Settings,
        backend: Backend,
        out: TextIO | None = None,
        markdown: Console | None = None,
    ) -> None:
        self.settings = settings
        self.backend = backend
        self.engine = ChatEngine(backend, max_tokens=settings.max_tokens)
        self.out = out or sys.stdout
        self.markdown = markdown
        self.console = Console(file=self.out, highlight=False, soft_wrap=True)
        self.conversation = self._new_conversation()
        self.sources: list[Passage] = []

    def _new_conversation(self) -> Conversation:
        return Conversation(self.settings.system_prompt, self.settings.history_tokens)

    def _write(self, text: str) -> None:
        self.out.write(text)
        self.out.flush()

    async def ask(self, question: str, stream: bool = True) -> TurnResult:
        """Answer one question, streaming the answer to the output (or printing it at the end),
        then list the sources it could cite."""
        settings = self.settings
        self.sources = await asyncio.to_thread(
            retrieve, settings, settings.index, question, settings.top_k
        )
        view: AnswerView = MarkdownAnswer(self.markdown) if self.markdown else PlainAnswer(self.out)
        try:
            result = await self.engine.run_turn(
                self.conversation, question, view.write if stream else None, self.sources
            )
            if not stream:
                view.write(result.text)
            view.end()
        finally:
            view.close()
        self.sources = list(result.passages)  # those that fitted the model's context
        if result.finish_reason == "length":
            self._write("[the answer was cut off at the token limit]\n")
        if self.sources:
            cited = "; ".join(f"[{p.n}] {_link(p)}" for p in self.sources)
            self._write(f"sources: {cited}\n")
        if result.trim:
            self._write(f"[{result.trim.note()}]\n")
        return result

    def handle_command(self, line: str) -> bool:
        """Run a REPL word or slash command; return False when the user wants to leave."""
        word = line.strip()
        lowered = word.lower()
        if lowered in EXIT_WORDS:
            return False
        if lowered in HELP_WORDS:
            self.console.print(escape(HELP_TEXT))
        elif lowered == "/reset":
            self.conversation = self._new_conversation()
            self.console.print("[dim]New conversation.[/dim]")
        elif lowered == "/history":
            self._show_history()
        elif lowered == "/sources":
            self._show_sources()
        elif lowered == "/backend":
            self.console.print(escape(self.backend.describe()))
        else:
            self.console.print(f"unknown command {escape(word)} — type /help for the commands")
        return True

    async def build_pipeline(self, description: str, on_error: Callable[[Exception], None]) -> None:
        """Build a plan with this session's backend and print its YAML."""
        if not description:
            self.console.print("usage: /pipeline DESCRIPTION")
            return
        self.console.print("[dim]Building a pipeline plan ...[/dim]")
        try:
            result = await build_pipeline(
                self.backend, description, load_catalog(self.settings.sage_home),
                max_tokens=self.settings.max_tokens,
            )  # fmt: skip
        except Exception as exc:
            on_error(exc)
            return
        self._write(result.yaml if result.yaml.endswith("\n") else result.yaml + "\n")
        if result.valid:
            self.console.print(
                f"[dim]{result.name}: valid after {result.attempts} attempt(s).[/dim]"
            )
        else:
            self.console.print(
                f"no valid plan after {result.attempts} attempts: " + "; ".join(result.errors)
            )

    def _show_sources(self) -> None:
        if not self.sources:
            self.console.print("[dim]The last answer had no sources.[/dim]")
        for p in self.sources:
            where = f"{p.title} — {p.heading}" if p.heading else p.title
            self.console.print(
                f"[bold][{p.n}][/bold] {escape(where)}  [dim]{escape(p.path)}  "
                f"score {p.score:.3g}[/dim]"
            )

    def _show_history(self) -> None:
        messages = self.conversation.history()
        if not messages:
            self.console.print("[dim]No messages yet.[/dim]")
        for message in messages:
            style = "bold cyan" if message.role == "user" else "bold green"
            self.console.print(f"[{style}]{message.role}:[/{style}] {escape(message.content)}")

    async def answer_interruptibly(
        self, question: str, on_error: Callable[[Exception], None]
    ) -> None:
        """Answer with Ctrl-C bound to stopping this answer (the partial answer is kept)."""
        loop = asyncio.get_running_loop()
        task = asyncio.ensure_future(self.ask(question))
        loop.add_signal_handler(signal.SIGINT, task.cancel)
        try:
            await task
        except asyncio.CancelledError:
            if not task.cancelled():
                raise
            self._write("\n[stopped]\n")
        except Exception as exc:
            on_error(exc)
        finally:
            loop.remove_signal_handler(signal.SIGINT)

    async def repl(
        self,
        read_line: Callable[[], Awaitable[str]],
        on_error: Callable[[Exception], None],
    ) -> None:
        """Read questions and commands until the user leaves (a word, /exit or Ctrl-D)."""
        self.console.print(
            f"[bold]sage chat[/bold] — {escape(self.backend.describe())}\n"
            "[dim]Type /help for commands; Ctrl-C stops an answer, Ctrl-D leaves.[/dim]"
        )
        while True:
            try:
                line = await read_line()
            except KeyboardInterrupt:
                continue
            except EOFError:
                break
            word = line.strip().lower()
            if not word:
                continue
            request = (
                line.strip()[len("/pipeline") :].strip()
                if word.startswith("/pipeline")
                else is_pipeline_request(line)
            )
            if request is not None or word == "/pipeline":
                await self.build_pipeline(request or "", on_error)
                continue
            if word in EXIT_WORDS or word in HELP_WORDS or word.startswith("/"):
                if not self.handle_command(line):
                    break
                continue
            await self.answer_interruptibly(line, on_error)


def _link(passage: Passage) -> str:
    """``path#anchor`` of a passage's section."""
    if not passage.heading:
        return passage.path
    return f"{passage.path}#{slug(passage.heading.rsplit(' > ', 1)[-1])}"
