"""A conversation: its id, system prompt, turns, and the history that fits the model's budget."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

from sage_lsp.core.types import Message


def estimate_tokens(text: str) -> int:
    """A cheap token estimate (about four characters a token, plus a little per message)."""
    return len(text) // 4 + 4


def compose(system: str, turns: Sequence[Turn], user_text: str) -> tuple[Message, ...]:
    """A prompt: the system message, the past ``turns`` in order, then the new question."""
    return (Message("system", system), *turn_messages(turns), Message("user", user_text))


def turn_messages(turns: Sequence[Turn]) -> list[Message]:
    """The messages of ``turns``: each question, and its answer when one arrived."""
    messages: list[Message] = []
    for turn in turns:
        messages.append(Message("user", turn.user))
        if turn.assistant:
            messages.append(Message("assistant", turn.assistant))
    return messages


@dataclass
class Turn:
    """One question and its answer."""

    user: str
    """What the user asked."""
    assistant: str = ""
    """The answer, or as much of it as arrived."""
    complete: bool = False
    """False when the answer was stopped or broke off."""


@dataclass
class Conversation:
    """A chat: the system prompt and every turn so far."""

    system_prompt: str
    """Sent first on every request."""
    history_tokens: int = 6000
    """Estimated-token budget for past turns; the oldest are left out first."""
    chat_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    """Identifies the conversation to editors (``chatId``)."""
    turns: list[Turn] = field(default_factory=list)
    """Past turns, oldest first."""

    def system_message(self, context: str | None = None) -> str:
        """The system prompt, followed by ``context`` (the retrieved passages of a turn)."""
        return f"{self.system_prompt}\n\n{context}" if context else self.system_prompt

    def recent_turns(self, system: str, user_text: str) -> list[Turn]:
        """As many recent turns as fit in :attr:`history_tokens` beside ``system`` and
        ``user_text``, oldest first: turns are added newest first, so the oldest are trimmed."""
        budget = self.history_tokens - estimate_tokens(system) - estimate_tokens(user_text)
        kept: list[Turn] = []
        for turn in reversed(self.turns):
            budget -= estimate_tokens(turn.user) + estimate_tokens(turn.assistant)
            if budget < 0:
                break
            kept.append(turn)
        return kept[::-1]

    def messages_for(self, user_text: str, context: str | None = None) -> tuple[Message, ...]:
        """The messages for a new question: system, as many recent turns as fit, the question.

        The system prompt (followed by ``context``, the retrieved passages of this turn) and the
        question always go; past turns go while they fit in :attr:`history_tokens`
        (:meth:`recent_turns`).
        """
        system = self.system_message(context)
        return compose(system, self.recent_turns(system, user_text), user_text)

    def history(self) -> list[Message]:
        """Every message of the conversation so far, without the system prompt."""
        return turn_messages(self.turns)

    def reset(self) -> None:
        """Forget every turn; the chat id stays."""
        self.turns.clear()
