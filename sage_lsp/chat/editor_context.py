"""Editor context: documents, or ranges of them, that the editor attaches to a question.

Each is shown to the model as a fenced block labelled with its workspace-relative path and
1-based lines (``calc.py:2-3``), every line numbered, with the diagnostics the editor sent
listed under it. One budget (``contextTokens``, estimated at four characters a token) applies
to them together: over it, the largest are shortened to the same size, never left out whole,
and marked. The server reads the documents (:mod:`sage_lsp.server.documents`); this module
only lays them out, and reads a model's fenced answer back (``sage.fix``).
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

CHARS_PER_TOKEN = 4
"""How :data:`contextTokens <sage_lsp.config.Settings.context_tokens>` is estimated."""

SEVERITIES = {1: "error", 2: "warning", 3: "information", 4: "hint"}
"""LSP DiagnosticSeverity by number."""

_NUMBERED = re.compile(r"^ *(\d+) \| ?(.*)$")
"""A line as :func:`numbered` writes it: its number, `` | ``, the text."""
_ANSWER_FENCE = re.compile(
    r"^[ \t]*(?P<fence>`{3,}|~{3,})[^\n]*\n(?P<body>.*?)^[ \t]*(?P=fence)[ \t]*$", re.M | re.S
)
"""The first fenced block of a model's answer (its fence may be indented, as in a list)."""

_NOTE = "(lines {first}-{last} left out to fit the context budget)"
"""Said under a block that :func:`within_budget` shortened."""


@dataclass(frozen=True)
class Problem:
    """A diagnostic the editor sent with a document."""

    severity: str
    """``error``, ``warning``, ``information``, ``hint`` (``problem`` when the editor gave none)."""
    line: int
    """Its first line, from 1."""
    message: str
    """What it says, with its source and code when the editor sent them."""


def problem(diagnostic: dict[str, Any]) -> Problem:
    """A :class:`Problem` from an LSP Diagnostic as sent (a checked dict: ``range.start.line``
    and ``message`` are there)."""
    severity = SEVERITIES.get(diagnostic.get("severity") or 0, "problem")
    message = " ".join(str(diagnostic["message"]).split())
    origin = " ".join(
        str(part) for part in (diagnostic.get("source"), diagnostic.get("code")) if part
    )
    line = int(diagnostic["range"]["start"]["line"]) + 1
    return Problem(severity, line, f"{message} ({origin})" if origin else message)


