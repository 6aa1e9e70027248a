"""The backend interface: a chat request in, an async stream of text deltas and a finish out."""

from __future__ import annotations

import enum
from collections.abc import AsyncGenerator, Mapping
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


@dataclass(frozen=True)
class ChatRequest:
    """What a backend is asked to answer."""

    messages: tuple[Message, ...]
    """System prompt, history and the new user message, in order."""
    passages: tuple[Passage, ...] = ()
    """Retrieved passages already quoted in ``messages``, for backends that use them directly."""
    max_tokens: int | None = None
    """Largest answer wanted, or ``None`` for the server's default."""


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
