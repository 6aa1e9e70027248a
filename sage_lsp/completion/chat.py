"""The chat fallback for models without a fill-in-the-middle format: a prompt that asks for the
code at the cursor, and the answer's code taken from its first fenced block or as it is."""

from __future__ import annotations

import re

from sage_lsp.backends.base import ChatRequest
from sage_lsp.core.types import Message

CURSOR = "<CURSOR>"
"""Where the cursor is, in the text the chat model is shown."""

SYSTEM = (
    "You complete code. You are shown a file with the marker " + CURSOR + " at the cursor. "
    "Answer with only the code to insert at the cursor, in one fenced code block, without "
    "repeating the code before or after it."
)
"""The system prompt of a chat completion."""

_FENCED = re.compile(r"(`{3,}|~{3,})[^\n]*\n(.*?)(?:\n[ \t]*\1|\Z)", re.DOTALL)


def chat_request(before: str, after: str, max_tokens: int) -> ChatRequest:
    """Ask a chat model for the code between ``before`` and ``after``."""
    user = f"```\n{before}{CURSOR}{after}\n```"
    return ChatRequest((Message("system", SYSTEM), Message("user", user)), max_tokens=max_tokens)


def code_of(answer: str) -> str:
    """The code of a chat answer: its first fenced block, else the answer as it is."""
    found = _FENCED.search(answer)
    return found.group(2) if found else answer
