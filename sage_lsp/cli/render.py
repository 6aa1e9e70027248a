"""How ``sage chat`` writes an answer: as plain text while it arrives, or as Markdown rendered
in a terminal while it streams."""

from __future__ import annotations

import asyncio
import time
from typing import Protocol, TextIO

from rich.console import Console, ConsoleOptions, RenderResult
from rich.live import Live
from rich.markdown import Markdown
from rich.segment import Segment

REFRESH_SECONDS = 0.1
"""The live answer is redrawn at most this often."""


class AnswerView(Protocol):
    """Where one answer goes, delta by delta."""

    def write(self, text: str) -> None:
        """Show the next part of the answer."""

    def end(self) -> None:
        """The answer is complete: end its last line."""

    def close(self) -> None:
        """Stop showing the answer (after :meth:`end`, or when it was stopped or failed)."""


def markdown_console(out: TextIO) -> Console | None:
    """A console to render answers on when ``out`` is a terminal that can redraw lines (not
    ``TERM=dumb``); None when answers are written as plain text."""
    if not out.isatty():
        return None
    console = Console(file=out, highlight=False)
    return console if console.is_terminal and not console.is_dumb_terminal else None


class PlainAnswer:
    """The answer's text exactly as it arrives, flushed after each delta."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.last = ""

    def write(self, text: str) -> None:
        """Write the delta as it is."""
        if text:
            self.out.write(text)
            self.out.flush()
            self.last = text

    def end(self) -> None:
        """End the answer's line unless the answer did."""
        if not self.last.endswith("\n"):
            self.write("\n")

    def close(self) -> None:
        """Nothing to stop."""


class MarkdownAnswer:
    """The answer rendered as Markdown while it streams: each top-level block (paragraph, list,
    code block, table …) is printed once it is complete, and the block being written is redrawn
    in place, at most every :data:`REFRESH_SECONDS` and no taller than the terminal (its last
    lines while it grows, all of it at the end). The whole answer stays on screen, spaced as one
    Markdown render would space it."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.pending = ""
        """The text of the blocks not printed yet: the last one, still growing."""
        self.printed = ""
        """The last block printed, rendered again before what follows it for the spacing."""
        self.live: Live | None = None
        self.drawn_at = 0.0
        self.due: asyncio.TimerHandle | None = None
        self.whole = False

    def write(self, text: str) -> None:
        """Add the delta; print the blocks it completes; redraw the last block soon."""
        if not text:
            return
        self.pending += text
        if self.live is None:
            self.live = Live(
                self, console=self.console, auto_refresh=False, vertical_overflow="visible"
            )
            self.live.start()
        if "\n" in text:
            self._print_complete_blocks()
        self._redraw_soon()

    def end(self) -> None:
        """The live region ends on a line of its own: close it."""
        self.close()

    def close(self) -> None:
        """Draw the whole last block and leave it on screen."""
        if self.due is not None:
            self.due.cancel()
            self.due = None
        if self.live is not None:
            self.whole = True
            self.live.stop()
            self.live = None

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        """The live region: the last block (the last lines that fit, until the end)."""
        lines = self._render(self.pending, options)
        if not self.whole:
            lines = lines[-max(1, console.height - 1) :]
        yield _Lines(lines)

    def _render(self, text: str, options: ConsoleOptions) -> list[list[Segment]]:
        """The lines ``text`` adds under the blocks printed before it."""
        if not text.strip():
            return []
        above = self.console.render_lines(Markdown(self.printed), options) if self.printed else []
        lines = self.console.render_lines(Markdown(self.printed + text), options, pad=False)
        return lines[len(above) :]

    def _print_complete_blocks(self) -> None:
        lines = self.pending[: self.pending.rfind("\n") + 1].split("\n")
        starts = [
            token.map[0]
            for token in Markdown("\n".join(lines)).parsed
            if token.level == 0 and token.nesting >= 0 and token.map
        ]
        if len(starts) < 2:  # the last block on complete lines may still grow
            return
        cut = sum(len(line) + 1 for line in lines[: starts[-1]])
        done, self.pending = self.pending[:cut], self.pending[cut:]
        self.console.print(_Lines(self._render(done, self.console.options)))
        self.printed = done  # the live region is redrawn below it, with the new spacing

    def _redraw_soon(self) -> None:
        if self.due is not None:
            return
        wait = self.drawn_at + REFRESH_SECONDS - time.monotonic()
        if wait > 0:
            try:
                self.due = asyncio.get_running_loop().call_later(wait, self._redraw)
                return
            except RuntimeError:  # no event loop: draw now
                pass
        self._redraw()

    def _redraw(self) -> None:
        self.due = None
        self.drawn_at = time.monotonic()
        if self.live is not None:
            self.live.refresh()


class _Lines:
    """Lines rendered before, as a renderable."""

    def __init__(self, lines: list[list[Segment]]) -> None:
        self.lines = lines

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        """The lines, each ended."""
        for line in self.lines:
            yield from line
            yield Segment.line()
