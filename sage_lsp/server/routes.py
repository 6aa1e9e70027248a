"""Every method the server answers, declared once: its params class, its result class and its
handler; and the one dispatcher that parses params, maps the error family and serialises the
result.

Handlers are named as ``module:function`` under :mod:`sage_lsp.server` and imported on their
first request, so that start-up (the ``initialize`` answer) loads none of them, nor what they
need (retrieval, pipelines, the chat engine, YAML).
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from lsprotocol import types

from sage_lsp import protocol
from sage_lsp.core.errors import SageError
from sage_lsp.protocol import (
    BACKEND_START,
    BACKEND_STATUS,
    BACKEND_STOP,
    BUILD_PIPELINE,
    CHAT,
    CHAT_HISTORY,
    CHAT_RESET,
    INDEX_INGEST,
    INDEX_LIST,
    MODELS,
    SERVICES,
    BackendStatus,
    BuildPipelineParams,
    BuildPipelineResult,
    ChatIdParams,
    ChatParams,
    ChatResult,
    Empty,
    HistoryResult,
    IndexListResult,
    IngestParams,
    IngestResult,
    ModelsResult,
    ServicesResult,
)
from sage_lsp.server.errors import rpc_error

if TYPE_CHECKING:
    from sage_lsp.server.app import SageServer
    from sage_lsp.server.session import Session

P = TypeVar("P")

TRIGGER_CHARACTERS = [":", " "]
"""Characters after which the editor asks for completion in a pipeline file by itself."""


@dataclass(frozen=True)
class Request(Generic[P]):
    """One ``sage/*`` request as its handler gets it."""

    server: SageServer
    """The server it came to."""
    params: P
    """Its params, checked against the route's params class."""
    sent: Mapping[str, Any]
    """The params as sent, for a handler that must tell an absent key from ``null``."""

    @property
    def session(self) -> Session:
        """The server's session."""
        return self.server.session


def _load(handler: str) -> Callable[..., Any]:
    """The function ``module:function`` of :mod:`sage_lsp.server`, importing its module."""
    module, function = handler.split(":")
    loaded: Callable[..., Any] = getattr(
        importlib.import_module(f"sage_lsp.server.{module}"), function
    )
    return loaded


@dataclass(frozen=True)
class Route:
    """A ``sage/*`` request: params and result are :mod:`sage_lsp.protocol` classes."""

    method: str
    """The method name."""
    params: type
    """What :func:`protocol.from_wire` checks the params against (-32602 names the field)."""
    result: type
    """What the handler returns; sent through :func:`protocol.to_wire`."""
    handler: str
    """``module:function``: an ``async`` function taking a :class:`Request` of ``params``."""

    async def dispatch(self, server: SageServer, raw: Any) -> Any:
        """Answer one request: parse its params, run the handler, map a failure of the error
        family to its JSON-RPC error, serialise the result."""
        try:
            params: object = protocol.from_wire(self.params, raw)
            handle: Callable[[Request[Any]], Awaitable[Any]] = _load(self.handler)
            result = await handle(Request(server, params, raw or {}))
        except SageError as exc:
            raise rpc_error(exc, self.method) from None
        if not isinstance(result, self.result):
            raise TypeError(f"{self.method} answered {result!r}, not a {self.result.__name__}")
        return protocol.to_wire(result)


@dataclass(frozen=True)
class Feature:
    """A standard LSP method: pygls converts its params and result (lsprotocol types)."""

    method: str
    """The method name."""
    handler: str
    """``module:function``: a (synchronous) function taking the server and the params."""
    options: Any = None
    """The feature's options in the capabilities (e.g. completion's trigger characters)."""

    def dispatch(self, server: SageServer, params: Any) -> Any:
        """Run the handler."""
        return _load(self.handler)(server, params)


@dataclass(frozen=True)
class AsyncFeature(Feature):
    """A standard LSP method whose handler is ``async``: it runs as a task, which
    ``$/cancelRequest`` cancels."""

    async def dispatch(self, server: SageServer, params: Any) -> Any:
        """Run the handler."""
        return await _load(self.handler)(server, params)


@dataclass(frozen=True)
class Command:
    """A ``workspace/executeCommand`` command the server runs (listed in
    ``executeCommandProvider``)."""

    name: str
    """The command's name."""
    handler: str
    """``module:function``: an ``async`` function taking the server and the arguments (a list),
    returning a :mod:`sage_lsp.protocol` payload; it runs as a task, which ``$/cancelRequest``
    cancels."""

    def bound(self, server: SageServer) -> Callable[..., Awaitable[Any]]:
        """The handler to register with pygls' ``command`` (which lists it in the
        capabilities); ``SageProtocol`` calls it with the arguments as sent. A failure of the
        error family becomes its JSON-RPC error."""

        async def run(*arguments: Any) -> Any:
            try:
                result = await _load(self.handler)(server, list(arguments))
            except SageError as exc:
                raise rpc_error(exc, self.name) from None
            return protocol.to_wire(result)

        return run


ROUTES = (
    Route(CHAT, ChatParams, ChatResult, "chat_handlers:chat"),
    Route(CHAT_RESET, ChatIdParams, Empty, "chat_handlers:reset"),
    Route(CHAT_HISTORY, ChatIdParams, HistoryResult, "chat_handlers:history"),
    Route(BACKEND_STATUS, Empty, BackendStatus, "backend_handlers:status"),
    Route(BACKEND_START, Empty, BackendStatus, "backend_handlers:start"),
    Route(BACKEND_STOP, Empty, BackendStatus, "backend_handlers:stop"),
    Route(MODELS, Empty, ModelsResult, "service_handlers:models"),
    Route(SERVICES, Empty, ServicesResult, "service_handlers:services"),
    Route(INDEX_LIST, Empty, IndexListResult, "index_handlers:index_list"),
    Route(INDEX_INGEST, IngestParams, IngestResult, "index_handlers:ingest"),
    Route(BUILD_PIPELINE, BuildPipelineParams, BuildPipelineResult, "build_handlers:build"),
)
"""The ``sage/*`` requests, in the order of :data:`protocol.METHODS`."""

FEATURES = (
    Feature(types.TEXT_DOCUMENT_DID_OPEN, "pipeline_handlers:did_open"),
    Feature(types.TEXT_DOCUMENT_DID_CHANGE, "pipeline_handlers:did_change"),
    Feature(types.TEXT_DOCUMENT_DID_CLOSE, "pipeline_handlers:did_close"),
    Feature(types.TEXT_DOCUMENT_HOVER, "pipeline_handlers:hover"),
    Feature(
        types.TEXT_DOCUMENT_COMPLETION,
        "pipeline_handlers:completion",
        types.CompletionOptions(trigger_characters=TRIGGER_CHARACTERS),
    ),
    Feature(
        types.TEXT_DOCUMENT_CODE_ACTION,
        "code_actions:code_actions",
        types.CodeActionOptions(
            code_action_kinds=[
                types.CodeActionKind.QuickFix,
                types.CodeActionKind.Refactor,
                types.CodeActionKind.RefactorRewrite,
            ]
        ),
    ),
    AsyncFeature(
        types.TEXT_DOCUMENT_INLINE_COMPLETION,
        "completion_handlers:inline_completion",
        types.InlineCompletionOptions(),
    ),
)
"""The language features: those of pipeline files, and code actions and inline completion in
any document."""

COMMANDS = (Command(protocol.COMMAND_FIX, "code_actions:fix"),)
"""The commands the server runs (``sage.explain`` is the client's)."""
