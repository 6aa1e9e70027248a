"""sage-lsp's one error family: every failure a user or an editor sees is a :class:`SageError`.

Each carries a :class:`ErrorKind`, a one-line message, the next step to take (``hint``) and
machine-readable ``details``. The server maps the family to JSON-RPC errors in one place
(``server/errors.py``), the CLI to exit codes in one place (``cli/runner.py``).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping


class ErrorKind(enum.Enum):
    """What went wrong, as the user needs to know it."""

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
    INVALID = "invalid"
    """Something the user or the client gave cannot be used: a param, a setting, a model or
    index name, an index that is missing or damaged. The message names it."""


class SageError(Exception):
    """A failure with its category, a one-line message and the next step to take."""

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


class InvalidInput(SageError):
    """Something the user or the client gave cannot be used (kind :attr:`ErrorKind.INVALID`):
    JSON-RPC -32602, exit code 2."""

    def __init__(
        self, message: str, hint: str = "", details: Mapping[str, object] | None = None
    ) -> None:
        super().__init__(ErrorKind.INVALID, message, hint, details)


class BackendError(SageError):
    """A failure to get an answer from a model: its backend, its service or its prompt."""


class ServiceFailure(BackendError):
    """A model service sage-lsp runs, or the merge that prepares its model, failed; the
    details carry ``logPath``, ``logTail`` and ``exitCode`` (JSON-RPC -32003, whatever its
    kind)."""
