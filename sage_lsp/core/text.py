"""Small facts about text shared by the layers above: a line's indentation."""

from __future__ import annotations


def indentation(line: str) -> str:
    """The leading spaces and tabs of ``line``."""
    return line[: len(line) - len(line.lstrip(" \t"))]
