"""Editor protocol v1: every ``sage/*`` method and notification, its params, result and errors.

This module is the one place that names the protocol; docs/protocol.md explains it to client
authors with example exchanges. Payloads are dataclasses with snake_case fields; on the wire
they are JSON objects with camelCase keys (:func:`to_wire`), and optional fields that are
``None`` are left out. Params are checked by :func:`from_wire`, which raises
:class:`InvalidParams` naming the offending field.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from sage_lsp.core.errors import InvalidInput

PROTOCOL_VERSION = 1
"""Advertised as ``capabilities.experimental.sage.version``."""
DEFAULT_TCP_PORT = 2087
"""The port of ``sage lsp --tcp`` when none is given (stdio is the default transport)."""

# --- requests (client -> server) -------------------------------------------------------------
CHAT = "sage/chat"
"""Ask a question in a conversation; streams :data:`CHAT_CHUNK`; params :class:`ChatParams`,
result :class:`ChatResult`."""
CHAT_RESET = "sage/chat/reset"
"""Forget a conversation's turns; params :class:`ChatIdParams`, result ``{}``."""
CHAT_HISTORY = "sage/chat/history"
"""A conversation's messages; params :class:`ChatIdParams`, result :class:`HistoryResult`."""
BACKEND_STATUS = "sage/backend/status"
"""The backend's state; params ``{}``, result :class:`BackendStatus`."""
BACKEND_START = "sage/backend/start"
"""Prepare the backend now (connect, choose the model); result :class:`BackendStatus`."""
BACKEND_STOP = "sage/backend/stop"
"""Release this session's hold on the backend; result :class:`BackendStatus`."""
MODELS = "sage/models"
"""The finetuned models in the store; params ``{}``, result :class:`ModelsResult`."""
SERVICES = "sage/services"
"""The live model services of the registry; params ``{}``, result :class:`ServicesResult`."""
BUILD_PIPELINE = "sage/buildPipeline"
"""Build a SAGE pipeline plan with the session's backend; params :class:`BuildPipelineParams`,
result :class:`BuildPipelineResult`; -32004 when no valid plan came out."""
INDEX_LIST = "sage/index/list"
"""The retrieval indexes; params ``{}``, result :class:`IndexListResult`."""
INDEX_INGEST = "sage/index/ingest"
"""Build or update an index from a folder; params :class:`IngestParams`, result
:class:`IngestResult`; reports ``$/progress`` when the client sent a ``workDoneToken``."""

# --- notifications (server -> client) --------------------------------------------------------
CHAT_CHUNK = "sage/chatChunk"
"""A piece of an answer while ``sage/chat`` runs; params :class:`ChatChunk`."""
STATUS_DID_CHANGE = "sage/status/didChange"
"""The backend's state changed; params :class:`StatusChange`."""

# --- commands (workspace/executeCommand and code actions) ------------------------------------
COMMAND_EXPLAIN = "sage.explain"
"""The command of the "Sage: explain" code action, arguments ``[ContextRef]``: run by the
client (it opens the chat with that context), so not in ``executeCommandProvider``."""
COMMAND_FIX = "sage.fix"
"""The command of the "Sage: fix" code action, run by the server: arguments ``[FixArgs]``,
result :class:`FixResult`; the replacement reaches the document through
``workspace/applyEdit``."""

METHODS: tuple[str, ...] = (
    CHAT,
    CHAT_RESET,
    CHAT_HISTORY,
    BACKEND_STATUS,
    BACKEND_START,
    BACKEND_STOP,
    MODELS,
    SERVICES,
    INDEX_LIST,
    INDEX_INGEST,
    BUILD_PIPELINE,
)
"""The requests this server implements, as listed in ``capabilities.experimental.sage``."""

# --- error codes -----------------------------------------------------------------------------
PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
"""A handler failed unexpectedly; the server keeps serving."""
REQUEST_CANCELLED = -32800
BACKEND_UNAVAILABLE = -32001
"""Connection refused, authentication failed, server error, timeout, broken stream;
``data: {kind, hint}``."""
MODEL_NOT_FOUND = -32002
"""The model is not served or not found; ``data: {name, searched, hint}``."""
SERVICE_FAILED = -32003
"""A model service failed to start; ``data: {logPath, logTail, exitCode}``."""
PIPELINE_FAILED = -32004
"""A pipeline could not be built."""
UNAUTHORIZED = -32005
"""A TCP client's first message is not an ``initialize`` with the session's token
(``initializationOptions.authToken``); the connection is closed."""

BackendState = Literal["idle", "starting", "ready", "error"]


class InvalidParams(InvalidInput, ValueError):
    """Params that do not match the method's params class; the message names the field."""


