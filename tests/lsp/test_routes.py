"""The declarative routes: each names its params and result classes and a handler that takes
and returns exactly those; one dispatcher parses, maps the error family and serialises."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import typing
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from pygls.exceptions import JsonRpcException

from sage_lsp import protocol
from sage_lsp.config import SettingsError
from sage_lsp.core.errors import BackendError, ErrorKind, ServiceFailure
from sage_lsp.rag.index import RetrievalError
from sage_lsp.server.errors import rpc_error
from sage_lsp.server.routes import FEATURES, ROUTES, Request, Route, _load
from sage_lsp.services.merge import MergeError
from sage_lsp.services.store import InvalidModelName


def test_every_method_of_the_protocol_has_one_route() -> None:
    assert tuple(route.method for route in ROUTES) == protocol.METHODS


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: r.method)
def test_a_handler_takes_the_routes_params_and_returns_its_result(route: Route) -> None:
    handler = _load(route.handler)
    hints = typing.get_type_hints(handler)
    assert asyncio.iscoroutinefunction(handler)
    assert hints.pop("return") is route.result
    (request,) = hints.values()
    assert typing.get_origin(request) is Request
    assert typing.get_args(request) == (route.params,)


@pytest.mark.parametrize("feature", FEATURES, ids=lambda f: f.method)
def test_a_feature_handler_is_there(feature: Any) -> None:
    assert callable(_load(feature.handler))


def _server(**conversations: Any) -> Any:
    session = SimpleNamespace(conversations=conversations, known=conversations.get)
    return SimpleNamespace(session=session)


def _dispatch(method: str, raw: Any, server: Any = None) -> Any:
    route = next(r for r in ROUTES if r.method == method)
    return asyncio.run(route.dispatch(server or _server(), raw))


def test_bad_params_are_32602_naming_the_field() -> None:
    with pytest.raises(JsonRpcException) as caught:
        _dispatch(protocol.CHAT_HISTORY, {"chatId": 3})
    assert caught.value.code == -32602
    assert caught.value.message == (
        "invalid params for sage/chat/history: chatId must be a string, not int"
    )
    with pytest.raises(JsonRpcException) as caught:
        _dispatch(protocol.BACKEND_STATUS, [1])
    assert (
        caught.value.message == "invalid params for sage/backend/status: params must be an object"
    )


def test_a_handlers_invalid_input_is_32602_and_its_result_is_serialised() -> None:
    with pytest.raises(JsonRpcException) as caught:
        _dispatch(protocol.CHAT_RESET, {"chatId": "nope"})
    assert caught.value.code == -32602
    assert caught.value.message == "invalid params for sage/chat/reset: chatId 'nope' is unknown"
    conversation = SimpleNamespace(history=lambda: [SimpleNamespace(role="user", content="hi")])
    wire = _dispatch(protocol.CHAT_HISTORY, {"chatId": "c"}, _server(c=conversation))
    assert wire == {"messages": [{"role": "user", "content": "hi"}]}


def test_a_result_of_the_wrong_class_is_refused() -> None:
    route = Route("sage/x", protocol.Empty, protocol.ModelsResult, "backend_handlers:status")
    server = SimpleNamespace(session=SimpleNamespace(status=lambda: "not a result"))
    with pytest.raises(TypeError, match="not a ModelsResult"):
        asyncio.run(route.dispatch(server, None))


def test_the_family_maps_to_json_rpc_codes() -> None:
    for invalid in (
        SettingsError("x"),
        RetrievalError("x"),
        InvalidModelName("x"),
        protocol.InvalidParams("x"),
    ):
        error = rpc_error(invalid, "sage/m")
        assert (error.code, error.message) == (-32602, "invalid params for sage/m: x")
    merge = MergeError(ErrorKind.CONFIG, "merge failed", log_path=Path("/l"), log_lines=["a"])
    error = rpc_error(merge, "sage/chat")
    assert error.code == -32003
    assert error.data == {"logPath": "/l", "logTail": ["a"], "exitCode": None}
    assert rpc_error(ServiceFailure(ErrorKind.SERVICE_FAILED, "died"), "m").data == {
        "logPath": None, "logTail": [], "exitCode": None,
    }  # fmt: skip
    missing = BackendError(ErrorKind.MODEL_NOT_FOUND, "no m", "pick one", {"name": "m"})
    error = rpc_error(missing, "sage/chat")
    assert (error.code, error.message) == (-32002, "no m — pick one")
    assert error.data == {"name": "m", "searched": [], "hint": "pick one"}
    error = rpc_error(BackendError(ErrorKind.AUTH, "refused", "check the key"), "sage/chat")
    assert (error.code, error.data) == (-32001, {"kind": "auth", "hint": "check the key"})


def _loaded_by(code: str) -> set[str]:
    """The modules a fresh interpreter holds after running ``code``."""
    code += "\nimport sys\nprint(' '.join(sorted(sys.modules)))\n"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(run.stdout.split())


DEFERRED = {
    "yaml", "sage_lsp.pipeline", "sage_lsp.rag", "sage_lsp.chat", "sage_lsp.backends",
    "sage_lsp.services", "sage_lsp.server.tcp", "openai", "httpx", "tempfile",
}  # fmt: skip
"""What the ``initialize`` answer does not need, so start-up does not import it."""


def test_start_up_imports_no_handler_nor_what_they_need() -> None:
    loaded = _loaded_by(
        "from sage_lsp.server import main\nmain.SageServer(*main.initial_settings())"
    )
    handlers = {f"sage_lsp.server.{r.handler.split(':')[0]}" for r in (*ROUTES, *FEATURES)}
    assert loaded & (DEFERRED | handlers) == set()


def test_the_sage_command_loads_what_a_command_runs_only_when_it_runs() -> None:
    assert _loaded_by("import sage_lsp.cli.app") & DEFERRED == set()
