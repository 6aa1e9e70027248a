"""The backend interface: a chat request in, an async stream of text deltas and a finish out."""

from __future__ import annotations

import math
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

# The error family and the chat types, re-exported as part of the backend interface.
from sage_lsp.core.errors import BackendError as BackendError
from sage_lsp.core.errors import ErrorKind as ErrorKind
from sage_lsp.core.types import Message as Message
from sage_lsp.core.types import Passage as Passage

FinishReason = Literal["stop", "length"]


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
class CompletionRequest:
    """A text completion (``/v1/completions``): the model continues ``prompt``."""

    prompt: str
    """The text the model continues, e.g. a fill-in-the-middle prompt."""
    stop: tuple[str, ...] = ()
    """Where the completion ends (not included in it)."""
    max_tokens: int = 64
    """Largest completion wanted."""


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

    def complete(self, request: CompletionRequest) -> AsyncGenerator[StreamEvent, None]:
        """Continue ``request.prompt`` as a stream of deltas ending with a finish (raw text,
        no chat template); closing the iterator closes the connection at once."""
        ...

    async def tokenizer_tokens(self) -> frozenset[str]:
        """The added tokens of the model's tokenizer (its ``tokenizer_config.json``) where the
        backend knows the model's files; empty where it does not."""
        ...

    async def aclose(self) -> None:
        """Release connections and anything else the backend holds."""
        ...
