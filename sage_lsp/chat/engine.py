"""The chat engine: runs one turn of a conversation against a backend, streaming the answer."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from contextlib import aclosing
from dataclasses import dataclass

from sage_lsp.backends.base import Backend, Delta, FinishReason, Usage
from sage_lsp.chat.conversation import Conversation, Turn
from sage_lsp.chat.fit import PromptFitter, Trim
from sage_lsp.core.errors import BackendError, ErrorKind
from sage_lsp.core.types import Passage


@dataclass(frozen=True)
class TurnResult:
    """What one finished turn produced."""

    chat_id: str
    """The conversation it belongs to."""
    turn: int
    """Its number in the conversation, from 1."""
    text: str
    """The whole answer (the concatenation of every delta)."""
    finish_reason: FinishReason
    """``stop`` or ``length``."""
    usage: Usage | None
    """Token counts, when the backend reported them."""
    passages: tuple[Passage, ...]
    """The retrieved passages the prompt quoted (those left out to fit are in ``trim``)."""
    ttft_ms: float
    """Time from sending the request to the first delta."""
    total_ms: float
    """Time from sending the request to the end of the answer."""
    tokens_per_second: float
    """Answer tokens (or deltas, without usage) per second after the first delta."""
    trim: Trim | None = None
    """What was left out of the prompt to fit the model's context, if anything."""


class ChatEngine:
    """Runs chat turns: builds the request from the conversation, streams, records the answer."""

    def __init__(self, backend: Backend, *, max_tokens: int | None = None) -> None:
        self.backend = backend
        self.max_tokens = max_tokens

    async def run_turn(
        self,
        conversation: Conversation,
        user_text: str,
        on_delta: Callable[[str], None] | None = None,
        passages: Sequence[Passage] = (),
    ) -> TurnResult:
        """Ask ``user_text`` in ``conversation``, calling ``on_delta`` with each piece of text.

        The turn is recorded in the conversation as it streams. If the turn is cancelled or the
        stream breaks, the partial answer stays in the history (marked incomplete) and the
        exception propagates; a turn that failed before any text arrived is removed again.
        A backend that knows its model's context fits the prompt into it (see
        :class:`PromptFitter`); the result says what was left out.
        """
        fitter = PromptFitter(conversation, user_text, passages, self.max_tokens)
        request = fitter.request()
        turn = Turn(user_text)
        conversation.turns.append(turn)
        pieces: list[str] = []
        finish = None
        started = time.perf_counter()
        first: float | None = None
        try:
            async with aclosing(self.backend.stream(request)) as events:
                async for event in events:
                    if isinstance(event, Delta):
                        if first is None:
                            first = time.perf_counter()
                        pieces.append(event.text)
                        if on_delta is not None:
                            on_delta(event.text)
                    else:
                        finish = event
        except BackendError:
            if not pieces:
                conversation.turns.remove(turn)
            raise
        finally:
            turn.assistant = "".join(pieces)
        if finish is None:
            conversation.turns.remove(turn)
            raise BackendError(ErrorKind.SERVER, f"{self.backend.name} ended without an answer")
        turn.complete = True
        ended = time.perf_counter()
        first = first if first is not None else ended
        produced = finish.usage.completion_tokens if finish.usage else len(pieces)
        generating = ended - first
        return TurnResult(
            chat_id=conversation.chat_id,
            turn=conversation.turns.index(turn) + 1,
            text=turn.assistant,
            finish_reason=finish.reason,
            usage=finish.usage,
            passages=fitter.passages,
            ttft_ms=(first - started) * 1000,
            total_ms=(ended - started) * 1000,
            tokens_per_second=produced / generating if generating > 0 else 0.0,
            trim=fitter.trim,
        )