# --- payloads --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChatParams:
    """Params of ``sage/chat``."""

    message: str
    """The question; must not be empty."""
    chat_id: str | None = None
    """The conversation to continue; a new one starts when absent."""
    index: str | None = None
    """Retrieval index for this turn; ``null`` (or ``"none"``) turns retrieval off."""
    top_k: int | None = None
    """Passages to retrieve for this turn (1..20)."""
    backend: dict[str, Any] | None = None
    """Configuration keys that override the session's for this turn only."""
    stream: bool = True
    """Send ``sage/chatChunk`` notifications while the answer is written."""
    context: list[ContextRef] | None = None
    """Editor documents (or ranges of them) the model sees with the question."""


@dataclass(frozen=True)
class ContextRef:
    """A document, or a range of it, attached to a question (``context`` of
    :class:`ChatParams`) or named by a code action's ``sage.explain``."""

    uri: str
    """The document: the editor's synced copy when it is open, else a ``file:`` URI on disk."""
    range: dict[str, Any] | None = None
    """An LSP Range in the negotiated position encoding; the whole document when absent."""
    diagnostics: list[dict[str, Any]] | None = None
    """LSP Diagnostics the client shows there, listed under the code for the model."""


@dataclass(frozen=True)
class AttachedContext:
    """A document the model saw with the question (``context`` of :class:`ChatResult`)."""

    uri: str
    """The document."""
    truncated: bool
    """Shortened to fit the ``contextTokens`` budget (the start of the range was kept)."""
    range: dict[str, Any] | None = None
    """The range attached, as the client sent it; absent for a whole document."""


@dataclass(frozen=True)
class ChatIdParams:
    """Params of ``sage/chat/reset`` and ``sage/chat/history``."""

    chat_id: str
    """The conversation."""


@dataclass(frozen=True)
class Empty:
    """``{}``: the params of the methods that take none (absent params are accepted too), and
    the result of ``sage/chat/reset``."""


@dataclass(frozen=True)
class ChatChunk:
    """Params of ``sage/chatChunk``."""

    chat_id: str
    """The conversation the answer belongs to."""
    turn: int
    """The turn's number in the conversation, from 1."""
    index: int
    """The chunk's number within the turn, from 0."""
    delta: str
    """New text; the turn's deltas concatenate to the result's ``text``."""


@dataclass(frozen=True)
class Source:
    """A retrieved passage quoted in the prompt as ``[n]``."""

    n: int
    """Its number in the prompt."""
    title: str
    """Document title."""
    path: str
    """Document path."""
    heading: str
    """Section heading."""
    score: float
    """Retrieval score."""
    uri: str | None = None
    """``file:`` URI of the document (``path`` is relative to the folder that was indexed)."""


@dataclass(frozen=True)
class Usage:
    """Token counts reported by the model server."""

    prompt_tokens: int
    """Tokens in the prompt."""
    completion_tokens: int
    """Tokens in the answer."""


@dataclass(frozen=True)
class Timings:
    """How long the turn took."""

    ttft_ms: float
    """From the request to the first piece of text."""
    total_ms: float
    """From the request to the end of the answer."""
    tokens_per_second: float
    """Answer tokens per second after the first."""


@dataclass(frozen=True)
class ChatResult:
    """Result of ``sage/chat``."""

    chat_id: str
    """The conversation (new or continued)."""
    turn: int
    """The turn's number, from 1."""
    text: str
    """The whole answer."""
    finish_reason: Literal["stop", "length"]
    """``stop``, or ``length`` when the token limit cut the answer."""
    timings: Timings
    """How long it took."""
    sources: list[Source] = field(default_factory=list)
    """Retrieved passages the answer may cite."""
    usage: Usage | None = None
    """Token counts, when the server reports them."""
    trimmed: Trimmed | None = None
    """What was left out of the prompt to fit the model's context; absent when nothing was."""
    context: list[AttachedContext] | None = None
    """The editor context the model saw, in the order of the params; absent when none was sent."""


@dataclass(frozen=True)
class Trimmed:
    """What ``sage/chat`` left out of the prompt so that it fits the model's context."""

    note: str
    """One sentence for the user, e.g. "left out passages [3], [4] to fit m's context ..."."""
    turns: int
    """Past turns left out of the history, the oldest first."""
    passages: list[Source]
    """Retrieved passages left out, the lowest-ranked first (not in ``sources``)."""
    cut_chars: int
    """Characters cut from the text attached to the question (its fenced blocks)."""
    context_tokens: int
    """The model's context length."""
    reserved_tokens: int
    """Tokens of it kept for the answer (``maxTokens``)."""
    prompt_tokens: int
    """The prompt's tokens as sent."""


@dataclass(frozen=True)
class HistoryMessage:
    """One message of a conversation."""

    role: Literal["user", "assistant"]
    """Who said it."""
    content: str
    """What was said (a stopped answer holds the part that arrived)."""


