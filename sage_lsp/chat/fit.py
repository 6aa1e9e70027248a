"""Fitting a turn's prompt into the model's context.

A model takes a fixed number of tokens (vLLM's ``max_model_len``) for the prompt and the answer
together. :class:`PromptFitter` keeps room for the answer (``maxTokens``) and, when the prompt
is too long, leaves out the oldest turns of the history first, then the lowest-ranked
passages, then cuts the text attached to the question (its fenced code blocks). What it left
out is reported as a :class:`Trim`; a question that cannot fit even alone is an error naming
the limit.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from sage_lsp.backends.base import ChatRequest, ContextWindow
from sage_lsp.chat.conversation import Conversation, Turn, compose
from sage_lsp.core.errors import BackendError, ErrorKind
from sage_lsp.core.types import Message, Passage
from sage_lsp.rag.retrieve import context_block

ANSWER_SHARE = 4
"""Without ``maxTokens``, a quarter of the context is kept for the answer ..."""
ANSWER_CAP = 1024
"""... but never more than this many tokens."""

_FENCE = re.compile(r"^(?P<fence>`{3,}|~{3,})[^\n]*\n(?P<body>.*?)^(?P=fence)[ \t]*$", re.M | re.S)
"""A fenced block (a selection or file the editor attached to the question)."""


def answer_reserve(window: ContextWindow, max_tokens: int | None) -> int:
    """Tokens of ``window`` kept for the answer: ``max_tokens``, or a share of the context."""
    return max_tokens or min(ANSWER_CAP, window.tokens // ANSWER_SHARE)


def cut_attached(text: str, keep: float) -> tuple[str, int]:
    """``text`` with the body of each fenced block cut to its first ``keep`` share (at a line
    end where there is one) and a line saying so; also how many characters were left out."""
    left_out = 0

    def shorten(block: re.Match[str]) -> str:
        nonlocal left_out
        body = block["body"]
        kept = body[: int(len(body) * keep)]
        if len(kept) >= len(body):
            return block[0]
        if "\n" in kept:
            kept = kept[: kept.rindex("\n") + 1]
        cut = len(body) - len(kept)
        left_out += cut
        if kept and not kept.endswith("\n"):  # a long line, cut inside
            kept += "\n"
        start, end = block.start("body") - block.start(), block.end("body") - block.start()
        marker = f"[… {cut} characters cut to fit the model's context]\n"
        return block[0][:start] + kept + marker + block[0][end:]

    return _FENCE.sub(shorten, text), left_out


@dataclass(frozen=True)
class Trim:
    """What was left out of a turn's prompt so that it fits the model's context."""

    model: str
    """The model whose context it had to fit."""
    context_tokens: int
    """That model's context length."""
    reserved_tokens: int
    """Tokens of it kept for the answer."""
    prompt_tokens: int
    """The prompt's tokens after trimming."""
    turns: int = 0
    """Past turns left out, the oldest first."""
    passages: tuple[Passage, ...] = ()
    """Passages left out, the lowest-ranked first."""
    cut_chars: int = 0
    """Characters cut from the text attached to the question."""

    def note(self) -> str:
        """One sentence for the user: what was left out, and why."""
        parts = []
        if self.turns:
            parts.append(f"the {_count(self.turns, 'oldest turn')} of the history")
        if self.passages:
            numbers = ", ".join(f"[{p.n}]" for p in sorted(self.passages, key=lambda p: p.n))
            parts.append(f"{'passage' if len(self.passages) == 1 else 'passages'} {numbers}")
        if self.cut_chars:
            parts.append(f"{_count(self.cut_chars, 'character')} of the attached text")
        left_out = ", ".join(parts[:-1]) + " and " + parts[-1] if len(parts) > 1 else parts[0]
        return (
            f"left out {left_out} to fit {self.model}'s context of {self.context_tokens} tokens "
            f"({self.reserved_tokens} of them kept for the answer)"
        )


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


