"""Garbage in, JSON-RPC errors out, and the server keeps serving; also property-based."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sage_lsp import protocol
from sage_lsp.server.transport import read_messages
from tests.support.rpc_client import RpcClient, frame

pytestmark = pytest.mark.slow

T = TypeVar("T")


async def healthy(client: RpcClient) -> None:
    response = await client.request(protocol.BACKEND_STATUS, {}, timeout=5)
    assert response["result"]["backend"] == "mock"


async def orphan(client: RpcClient) -> dict[str, Any]:
    await client.wait_for(lambda: bool(client.orphans), timeout=5)
    return client.orphans.pop(0)


@pytest.fixture
async def client() -> Any:
    c = await RpcClient.start()
    await c.initialize({"backend": "mock"})
    yield c
    assert await c.close() == 0


@pytest.mark.parametrize(
    "content", [b'model = "caf\xe9"\n', b"backend = \n"], ids=["bad-bytes", "bad-toml"]
)
async def test_a_broken_config_file_is_shown_and_the_defaults_serve(
    sage_home: Path, content: bytes
) -> None:
    path = sage_home / "config.toml"
    path.write_bytes(content)
    client = await RpcClient.start()
    await client.initialize()
    messages = client.notifications["window/showMessage"]
    await client.wait_for(lambda: bool(messages), timeout=10)
    [shown] = messages
    assert shown["type"] == 1 and shown["message"].startswith(f"sage: {path} is not valid TOML")
    assert "\n" not in shown["message"]
    answer = await client.request(protocol.CHAT, {"message": "hi"})
    assert "mock backend" in answer["result"]["text"]
    assert await client.close() == 0
    assert b"Traceback" not in await client.process.stderr.read()  # type: ignore[union-attr]


async def test_malformed_json_gets_a_parse_error_with_null_id(client: RpcClient) -> None:
    await client.send_bytes(frame(b'{"jsonrpc": "2.0", "id": 1, "method": '))
    error = await orphan(client)
    assert error["id"] is None and error["error"]["code"] == protocol.PARSE_ERROR
    await healthy(client)


async def test_random_bytes_and_missing_headers(client: RpcClient) -> None:
    await client.send_bytes(b"\x00\xff\xfe garbage without headers\r\n\r\n")
    error = await orphan(client)
    assert error["error"]["code"] == protocol.PARSE_ERROR
    await client.send_bytes(frame(bytes(range(256))))
    assert (await orphan(client))["error"]["code"] == protocol.PARSE_ERROR
    await healthy(client)


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 100_000,
        b'{"jsonrpc": "2.0", "id": 3, "method": "sage/chat", "params": ' + b"[" * 100_000,
    ],
    ids=["array", "params"],
)
async def test_deeply_nested_json_gets_a_parse_error(client: RpcClient, body: bytes) -> None:
    await client.send_bytes(frame(body))
    error = await orphan(client)
    assert error["id"] is None and error["error"]["code"] == protocol.PARSE_ERROR
    assert "recursion" in error["error"]["message"]
    await healthy(client)


async def test_a_header_line_over_the_read_limit_is_skipped(client: RpcClient) -> None:
    await client.send_bytes(b"X-Padding: " + b"x" * 2**26 + b"\r\n\r\n")
    assert (await orphan(client))["error"]["code"] == protocol.PARSE_ERROR
    await healthy(client)


async def test_an_unforeseen_failure_is_answered_and_reading_goes_on() -> None:
    sent: list[dict[str, Any]] = []

    class Failing:
        _shutdown = False

        def structure_message(self, raw: Any) -> Any:
            raise RuntimeError("not foreseen")

        def _send_data(self, data: dict[str, Any]) -> None:
            sent.append(data)

    reader = asyncio.StreamReader()
    request = {"jsonrpc": "2.0", "id": 1, "method": "sage/backend/status", "params": {}}
    reader.feed_data(frame(request) * 2)
    reader.feed_eof()
    await read_messages(reader, Failing())  # type: ignore[arg-type]
    assert [m["error"]["code"] for m in sent] == [protocol.INTERNAL_ERROR] * 2


@pytest.mark.parametrize(
    ("message", "code"),
    [
        ([1, 2, 3], protocol.INVALID_REQUEST),
        ({"id": 7, "method": "sage/backend/status", "params": {}}, protocol.INVALID_REQUEST),
        ({"jsonrpc": "2.0", "id": 8, "method": 42}, protocol.INVALID_REQUEST),
        ({"jsonrpc": "2.0", "id": {"x": 1}, "method": "sage/chat"}, protocol.INVALID_REQUEST),
        (
            {"jsonrpc": "2.0", "id": 9, "method": "textDocument/hover", "params": {}},
            protocol.INVALID_PARAMS,
        ),
        ({"jsonrpc": "2.0", "id": 10, "method": "sage/chat"}, protocol.INVALID_PARAMS),
    ],
)
async def test_invalid_envelopes_are_answered(client: RpcClient, message: Any, code: int) -> None:
    await client.send_bytes(frame(json.dumps(message).encode()))
    error = await orphan(client)  # sent as raw bytes, so no response has a waiter
    assert error["error"]["code"] == code, error
    await healthy(client)


async def test_params_may_be_left_out_where_none_are_needed(client: RpcClient) -> None:
    response = await client.request(protocol.BACKEND_STATUS)
    assert response["result"]["state"] == "idle"


# --- property-based: random params to every method -----------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
KEYS = ["message", "chatId", "index", "topK", "stream", "backend"]
backend_overrides = st.dictionaries(
    st.sampled_from(["backend", "topK", "model", "historyTokens", "maxTokens"]),
    json_values | st.sampled_from(["mock", "vllm", "gpt"]),
    max_size=3,
)
params_strategy = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {}, optional={k: json_values for k in KEYS} | {"backend": backend_overrides}
    ),
    st.fixed_dictionaries(
        {"message": st.text(min_size=1, max_size=30)},
        optional={"stream": st.booleans(), "chatId": st.text(max_size=5)},
    ),
)


class LoopThread:
    """An event loop in a thread, so that synchronous hypothesis tests can drive the client."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture(scope="module")
def shared() -> Iterator[tuple[LoopThread, RpcClient]]:
    loop = LoopThread()

    async def start() -> RpcClient:
        c = await RpcClient.start(env={"SAGE_HOME": "/nonexistent/sage-hypothesis"})
        await c.initialize({"backend": "mock"})
        return c

    client = loop.run(start())
    yield loop, client
    assert loop.run(client.close()) == 0
    loop.stop()


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(method=st.sampled_from(protocol.METHODS), params=params_strategy)
def test_random_params_get_a_response_or_an_error(
    shared: tuple[LoopThread, RpcClient], method: str, params: Any
) -> None:
    loop, client = shared
    response = loop.run(client.request(method, params))
    assert ("result" in response) != ("error" in response), response
    if "error" in response:
        assert response["error"]["code"] in {
            protocol.INVALID_PARAMS,
            protocol.BACKEND_UNAVAILABLE,
            protocol.MODEL_NOT_FOUND,
        }, response
    status = loop.run(client.request(protocol.BACKEND_STATUS, {}, timeout=10))
    assert "result" in status