@dataclass(frozen=True)
class HistoryResult:
    """Result of ``sage/chat/history``."""

    messages: list[HistoryMessage]
    """Oldest first; the system prompt is not included."""


@dataclass(frozen=True)
class BackendStatus:
    """Result of ``sage/backend/status``, ``/start`` and ``/stop``."""

    backend: str
    """The configured backend."""
    model: str | None
    """The model, once known."""
    state: BackendState
    """``idle`` (nothing prepared), ``starting``, ``ready`` or ``error``."""
    endpoint: str | None = None
    """The OpenAI-compatible endpoint in use."""
    service: HeldService | None = None
    """The model service in use (managed backends)."""
    message: str | None = None
    """What happened last, e.g. the error."""
    metrics: dict[str, float] | None = None
    """Counters: ``turns``, ``lastTtftMs``, ``lastTokensPerSecond``."""


@dataclass(frozen=True)
class StatusChange:
    """Params of ``sage/status/didChange``."""

    state: BackendState
    """The new state."""
    backend: str
    """The configured backend."""
    model: str | None
    """The model, once known."""
    message: str | None = None
    """What happened."""


@dataclass(frozen=True)
class ModelInfo:
    """One finetuned model of the store."""

    name: str
    """Its folder name under ``$SAGE_HOME/finetune_output``."""
    base_model: str | None
    """The base model from ``finetune_meta.json``."""
    state: Literal["merged", "adapter", "checkpoints"]
    """What the folder holds: a merged model, a final adapter, or checkpoints only."""
    path: str
    """The folder."""


@dataclass(frozen=True)
class ModelsResult:
    """Result of ``sage/models``."""

    models: list[ModelInfo]
    """By name."""


@dataclass(frozen=True)
class HeldService:
    """A model service of the registry: the one a managed backend holds (``service`` of
    :class:`BackendStatus`), and the base of :class:`ServiceInfo`."""

    name: str
    """The service name (the model's)."""
    served_model_name: str
    """The name requests use."""
    port: int
    """Its port on 127.0.0.1."""
    pid: int | None
    """vLLM's API server process."""
    owned: bool
    """Always true for registry entries: sage-lsp launched it and will stop it."""
    holders: int
    """Live sessions holding it."""
    log_path: str
    """Its log file."""
    started_at: float
    """Launch time (seconds since the epoch)."""


@dataclass(frozen=True)
class ServiceInfo(HeldService):
    """One live model service of the registry (``sage/services``), with its state."""

    state: str
    """``starting``, ``ready``, ``failed`` or ``stopping``."""


@dataclass(frozen=True)
class ServicesResult:
    """Result of ``sage/services``."""

    services: list[ServiceInfo]
    """Live services only."""


@dataclass(frozen=True)
class IndexInfo:
    """One retrieval index."""

    name: str
    """Its name (``index`` in ``sage/chat``)."""
    num_documents: int
    """Documents in it."""
    num_chunks: int
    """Chunks in it."""
    source_dir: str | None
    """The folder it was last ingested from."""
    updated_at: str | None
    """When it was last ingested."""
    path: str
    """Its database file."""


@dataclass(frozen=True)
class IndexListResult:
    """Result of ``sage/index/list``."""

    indexes: list[IndexInfo]
    """By name."""


@dataclass(frozen=True)
class IngestParams:
    """Params of ``sage/index/ingest``."""

    source: str
    """The folder to read (``.md .markdown .mdx .rst .txt``)."""
    index: str
    """The index to build or update."""
    chunk_size: int = 800
    """Characters per chunk (at least 100)."""
    chunk_overlap: int = 160
    """Characters neighbouring chunks share."""
    work_done_token: str | int | None = None
    """Progress token: when given, ``$/progress`` reports files done."""


@dataclass(frozen=True)
class IngestResult:
    """Result of ``sage/index/ingest``."""

    index: IndexInfo
    """The index afterwards."""
    added: int
    """New documents."""
    updated: int
    """Changed documents read again."""
    removed: int
    """Documents no longer in the folder."""
    unchanged: int
    """Documents skipped because they did not change."""
    skipped: int
    """Binary files skipped."""
    seconds: float
    """How long it took."""
    warnings: list[str]
    """One line per file left out (a link out of the folder, a file over ``ingestMaxFileMb``)."""


@dataclass(frozen=True)
class BuildPipelineParams:
    """Params of ``sage/buildPipeline``."""

    description: str
    """What the pipeline should do."""
    name: str | None = None
    """The pipeline's name (the model's or the blueprint's otherwise)."""
    chat_id: str | None = None
    """A conversation to note the build in (its history gets the request and the YAML)."""
    target_uri: str | None = None
    """A file to create with the YAML: the result then carries a WorkspaceEdit."""


