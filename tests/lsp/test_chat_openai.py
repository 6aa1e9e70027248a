"""sage/chat through the real server to the in-test OpenAI-compatible HTTP server."""

from __future__ import annotations

import asyncio
import time

import pytest
from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pytest_lsp import LanguageClient

from sage_lsp import protocol
from tests.lsp.conftest import chunks_of, request
from tests.support.openai_server import OpenAIServer, Reply


async def use_server(client: LanguageClient, server: OpenAIServer) -> None:
    settings = {"backend": "compatible", "baseUrl": server.base_url}
    client.set_configuration(settings, section="sage")
    client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(settings={"sage": settings})
    )
    for _ in range(100):
        if (await request(client, protocol.BACKEND_STATUS, {}))["backend"] == "compatible":
            return
        await asyncio.sleep(0.02)
    raise AssertionError("configuration did not arrive")


async def test_streams_and_sends_history(
    client: LanguageClient, openai_server: OpenAIServer
) -> None:
    await use_server(client, openai_server)
    openai_server.reply = Reply(tokens=["Paris", " it", " is."])
    first = await request(client, protocol.CHAT, {"message": "Capital of France?"})
    assert first["text"] == "Paris it is."
    assert [c["delta"] for c in chunks_of(client, first["chatId"], 1)] == ["Paris", " it", " is."]
    assert first["usage"]["completionTokens"] == 3
    openai_server.reply = Reply(tokens=["Two", " million."])
    second = await request(client, protocol.CHAT, {"message": "People?", "chatId": first["chatId"]})
    assert second["text"] == "Two million." and second["turn"] == 2
    messages = openai_server.requests[-1]["messages"]
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert messages[2]["content"] == "Paris it is." and messages[3]["content"] == "People?"
    status = await request(client, protocol.BACKEND_STATUS, {})
    assert status["state"] == "ready" and status["model"] == "tiny-model"
    assert status["endpoint"] == openai_server.base_url and status["metrics"]["turns"] == 2


async def test_cancel_in_mid_stream_closes_the_upstream_stream(
    client: LanguageClient, openai_server: OpenAIServer
) -> None:
    await use_server(client, openai_server)
    openai_server.reply = Reply(tokens=[f"w{n} " for n in range(2000)], delay=0.02)
    msg_id = "cancel-me"
    pending = asyncio.ensure_future(
        client.protocol.send_request_async(protocol.CHAT, {"message": "long"}, msg_id=msg_id)
    )
    record = client.record  # type: ignore[attr-defined]
    for _ in range(500):
        if len(record.chunks) >= 5:
            break
        await asyncio.sleep(0.01)
    chat_id = record.chunks[0]["chatId"]
    cancelled_at = time.monotonic()
    client.cancel_request(types.CancelParams(id=msg_id))
    with pytest.raises(JsonRpcException) as err:
        await asyncio.wait_for(pending, 5)
    assert err.value.code == protocol.REQUEST_CANCELLED
    stream = openai_server.streams[-1]
    assert await asyncio.to_thread(stream.done.wait, 2)
    assert stream.client_gone_at is not None, "the upstream stream was not closed"
    assert stream.client_gone_at - cancelled_at < 0.2
    assert not stream.completed
    history = await request(client, protocol.CHAT_HISTORY, {"chatId": chat_id})
    partial = history["messages"][1]["content"]
    assert partial.startswith("w0 w1 w2 w3 w4")
    assert partial == "".join(c["delta"] for c in chunks_of(client, chat_id, 1))


@pytest.mark.parametrize(
    ("reply", "model", "code", "text"),
    [
        (Reply(status=500, error_message="boom"), None, protocol.BACKEND_UNAVAILABLE, "HTTP 500"),
        (Reply(), "missing-model", protocol.MODEL_NOT_FOUND, "does not serve model"),
    ],
)
async def test_backend_errors_map_to_codes_and_the_server_keeps_serving(
    client: LanguageClient,
    openai_server: OpenAIServer,
    reply: Reply,
    model: str | None,
    code: int,
    text: str,
) -> None:
    openai_server.reply = reply
    backend = {"backend": "compatible", "baseUrl": openai_server.base_url, "model": model}
    with pytest.raises(JsonRpcException) as err:
        await request(client, protocol.CHAT, {"message": "x", "backend": backend})
    assert err.value.code == code and text in err.value.message
    if code == protocol.MODEL_NOT_FOUND:
        assert err.value.data["name"] == "missing-model"
        assert err.value.data["searched"] == [openai_server.base_url]
        assert "--model" in err.value.data["hint"]
    openai_server.reply = Reply(tokens=["ok"])
    backend["model"] = None
    ok = await request(client, protocol.CHAT, {"message": "again", "backend": backend})
    assert ok["text"] == "ok"
    assert (await request(client, protocol.BACKEND_STATUS, {}))["backend"] == "mock"
