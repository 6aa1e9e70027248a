"""The inline completion engine: the text before and after the cursor in, the model's text at
the cursor out, through the backend's fill-in-the-middle format or its chat."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from sage_lsp.backends.base import Backend, CompletionRequest, Delta
from sage_lsp.completion.blocks import completion_end
from sage_lsp.completion.chat import chat_request, code_of
from sage_lsp.completion.templates import CHAT, FimTemplate, pick
from sage_lsp.config import CompletionSettings
from sage_lsp.core.text import indentation

BLOCK_STOPS = ("\n\n\n",)
"""Stops of every FIM completion besides its template's: two blank lines end a block."""

SENT_STOPS = 4
"""Stops the server is sent: OpenAI's ``/v1/completions`` and vLLM's take four at most."""

CACHE_SIZE = 64
"""Completions the engine remembers."""


@dataclass(frozen=True)
class Cursor:
    """The document around the cursor, as the completion sees it."""

    before: str
    """The text before the cursor (at most ``prefixLines`` lines)."""
    after: str
    """The text after the cursor (the rest of its line and ``suffixLines`` more)."""

    @classmethod
    def at(cls, lines: list[str], line: int, column: int, settings: CompletionSettings) -> Cursor:
        """The cursor at ``line``/``column`` (0-based, code points) of ``lines`` (each with its
        line break)."""
        current = lines[line] if line < len(lines) else ""
        first = max(0, line - settings.prefix_lines)
        before = "".join(lines[first:line]) + current[:column]
        after = current[column:] + "".join(lines[line + 1 : line + 1 + settings.suffix_lines])
        return cls(before, after)


class CompletionEngine:
    """Completes at a cursor with a backend; remembers the last :data:`CACHE_SIZE` answers by
    (model, template, text before, text after)."""

    def __init__(self) -> None:
        self._cache: OrderedDict[tuple[str, str, str, str], str] = OrderedDict()

    async def complete(self, backend: Backend, cursor: Cursor, settings: CompletionSettings) -> str:
        """The text the model writes at ``cursor`` (trailing whitespace trimmed)."""
        template = pick(settings.fim_template, backend.model, await backend.tokenizer_tokens())
        key = (
            backend.model or "",
            template.name if template else CHAT,
            cursor.before,
            cursor.after,
        )
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        if template is not None:
            text = await self._fim(backend, template, cursor, settings.max_tokens)
        else:
            text = await self._chat(backend, cursor, settings.max_tokens)
        self._cache[key] = text
        if len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)
        return text

    async def _fim(
        self, backend: Backend, template: FimTemplate, cursor: Cursor, max_tokens: int
    ) -> str:
        """Ask through ``/v1/completions`` with ``template``; the text up to its first stop or
        its block's end (the stream is closed there)."""
        stops = template.stop + BLOCK_STOPS
        sent = template.stop[: SENT_STOPS - len(BLOCK_STOPS)] + BLOCK_STOPS
        request = CompletionRequest(template.prompt(cursor.before, cursor.after), sent, max_tokens)
        indent = indentation(cursor.before.rpartition("\n")[2])
        text = ""
        stream = backend.complete(request)
        try:
            async for event in stream:
                if isinstance(event, Delta):
                    text += event.text
                    end = completion_end(text, stops, indent)
                    if end is not None:
                        text = text[:end]
                        break
        finally:
            await stream.aclose()
        return text.rstrip()

    async def _chat(self, backend: Backend, cursor: Cursor, max_tokens: int) -> str:
        """Ask through chat; the code of the answer."""
        answer = ""
        stream = backend.stream(chat_request(cursor.before, cursor.after, max_tokens))
        try:
            async for event in stream:
                if isinstance(event, Delta):
                    answer += event.text
        finally:
            await stream.aclose()
        return code_of(answer).rstrip()
