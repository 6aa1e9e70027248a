"""What a terminal shows after output that redraws lines the way rich's live display does."""

from __future__ import annotations

import re

_TOKEN = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\r|\n|[^\x1b\r\n]+")


def screen(raw: str) -> list[str]:
    """The lines on screen (and above it) after ``raw``: text, new lines, erase line
    (``ESC[2K``) and line up (``ESC[1A``); other control sequences and carriage returns are
    ignored (rich erases a line before it writes it again)."""
    rows, row = [""], 0
    for token in _TOKEN.findall(raw):
        if token == "\n":
            row += 1
            rows.extend([""] * (row + 1 - len(rows)))
        elif token == "\x1b[2K":
            rows[row] = ""
        elif token == "\x1b[1A":
            row -= 1
        elif token != "\r" and not token.startswith("\x1b"):
            rows[row] += token
    return [r.rstrip() for r in rows]
