"""The server's methods through the real dispatch path, in process: initialize, a pipeline
file's diagnostics, a chat on the mock backend, the error answers and the end of a session."""

from __future__ import annotations

import pytest

from sage_lsp import protocol
from tests.server.conftest import InProcessServer
from tests.support.rpc_client import frame


async def test_initialize_lists_the_sage_methods(fresh: InProcessServer) -> None:
    result = await fresh.initialize({"backend": "mock"})
    assert result["capabilities"]["experimental"] == {
        "sage": {"version": protocol.PROTOCOL_VERSION, "methods": list(protocol.METHODS)}
    }
    assert result["serverInfo"]["name"] == "sage-lsp"


async def test_a_request_before_initialize_is_answered(fresh: InProcessServer) -> None:
    response = await fresh.request(protocol.BACKEND_STATUS, {})
    assert response["result"]["backend"] == "mock" and response["result"]["state"] == "idle"


async def test_opening_a_pipeline_file_publishes_its_diagnostics(server: InProcessServer) -> None:
    def did_open(uri: str, text: str) -> None:
        item = {"uri": uri, "languageId": "yaml", "version": 1, "text": text}
        server.notify("textDocument/didOpen", {"textDocument": item})

    did_open("file:///w/config/settings.yaml", "pipeline:\n  name: a: b\n")  # not a pipeline
    did_open("file:///w/qa.sage.yml", "pipeline:\n  name: a: b\n")
    await server.request(protocol.BACKEND_STATUS, {})  # answered after both are handled
    [only] = server.notifications("textDocument/publishDiagnostics")
    assert only["uri"] == "file:///w/qa.sage.yml"
    [diagnostic] = only["diagnostics"]
    assert diagnostic["message"] == "YAML syntax error: mapping values are not allowed here"
    assert diagnostic["range"] == {
        "start": {"line": 1, "character": 9},
        "end": {"line": 1, "character": 12},
    }


async def test_a_chat_streams_chunks_that_make_up_its_answer(server: InProcessServer) -> None:
    response = await server.request(protocol.CHAT, {"message": "hello there"})
    result = response["result"]
    assert "hello there" in result["text"] and result["turn"] == 1
    chunks = [
        c for c in server.notifications(protocol.CHAT_CHUNK) if c["chatId"] == result["chatId"]
    ]
    assert len(chunks) > 10
    assert [c["index"] for c in chunks] == list(range(len(chunks)))
    assert "".join(c["delta"] for c in chunks) == result["text"]


async def test_an_unknown_method_is_method_not_found(server: InProcessServer) -> None:
    response = await server.request("sage/frobnicate", {})
    assert response["error"]["code"] == protocol.METHOD_NOT_FOUND


@pytest.mark.parametrize(
    ("method", "params", "field"),
    [
        (protocol.CHAT, {}, "message is required"),
        (protocol.CHAT, {"message": 7}, "message must be a string"),
        (protocol.CHAT, {"message": "x", "topK": 99}, "topK must be between 1 and 20"),
        (protocol.CHAT_HISTORY, {}, "chatId is required"),
        (protocol.BACKEND_STATUS, [1, 2], "params must be an object"),
    ],
)
async def test_invalid_params_name_the_field(
    server: InProcessServer, method: str, params: object, field: str
) -> None:
    response = await server.request(method, params)
    assert response["error"]["code"] == protocol.INVALID_PARAMS
    assert field in response["error"]["message"]


async def test_json_nested_too_deep_is_a_parse_error_and_serving_goes_on(
    server: InProcessServer,
) -> None:
    server.send_bytes(frame(b"[" * 100_000))
    await server.wait_for(lambda: server.out.messages[-1].get("error") is not None)
    answer = server.out.messages[-1]
    assert answer["id"] is None and answer["error"]["code"] == protocol.PARSE_ERROR
    assert "result" in await server.request(protocol.BACKEND_STATUS, {})


async def test_a_cancelled_chat_is_answered_as_cancelled(server: InProcessServer) -> None:
    msg_id = server.request_later(protocol.CHAT, {"message": "a long question"})
    await server.wait_for(lambda: bool(server.notifications(protocol.CHAT_CHUNK)))
    server.notify("$/cancelRequest", {"id": msg_id})
    response = await server.response(msg_id)
    assert response["error"]["code"] == protocol.REQUEST_CANCELLED


async def test_after_shutdown_requests_are_refused_and_exit_ends_with_0(
    server: InProcessServer,
) -> None:
    assert (await server.request("shutdown"))["result"] is None
    refused = await server.request(protocol.BACKEND_STATUS, {})
    assert refused["error"]["code"] == protocol.INVALID_REQUEST
    server.notify("exit")
    await server.server.stopped()
    assert server.server.exit_code == 0