@dataclass(frozen=True)
class Excerpt:
    """Lines of a document as the model sees them."""

    path: str
    """The document's path relative to the workspace (absolute outside it; the URI when the
    document is no file)."""
    first: int
    """The number of the first line, from 1."""
    lines: tuple[str, ...]
    """The lines, without their line ends."""
    language: str = ""
    """The fence's language (the editor's language id, or the file's suffix)."""
    problems: tuple[Problem, ...] = ()
    """The diagnostics the editor sent with it."""
    left_out: int = 0
    """Lines after :attr:`lines` left out to fit the budget."""
    truncated: bool = False
    """Shortened to fit the budget (lines left out, or its one line cut)."""

    @property
    def last(self) -> int:
        """The number of the last line attached (shown or left out)."""
        return self.first + len(self.lines) + self.left_out - 1

    @property
    def label(self) -> str:
        """``calc.py:2-3`` (``calc.py:2`` for one line): the path and the lines attached."""
        lines = f"{self.first}-{self.last}" if self.last > self.first else str(self.first)
        return f"{self.path}:{lines}"

    def numbered(self) -> list[str]:
        """The lines, each as ``N | text`` with N right-aligned."""
        width = len(str(self.last))
        return [f"{n:>{width}} | {line}" for n, line in enumerate(self.lines, self.first)]

    def render(self) -> str:
        """The labelled, fenced, numbered block, and the diagnostics under it."""
        body = self.numbered()
        fence = "`" * max([3, *(len(run) + 1 for run in re.findall(r"`{3,}", "\n".join(body)))])
        parts = [self.label, f"{fence}{self.language}", *body, fence]
        if self.left_out:
            parts.append(_NOTE.format(first=self.first + len(self.lines), last=self.last))
        if self.problems:
            parts.append(f"Diagnostics in {self.path}:")
            parts += [f"- {p.severity}, line {p.line}: {p.message}" for p in self.problems]
        return "\n".join(parts)

    def shortened(self, chars: int) -> Excerpt:
        """This excerpt cut to its first lines so that :meth:`render` takes at most ``chars``
        characters; at least one line stays (cut inside when it alone is too long)."""
        sizes = [len(line) + 1 for line in self.numbered()]
        room = chars - (len(self.render()) - sum(sizes)) - len(_NOTE)  # what the lines may take
        keep = 1
        while keep < len(sizes) and room - sizes[keep - 1] >= sizes[keep]:
            room -= sizes[keep - 1]
            keep += 1
        while keep > 1 and len(self._keeping(keep).render()) > chars:
            keep -= 1
        kept = self._keeping(keep)
        over = len(kept.render()) - chars
        if keep == 1 and over > 0 and self.lines:
            line = self.lines[0]
            kept = replace(kept, lines=(line[: max(1, len(line) - over - 1)] + "…",))
        return kept

    def _keeping(self, count: int) -> Excerpt:
        left_out = self.left_out + len(self.lines) - count
        return replace(self, lines=self.lines[:count], left_out=left_out, truncated=True)


def within_budget(excerpts: Sequence[Excerpt], tokens: int) -> list[Excerpt]:
    """``excerpts`` fitted into ``tokens`` together: when they are over it, every one larger
    than a common size is cut to that size (the largest size that fits), the smaller ones stay
    whole; each keeps at least its first line. A cut one is marked ``truncated``."""
    budget = tokens * CHARS_PER_TOKEN
    sizes = [len(e.render()) for e in excerpts]
    if sum(sizes) <= budget:
        return list(excerpts)
    cap, remaining = 0, budget
    for done, size in enumerate(sorted(sizes)):
        share = remaining // (len(sizes) - done)
        if size > share:
            cap = share
            break
        remaining -= size
    return [e if size <= cap else e.shortened(cap) for e, size in zip(excerpts, sizes, strict=True)]


def with_context(question: str, excerpts: Sequence[Excerpt]) -> str:
    """The user message of a question with editor context: each block, then the question."""
    if not excerpts:
        return question
    return "\n\n".join([*(e.render() for e in excerpts), question])


def fenced_code(answer: str) -> str | None:
    """The body of the first fenced block of a model's answer, its common indentation
    removed, and line numbers removed when the model copied them (``N | `` before every
    line, as :meth:`Excerpt.numbered` writes them); ``None`` when it holds no such block."""
    found = _ANSWER_FENCE.search(answer)
    if found is None:
        return None
    lines = found["body"].splitlines()
    matches = [_NUMBERED.match(line) for line in lines if line.strip()]
    if matches and all(matches):
        lines = [m[2] if (m := _NUMBERED.match(line)) else "" for line in lines]
    return textwrap.dedent("\n".join(lines))


def reindented(code: str, indent: str, before: str, line_end: bool) -> str:
    """``code`` (without common indentation) as the replacement of a range: every non-blank
    line indented by ``indent`` (the range's first line's), but the first by what ``before``
    (that line's text before the range) does not already give; ending with a line end exactly
    when ``line_end`` (the replaced text did)."""
    lines = [indent + line if line.strip() else "" for line in code.strip("\n").split("\n")]
    first = lines[0]
    if before.strip():
        lines[0] = first.lstrip()
    else:
        lines[0] = first[len(before) :] if first.startswith(before) else first.lstrip()
    text = "\n".join(lines)
    return text + "\n" if line_end else text
