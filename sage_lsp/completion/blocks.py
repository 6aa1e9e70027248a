"""Where a completion ends, read as its text streams in: at a stop string (the server takes
four at most, so the rest are watched for here) or where its block ends, at a blank line
followed by a line indented less than the cursor's line, or, at the top level, by another
top-level line (a stop string cannot say "a dedent")."""

from __future__ import annotations

import re

_BLANK_THEN_LINE = re.compile(r"\n[ \t]*\n(?:[ \t]*\n)*([ \t]*)(?=\S)")


def block_end(text: str, indent: str) -> int | None:
    """Where ``text`` (written at a cursor whose line is indented by ``indent``) leaves its
    block: the start of the first blank line that a less indented line follows (a line not
    indented at all, when ``indent`` is empty); ``None`` while it has not."""
    for found in _BLANK_THEN_LINE.finditer(text):
        if len(found.group(1)) < len(indent) or not (indent or found.group(1)):
            return found.start()
    return None


def completion_end(text: str, stops: tuple[str, ...], indent: str) -> int | None:
    """Where ``text`` ends: at its first stop string or its block's end, whichever comes first;
    ``None`` while neither has come."""
    ends = [text.find(stop) for stop in stops]
    ends = [end for end in ends if end >= 0]
    block = block_end(text, indent)
    if block is not None:
        ends.append(block)
    return min(ends, default=None)
