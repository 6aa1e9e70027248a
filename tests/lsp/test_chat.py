"""sage/chat end to end through pytest-lsp against the real server process (mock backend)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pytest_lsp import LanguageClient

from sage_lsp import protocol
from tests.lsp.conftest import chunks_of, request

pytestmark = pytest.mark.slow  # subprocess-heavy: in `make test`, not `make test-fast`


async def test_initialize_lists_the_sage_methods(client: LanguageClient) -> None:
    result: types.InitializeResult = client.init_result  # type: ignore[attr-defined]
    assert result.capabilities.experimental == {
        "sage": {"version": 1, "methods": list(protocol.METHODS)}
    }
    assert result.server_info is not None and result.server_info.name == "sage-lsp"


async def test_chunks_concatenate_to_the_result(client: LanguageClient) -> None:
    result = await request(client, protocol.CHAT, {"message": "hello there"})
    chunks = chunks_of(client, result["chatId"], 1)
    assert len(chunks) > 10
    assert [c["index"] for c in chunks] == list(range(len(chunks)))
    assert "".join(c["delta"] for c in chunks) == result["text"]
    assert "hello there" in result["text"]
    assert result["finishReason"] == "stop" and result["turn"] == 1
    assert set(result["timings"]) == {"ttftMs", "totalMs", "tokensPerSecond"}
    assert result["sources"] == []


async def test_history_continues_across_turns(client: LanguageClient) -> None:
    first = await request(client, protocol.CHAT, {"message": "one"})
    second = await request(client, protocol.CHAT, {"message": "two", "chatId": first["chatId"]})
    assert second["chatId"] == first["chatId"] and second["turn"] == 2
    assert "(turn 2)" in second["text"]
    history = await request(client, protocol.CHAT_HISTORY, {"chatId": first["chatId"]})
    assert [m["role"] for m in history["messages"]] == ["user", "assistant"] * 2
    assert history["messages"][2]["content"] == "two"
    assert await request(client, protocol.CHAT_RESET, {"chatId": first["chatId"]}) == {}
    history = await request(client, protocol.CHAT_HISTORY, {"chatId": first["chatId"]})
    assert history["messages"] == []


async def test_two_concurrent_chats_do_not_mix(client: LanguageClient) -> None:
    a, b = await asyncio.gather(
        request(client, protocol.CHAT, {"message": "alpha question"}),
        request(client, protocol.CHAT, {"message": "beta question"}),
    )
    assert a["chatId"] != b["chatId"]
    for result, word in ((a, "alpha"), (b, "beta")):
        text = "".join(c["delta"] for c in chunks_of(client, result["chatId"], 1))
        assert text == result["text"] and word in text


async def test_no_stream_sends_no_chunks(client: LanguageClient) -> None:
    result = await request(client, protocol.CHAT, {"message": "quiet", "stream": False})
    assert chunks_of(client, result["chatId"], 1) == []
    assert "quiet" in result["text"]


@pytest.mark.parametrize(
    ("method", "params", "field"),
    [
        (protocol.CHAT, {}, "message is required"),
        (protocol.CHAT, {"message": 7}, "message must be a string"),
        (protocol.CHAT, {"message": "  "}, "message must not be empty"),
        (protocol.CHAT, {"message": "x", "topK": 99}, "topK must be between 1 and 20"),
        (protocol.CHAT, {"message": "x", "stream": "yes"}, "stream must be a boolean"),
        (protocol.CHAT, {"message": "x", "backend": {"backend": "gpt"}}, "invalid backend"),
        (protocol.CHAT_HISTORY, {}, "chatId is required"),
        (protocol.CHAT_RESET, {"chatId": "nope"}, "chatId 'nope' is unknown"),
        (protocol.BACKEND_STATUS, [1, 2], "params must be an object"),
    ],
)
async def test_bad_params_name_the_field(
    client: LanguageClient, method: str, params: object, field: str
) -> None:
    with pytest.raises(JsonRpcException) as err:
        await request(client, method, params)
    assert err.value.code == protocol.INVALID_PARAMS
    assert field in err.value.message
    assert (await request(client, protocol.BACKEND_STATUS, {}))["backend"] == "mock"


async def test_a_turn_cannot_choose_a_program_to_run(
    client: LanguageClient, tmp_path: Path
) -> None:
    ran = tmp_path / "ran"
    program = tmp_path / "evil.sh"
    program.write_text(f"#!/bin/sh\ntouch {ran}\n")
    program.chmod(0o755)
    override = {"backend": "vllm", "model": "m", "vllm": {"python": str(program)}}
    with pytest.raises(JsonRpcException) as err:
        await request(client, protocol.CHAT, {"message": "x", "backend": override})
    assert err.value.code == protocol.INVALID_PARAMS
    assert "vllm.python cannot be set per request" in err.value.message
    assert not ran.exists()


@pytest.mark.parametrize(
    "override",
    [
        {"vllm": {"extraArgs": ["--x"]}},
        {"vllm.python": "/bin/true"},
        {"mergePython": "/bin/true"},
        {"sageHome": "/tmp"},
    ],
    ids=["vllm.extraArgs", "flat vllm.python", "mergePython", "sageHome"],
)
async def test_no_override_names_a_program_or_a_path(
    client: LanguageClient, override: dict[str, Any]
) -> None:
    [key] = [k if not isinstance(v, dict) else f"{k}.{next(iter(v))}" for k, v in override.items()]
    with pytest.raises(JsonRpcException) as err:
        await request(client, protocol.CHAT, {"message": "x", "backend": override})
    assert err.value.code == protocol.INVALID_PARAMS
    assert f"{key} cannot be set per request" in err.value.message


async def test_unknown_method(client: LanguageClient) -> None:
    with pytest.raises(JsonRpcException) as err:
        await request(client, "sage/frobnicate", {})
    assert err.value.code == protocol.METHOD_NOT_FOUND


async def test_status_start_stop_and_notifications(client: LanguageClient) -> None:
    status = await request(client, protocol.BACKEND_STATUS, {})
    assert status["state"] == "idle" and status["backend"] == "mock"
    started = await request(client, protocol.BACKEND_START, {})
    assert started["state"] == "ready" and started["model"] == "mock"
    stopped = await request(client, protocol.BACKEND_STOP, {})
    assert stopped["state"] == "idle"
    states = [s["state"] for s in client.record.status]  # type: ignore[attr-defined]
    assert states == ["starting", "ready", "idle"]


async def test_configuration_change_takes_effect_on_the_next_turn(client: LanguageClient) -> None:
    first = await request(client, protocol.CHAT, {"message": "q"})
    assert "mock backend" in first["text"]
    settings = {"backend": "vllm", "baseUrl": "http://127.0.0.1:9/v1"}
    client.set_configuration(settings, section="sage")
    client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(settings={"sage": settings})
    )
    with pytest.raises(JsonRpcException) as err:
        await request(client, protocol.CHAT, {"message": "q", "chatId": first["chatId"]})
    assert err.value.code == protocol.BACKEND_UNAVAILABLE
    assert "cannot reach http://127.0.0.1:9/v1: connection refused" in err.value.message
    assert err.value.data["kind"] == "connection"
    status = await request(client, protocol.BACKEND_STATUS, {})
    assert status["state"] == "error" and status["backend"] == "vllm"


async def test_a_backend_change_is_not_reported_as_a_stop(client: LanguageClient) -> None:
    await request(client, protocol.BACKEND_START, {})
    settings = {"backend": "compatible", "baseUrl": "http://127.0.0.1:9/v1"}
    client.set_configuration(settings, section="sage")
    client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(settings={"sage": settings})
    )
    statuses = client.record.status  # type: ignore[attr-defined]
    for _ in range(100):
        if statuses[-1]["state"] == "idle":
            break
        await asyncio.sleep(0.02)
    assert statuses[-1]["state"] == "idle" and statuses[-1]["backend"] == "compatible"
    assert statuses[-1].get("message") is None  # an editor prepares it as at start
    stopped = await request(client, protocol.BACKEND_STOP, {})
    assert stopped["state"] == "idle"


async def test_bad_configuration_value_is_shown_and_the_old_value_stays(
    client: LanguageClient,
) -> None:
    client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(settings={"sage": {"topK": 50, "backend": "mock"}})
    )
    for _ in range(100):
        if client.messages:
            break
        await asyncio.sleep(0.02)
    [message] = client.messages
    assert message.type == types.MessageType.Error
    assert "topK = 50" in message.message and "between 1 and 20" in message.message
    assert (await request(client, protocol.CHAT, {"message": "still fine"}))["text"]


async def test_a_setting_the_user_removes_goes_back_to_its_start_up_value(
    client: LanguageClient,
) -> None:
    async def push(settings: dict[str, object]) -> dict[str, Any]:
        client.set_configuration(settings, section="sage")
        client.workspace_did_change_configuration(
            types.DidChangeConfigurationParams(settings={"sage": settings})
        )
        await asyncio.sleep(0.2)
        return await request(client, protocol.BACKEND_STATUS, {})

    assert (await push({"backend": "vllm", "baseUrl": "http://127.0.0.1:9/v1"}))[
        "backend"
    ] == "vllm"
    status = await push({})  # the user removed both settings: back to initializationOptions
    assert status["backend"] == "mock"
    assert "mock backend" in (await request(client, protocol.CHAT, {"message": "q"}))["text"]


async def test_log_lines_reach_the_editor_at_the_configured_level(client: LanguageClient) -> None:
    await request(client, protocol.BACKEND_START, {})
    assert not [m for m in client.log_messages if "backend ready" in m.message]
    await request(client, protocol.BACKEND_STOP, {})
    settings = {"backend": "mock", "logLevel": "info"}
    client.set_configuration(settings, section="sage")
    client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(settings={"sage": settings})
    )
    await asyncio.sleep(0.2)
    await request(client, protocol.BACKEND_START, {})
    for _ in range(100):
        if [m for m in client.log_messages if "backend ready: mock backend" in m.message]:
            break
        await asyncio.sleep(0.02)
    else:
        raise AssertionError("no window/logMessage at level info")


async def test_settings_are_pulled_after_initialized(pulling_client: LanguageClient) -> None:
    client = pulling_client
    for _ in range(100):
        status = await request(client, protocol.BACKEND_STATUS, {})
        if status["backend"] == "vllm":
            break
        await asyncio.sleep(0.02)
    assert status["backend"] == "vllm"
    assert any("topK = 99" in m.message for m in client.messages)
