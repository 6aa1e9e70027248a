"""A conversation: its id, system prompt, turns, and the history that fits the model's budget."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from sage_lsp.backends.base import Message


def estimate_tokens(text: str) -> int:
    """A cheap token estimate (about four characters a token, plus a little per message)."""
    return len(text) // 4 + 4


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

    def messages_for(self, user_text: str, context: str | None = None) -> tuple[Message, ...]:
        """The messages for a new question: system, as many recent turns as fit, the question.

        The system prompt (followed by ``context``, the retrieved passages of this turn) and the
        question always go; past turns are added newest first while they fit in
        :attr:`history_tokens`, so the oldest turns are trimmed first.
        """
        system = f"{self.system_prompt}\n\n{context}" if context else self.system_prompt
        budget = self.history_tokens - estimate_tokens(system)
        budget -= estimate_tokens(user_text)
        kept: list[Message] = []
        for turn in reversed(self.turns):
            cost = estimate_tokens(turn.user) + estimate_tokens(turn.assistant)
            if cost > budget:
                break
            budget -= cost
            pair = [Message("user", turn.user)]
            if turn.assistant:
                pair.append(Message("assistant", turn.assistant))
            kept[:0] = pair
        return (Message("system", system), *kept, Message("user", user_text))

    def history(self) -> list[Message]:
        """Every message of the conversation so far, without the system prompt."""
        messages: list[Message] = []
        for turn in self.turns:
            messages.append(Message("user", turn.user))
            if turn.assistant:
                messages.append(Message("assistant", turn.assistant))
        return messages

    def reset(self) -> None:
        """Forget every turn; the chat id stays."""
        self.turns.clear()
