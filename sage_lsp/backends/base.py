"""The backend interface: a chat request in, an async stream of text deltas and a finish out."""

from __future__ import annotations

import enum
import math
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

Role = Literal["system", "user", "assistant"]
FinishReason = Literal["stop", "length"]


class ErrorKind(enum.Enum):
    """What went wrong talking to a backend, as the user needs to know it."""

    CONNECTION = "connection"
    """The server could not be reached (refused, DNS, TLS)."""
    AUTH = "auth"
    """The server refused the credentials (401/403)."""
    MODEL_NOT_FOUND = "model_not_found"
    """The server does not serve the requested model (404), or no model could be chosen."""
    SERVER = "server"
    """The server failed (5xx) or sent something that is not a valid answer."""
    REJECTED = "rejected"
    """The server refused the request as invalid (400, 422 ...); its message says why, and
    asking again unchanged will not help."""
    TOO_LONG = "too_long"
    """The question does not fit the model's context, even without history and passages."""
    TIMEOUT = "timeout"
    """The server did not answer in time."""
    INTERRUPTED = "interrupted"
    """The connection broke while the answer was streaming."""
    CONFIG = "config"
    """The backend is not configured well enough to be used (missing key or URL)."""
    SERVICE_FAILED = "service_failed"
    """A model service sage-lsp launched failed to start (details: logPath, logTail,
    exitCode)."""


class BackendError(Exception):
    """A backend failure with its category, a one-line message and the next step to take."""

    def __init__(
        self,
        kind: ErrorKind,
        message: str,
        hint: str = "",
        details: Mapping[str, object] | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.hint = hint
        self.details = dict(details or {})
        """Machine-readable facts for editors, e.g. ``{"name": ..., "searched": [...]}``."""

    def __str__(self) -> str:
        return f"{self.message} — {self.hint}" if self.hint else self.message


@dataclass(frozen=True)
class Message:
    """One chat message as the model sees it."""

    role: Role
    """Who speaks: ``system``, ``user`` or ``assistant``."""
    content: str
    """What is said."""


@dataclass(frozen=True)
class Passage:
    """A retrieved passage placed in the prompt as ``[n]``."""

    n: int
    """Its number in the prompt, from 1."""
    title: str
    """Title of the document it comes from."""
    path: str
    """Path of that document."""
    heading: str
    """Heading of the section it comes from."""
    text: str
    """The passage itself."""
    score: float = 0.0
    """Retrieval score (higher is better)."""
    uri: str | None = None
    """``file:`` URI of that document, when the folder it was indexed from is known."""


def estimate_prompt_tokens(messages: Sequence[Message]) -> int:
    """A safe upper estimate of the tokens ``messages`` take as a prompt, for servers that do
    not count them: two characters (or three UTF-8 bytes) a token, whichever is more, plus room
    for each message's chat-template markers."""
    total = 8
    for message in messages:
        chars, size = len(message.content), len(message.content.encode())
        total += max(math.ceil(chars / 2), math.ceil(size / 3)) + 8
    return total


@dataclass(frozen=True)
class ContextWindow:
    """The served model's context: how many tokens it takes, and how to count a prompt's."""

    model: str
    """The model it belongs to."""
    tokens: int
    """The context length (vLLM's ``max_model_len``): prompt and answer together."""
    count: Callable[[Sequence[Message]], Awaitable[int]]
    """Counts the tokens of a prompt made of these messages (chat template included): with the
    server's tokenizer where it offers one, else :func:`estimate_prompt_tokens`."""


@dataclass(frozen=True)
class ChatRequest:
    """What a backend is asked to answer."""

    messages: tuple[Message, ...]
    """System prompt, history and the new user message, in order."""
    passages: tuple[Passage, ...] = ()
    """Retrieved passages already quoted in ``messages``, for backends that use them directly."""
    max_tokens: int | None = None
    """Largest answer wanted, or ``None`` for the server's default."""
    fit: Callable[[ContextWindow], Awaitable[ChatRequest]] | None = None
    """Shortens the request to fit a model's context; a backend that knows its model's context
    sends ``await fit(window)`` instead of this request. Raises :class:`BackendError` when
    the question cannot fit."""


@dataclass(frozen=True)
class Usage:
    """Token counts of one answer."""

    prompt_tokens: int
    """Tokens in the prompt."""
    completion_tokens: int
    """Tokens in the answer."""


@dataclass(frozen=True)
class Delta:
    """A piece of the answer's text."""

    text: str
    """The new text, never empty."""


@dataclass(frozen=True)
class Finish:
    """The end of an answer."""

    reason: FinishReason
    """``stop`` when the model finished, ``length`` when it hit the token limit."""
    usage: Usage | None = None
    """Token counts, when the backend reports them."""


StreamEvent = Delta | Finish


class Backend(Protocol):
    """Something that answers chat requests by streaming text.

    ``stream`` yields :class:`Delta` items and ends with one :class:`Finish`. Closing or
    cancelling the iterator closes the connection to the model at once. Failures raise
    :class:`BackendError`.
    """

    name: str
    """The backend's name (``mock``, ``openai``, ...)."""

    @property
    def model(self) -> str | None:
        """The model answering, once known."""
        ...

    def describe(self) -> str:
        """One line for the user: backend, model and where it runs."""
        ...

    async def prepare(self) -> None:
        """Get ready to answer (e.g. choose the served model); safe to call more than once."""
        ...

    def stream(self, request: ChatRequest) -> AsyncGenerator[StreamEvent, None]:
        """Answer ``request`` as a stream of deltas ending with a finish."""
        ...

    async def aclose(self) -> None:
        """Release connections and anything else the backend holds."""
        ...
