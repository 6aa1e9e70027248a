"""The chat types that backends, retrieval, pipelines and the chat engine all speak."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Role = Literal["system", "user", "assistant"]


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
