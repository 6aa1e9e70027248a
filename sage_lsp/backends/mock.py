"""The mock backend: offline and deterministic, for trying sage-lsp without a model."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncGenerator

from sage_lsp.backends.base import (
    ChatRequest,
    CompletionRequest,
    Delta,
    Finish,
    StreamEvent,
    Usage,
)
from sage_lsp.core.text import indentation

_WORD = re.compile(r"\S+\s*|\s+")
_FENCE = re.compile(r"([ \t]*)(`{3,}|~{3,})")
QUOTE_CHARS = 600
"""The mock quotes at most this many characters of a passage (whole lines, but for a first line
longer than that)."""

NO_MODEL_HINT = (
    "To talk to a real model, pick a backend: `sage chat --backend vllm` (a vLLM server on "
    "127.0.0.1:8000), `--backend ollama`, `--backend openai` (with OPENAI_API_KEY) "
    "or `--backend compatible --base-url URL`."
)


def mock_answer(request: ChatRequest) -> str:
    """The mock's answer: a fix for a ``sage.fix`` request (:func:`mock_fix`), a quote of the
    best retrieved passage, or how to use a real model."""
    question = next((m.content for m in reversed(request.messages) if m.role == "user"), "").strip()
    fixed = mock_fix(question)
    if fixed is not None:
        return fixed
    if request.passages:
        best = request.passages[0]
        where = f"{best.title} — {best.heading}" if best.heading else best.title
        return (
            f"From the docs ({where}) [{best.n}]:\n\n{quote_markdown(best.text)}\n\n"
            f"(This is the mock backend quoting its best source. {NO_MODEL_HINT})"
        )
    turns = sum(1 for m in request.messages if m.role == "user")
    short = " ".join(question.split())
    if len(short) > 200:
        short = short[:200].rsplit(" ", 1)[0] + " …"
    return (
        f"This is the mock backend (turn {turns}); it runs offline and does not call a model. "
        f"You said: “{short}”. {NO_MODEL_HINT}"
    )


MOCK_TOKENS = frozenset({"<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>"})
"""The mock stands for SAGE's default base, Qwen2.5-Coder: its tokenizer has the FIM tokens, so
inline completions reach it as Qwen fill-in-the-middle prompts."""


def mock_completion(prompt: str) -> str:
    """The mock's completion of ``prompt``: ``sage_mock_completion(line=N)``, N the cursor's
    line within the prompt's text before the cursor (up to ``<|fim_suffix|>``), counted from
    1; one line, so that editors show it as ghost text on the cursor's line."""
    before = prompt.split("<|fim_suffix|>", 1)[0]
    return f"sage_mock_completion(line={before.count(chr(10)) + 1})"


_FIX_REQUEST = re.compile(
    r"\AFix the code of [^\n]+\.\n\n[^\n]+\n"
    r"(?P<fence>`{3,})(?P<language>\S*)\n(?P<body>.*?)\n(?P=fence)$",
    re.S | re.M,
)
"""A ``sage.fix`` request: "Fix the code of calc.py:2-3.", then the labelled block of numbered
lines (sage_lsp.server.code_actions writes it)."""
_LINE_NUMBER = re.compile(r"^ *\d+ \| ?", re.M)
_COMMENTS = {"python": "#", "py": "#", "yaml": "#", "yml": "#", "sh": "#", "toml": "#", "lua": "--"}
"""Line comments by fence language (``//`` for the others)."""


def mock_fix(question: str) -> str | None:
    """The mock's answer to a ``sage.fix`` request: its lines (numbers removed) in a fenced
    block, under a comment line ``fixed by the mock backend`` indented as the first line;
    ``None`` for any other question."""
    found = _FIX_REQUEST.match(question)
    if found is None:
        return None
    body = _LINE_NUMBER.sub("", found["body"])
    indent = indentation(body.lstrip("\n"))
    comment = _COMMENTS.get(found["language"], "//")
    fence = found["fence"]
    return (
        f"{fence}{found['language']}\n{indent}{comment} fixed by the mock backend\n{body}\n{fence}"
    )


def quote_markdown(text: str, limit: int = QUOTE_CHARS) -> str:
    """A passage as Markdown with its lines kept (tables, lists and code blocks read as they
    do in the source), cut at a line end after ``limit`` characters with a closing ``…``; a
    code fence the cut (or the passage) leaves open is closed, so the answer's next words are
    not taken for code."""
    lines = [line.rstrip() for line in text.strip("\n").splitlines()]
    kept: list[str] = []
    size = 0
    for line in lines:
        if size + len(line) > limit:
            break
        kept.append(line)
        size += len(line) + 1
    cut = len(kept) < len(lines)
    if not kept and lines:  # one line longer than the limit: cut it between words
        kept = [lines[0][:limit].rsplit(" ", 1)[0] + " …"]
        cut = False
    fence = ""  # the open code fence's indent and marker, e.g. "  ```"
    for line in kept:
        marker = _FENCE.match(line)
        if marker is None:
            continue
        if not fence:
            fence = marker.group(0)
        elif marker.group(2).startswith(fence.strip()) and not line.strip(" \t" + fence[-1]):
            fence = ""
    if fence:
        kept.append(fence)
    return "\n".join(kept + (["", "…"] if cut else []))


class MockBackend:
    """Streams :func:`mock_answer` word by word, ``delay`` seconds apart."""

    name = "mock"

    def __init__(self, delay: float = 0.01) -> None:
        self.delay = delay

    @property
    def model(self) -> str:
        """The mock has one model, called ``mock``."""
        return "mock"

    def describe(self) -> str:
        """Describe the mock for the user."""
        return "mock backend (offline, no model)"

    async def prepare(self) -> None:
        """Nothing to prepare."""

    async def stream(self, request: ChatRequest) -> AsyncGenerator[StreamEvent, None]:
        """Stream the answer word by word; the whitespace after a word travels with it."""
        words = _WORD.findall(mock_answer(request))
        for word in words:
            await asyncio.sleep(self.delay)
            yield Delta(word)
        prompt_words = sum(len(m.content.split()) for m in request.messages)
        yield Finish("stop", Usage(prompt_tokens=prompt_words, completion_tokens=len(words)))

    async def complete(self, request: CompletionRequest) -> AsyncGenerator[StreamEvent, None]:
        """Stream :func:`mock_completion` of the prompt in one piece, at once."""
        text = mock_completion(request.prompt)
        yield Delta(text)
        yield Finish("stop", Usage(prompt_tokens=len(request.prompt.split()), completion_tokens=1))

    async def tokenizer_tokens(self) -> frozenset[str]:
        """Qwen's FIM tokens (:data:`MOCK_TOKENS`)."""
        return MOCK_TOKENS

    async def aclose(self) -> None:
        """Nothing to release."""