@dataclass(frozen=True)
class BuildPipelineResult:
    """Result of ``sage/buildPipeline``."""

    name: str
    """The pipeline's name."""
    yaml: str
    """The plan as YAML."""
    valid: bool
    """Always true in a result (an invalid plan is error -32004)."""
    errors: list[str]
    """Warnings of the plan (e.g. operator classes outside the catalog)."""
    attempts: int
    """How many answers the model needed."""
    edit: dict[str, Any] | None = None
    """A WorkspaceEdit creating ``targetUri`` with the YAML, when it was given."""


@dataclass(frozen=True)
class FixArgs:
    """The argument of ``sage.fix`` (``workspace/executeCommand`` ``arguments: [FixArgs]``)."""

    uri: str
    """The document to change."""
    range: dict[str, Any]
    """The LSP Range to replace, in the negotiated position encoding."""
    diagnostics: list[dict[str, Any]] | None = None
    """LSP Diagnostics to fix (from the code action)."""
    instruction: str | None = None
    """What to change, in words; "fix the problems" when absent."""


@dataclass(frozen=True)
class FixResult:
    """The result of ``sage.fix``."""

    applied: bool
    """The client's answer to ``workspace/applyEdit``."""
    text: str
    """The replacement the model wrote, re-indented to the range."""


# --- wire conversion -------------------------------------------------------------------------


def camel(name: str) -> str:
    """``chat_id`` -> ``chatId``."""
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def to_wire(value: Any) -> Any:
    """A payload (or list/dict of them) as JSON-ready data with camelCase keys.

    Optional fields (those with a default) are left out when ``None``; required ones are sent
    as ``null``.
    """
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            camel(f.name): to_wire(getattr(value, f.name))
            for f in dataclasses.fields(value)
            if getattr(value, f.name) is not None or f.default is dataclasses.MISSING
        }
    if isinstance(value, list | tuple):
        return [to_wire(item) for item in value]
    if isinstance(value, dict):
        return {key: to_wire(item) for key, item in value.items()}
    return value


P = TypeVar("P")


def _describe(kind: Any) -> str:
    names = {str: "a string", int: "an integer", bool: "a boolean", float: "a number"}
    if typing.get_origin(kind) is dict or dataclasses.is_dataclass(kind):
        return "an object"
    if typing.get_origin(kind) is list:
        return "an array"
    return names.get(kind, getattr(kind, "__name__", str(kind)))


def _check(kind: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(kind)
        if value is None and type(None) in options:
            return None
        inner = [option for option in options if option is not type(None)]
        if len(inner) == 1:
            return _check(inner[0], value, where)
        for option in inner:
            try:
                return _check(option, value, where)
            except InvalidParams:
                continue
        kinds = " or ".join(_describe(option) for option in inner)
        raise InvalidParams(f"{where} must be {kinds}, not {type(value).__name__}")
    if origin is dict:
        if not isinstance(value, dict):
            raise InvalidParams(f"{where} must be an object, not {type(value).__name__}")
        return value
    if origin is list:
        if not isinstance(value, list):
            raise InvalidParams(f"{where} must be an array, not {type(value).__name__}")
        (item,) = typing.get_args(kind)
        return [_check(item, one, f"{where}[{i}]") for i, one in enumerate(value)]
    if isinstance(kind, type) and dataclasses.is_dataclass(kind):
        if not isinstance(value, dict):
            raise InvalidParams(f"{where} must be an object, not {type(value).__name__}")
        return _build(kind, value, f"{where}.")
    if kind is bool:
        ok = isinstance(value, bool)
    elif kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    else:
        ok = isinstance(value, kind)
    if not ok:
        raise InvalidParams(f"{where} must be {_describe(kind)}, not {type(value).__name__}")
    return value


_HINTS: dict[type, dict[str, Any]] = {}


def _type_hints(cls: type) -> dict[str, Any]:
    """``cls``'s field types, evaluated once per class (the annotations are strings)."""
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def from_wire(cls: type[P], raw: Any) -> P:
    """Check ``raw`` params against ``cls`` and build it; unknown keys are ignored.

    Absent params (``None``) count as ``{}``. Raises :class:`InvalidParams` naming the field.
    """
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise InvalidParams("params must be an object")
    return _build(cls, raw, "")


def _build(cls: type[P], raw: dict[str, Any], prefix: str) -> P:
    """``cls`` from the checked fields of ``raw``; errors name a field as ``prefix`` + key."""
    hints = _type_hints(cls)
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        key = camel(f.name)
        if key not in raw:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise InvalidParams(f"{prefix}{key} is required")
            continue
        values[f.name] = _check(hints[f.name], raw[key], prefix + key)
    return cls(**values)