class PromptFitter:
    """Builds a turn's request and, once the backend knows its model's context, fits it.

    :meth:`request` is the whole prompt (system prompt and passages, the recent turns that fit
    in ``historyTokens``, the question) with :meth:`fit` attached; after the turn,
    :attr:`passages` holds the passages the prompt kept and :attr:`trim` what was left out.
    """

    def __init__(
        self,
        conversation: Conversation,
        question: str,
        passages: Sequence[Passage],
        max_tokens: int | None = None,
    ) -> None:
        self.system_prompt = conversation.system_prompt
        self.question = question
        self.max_tokens = max_tokens
        self.retrieved = tuple(passages)
        """The passages retrieved for the question, best first."""
        self.passages = self.retrieved
        """The passages the prompt quotes (fewer after :meth:`fit` left some out)."""
        self.trim: Trim | None = None
        """What :meth:`fit` left out, or ``None`` when the whole prompt fitted."""
        self.turns = conversation.recent_turns(self._system(len(passages)), question)
        """The recent turns that fit in ``historyTokens``, oldest first."""

    def _system(self, passages: int) -> str:
        kept = self.retrieved[:passages]
        return f"{self.system_prompt}\n\n{context_block(kept)}" if kept else self.system_prompt

    def messages(
        self, skip_turns: int = 0, passages: int | None = None, question: str | None = None
    ) -> tuple[Message, ...]:
        """The prompt without its ``skip_turns`` oldest turns, with its best ``passages`` (all
        by default) and ``question`` in place of the question."""
        count = len(self.retrieved) if passages is None else passages
        turns: Sequence[Turn] = self.turns[skip_turns:]
        return compose(self._system(count), turns, self.question if question is None else question)

    def request(self) -> ChatRequest:
        """The whole request, which the backend fits with :meth:`fit` when it knows how."""
        return ChatRequest(self.messages(), self.passages, self.max_tokens, fit=self.fit)

    async def fit(self, window: ContextWindow) -> ChatRequest:
        """The request shortened to fit ``window`` with room for the answer (the same for the
        same window, however often it is called)."""
        reserve = answer_reserve(window, self.max_tokens)
        budget = window.tokens - reserve
        if budget <= 0:
            raise BackendError(
                ErrorKind.CONFIG,
                f"maxTokens = {reserve} leaves no room for a question in {window.model}'s "
                f"context of {window.tokens} tokens",
                f"set maxTokens below {window.tokens}",
            )
        sizes = _Sizes(self, window)
        step = await sizes.first_fitting(budget)
        skip, passages = self.trimming(step)
        if step > sizes.last:
            question, cut, size = await self._cut_question(sizes, budget, reserve)
        else:
            question, cut, size = self.question, 0, await sizes.at(step)
        self.passages = self.retrieved[:passages]
        dropped = self.retrieved[passages:][::-1]
        self.trim = (
            Trim(window.model, window.tokens, reserve, size, skip, dropped, cut) if step else None
        )
        messages = self.messages(skip, passages, question)
        return ChatRequest(messages, self.passages, self.max_tokens)

    def trimming(self, step: int) -> tuple[int, int]:
        """Turns skipped and passages kept at ``step`` of trimming: each step leaves out one
        more turn, the oldest, and once none is left one more passage, the lowest-ranked."""
        skip = min(step, len(self.turns))
        return skip, max(0, len(self.retrieved) - max(0, step - len(self.turns)))

    async def _cut_question(self, sizes: _Sizes, budget: int, reserve: int) -> tuple[str, int, int]:
        """The question with its attached text cut until the prompt fits alone; how many
        characters were cut, and the prompt's size."""
        skip, _ = self.trimming(sizes.last)
        bare, all_cut = cut_attached(self.question, 0)
        low = await sizes.of(self.messages(skip, 0, bare))
        if low > budget:
            window = sizes.window
            raise BackendError(
                ErrorKind.TOO_LONG,
                f"the question does not fit the model: it takes {low} tokens with the system "
                f"prompt, and {window.model} takes {window.tokens} with {reserve} of them kept "
                "for the answer",
                "shorten the question (or what is attached to it), or lower maxTokens",
            )
        high = await sizes.at(sizes.last)
        keep = (budget - low) / (high - low)
        for _ in range(6):  # the share of the attached text that fits, by interpolation
            question, cut = cut_attached(self.question, keep)
            size = await sizes.of(self.messages(skip, 0, question))
            if size <= budget:
                return question, cut, size
            keep *= 0.9 * (budget - low) / (size - low)
        return bare, all_cut, low


class _Sizes:
    """The prompt's size at each step of trimming, counted once each."""

    def __init__(self, fitter: PromptFitter, window: ContextWindow) -> None:
        self.fitter = fitter
        self.window = window
        self.last = len(fitter.turns) + len(fitter.retrieved)
        """The last step: no history and no passage."""
        self._known: dict[int, int] = {}

    async def of(self, messages: Sequence[Message]) -> int:
        """Tokens of a prompt made of ``messages``."""
        return await self.window.count(messages)

    async def at(self, step: int) -> int:
        """Tokens of the prompt at ``step``."""
        if step not in self._known:
            self._known[step] = await self.of(self.fitter.messages(*self.fitter.trimming(step)))
        return self._known[step]

    async def first_fitting(self, budget: int) -> int:
        """The first step whose prompt fits in ``budget`` (one count when the whole prompt
        fits; a binary search otherwise), or ``last + 1`` when none does."""
        if await self.at(0) <= budget:
            return 0
        if await self.at(self.last) > budget:
            return self.last + 1
        low, high = 0, self.last  # the prompt does not fit at low and fits at high
        while high - low > 1:
            middle = (low + high) // 2
            if await self.at(middle) <= budget:
                high = middle
            else:
                low = middle
        return high
