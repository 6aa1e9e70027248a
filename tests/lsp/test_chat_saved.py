"""A conversation outlives its server process: what an editor window reload needs.

The reload ends ``sage lsp`` and starts a new one with the same SAGE_HOME; the editor keeps
the chat id and goes on with it.
"""

from __future__ import annotations

from typing import Any

from tests.support.rpc_client import RpcClient

CHAT_ID = "reload1a2b3c"


async def _session() -> RpcClient:
    client = await RpcClient.start()
    await client.initialize({"backend": "mock", "index": None})
    return client


async def _chat(client: RpcClient, message: str) -> dict[str, Any]:
    response = await client.request("sage/chat", {"message": message, "chatId": CHAT_ID})
    result: dict[str, Any] = response["result"]
    return result


async def test_a_new_server_process_goes_on_with_the_conversation() -> None:
    first = await _session()
    try:
        answer = await _chat(first, "zebra quartz one")
        assert "(turn 1)" in answer["text"]
    finally:
        await first.close()

    second = await _session()
    try:
        history = await second.request("sage/chat/history", {"chatId": CHAT_ID})
        assert [m["content"] for m in history["result"]["messages"]] == [
            "zebra quartz one",
            answer["text"],
        ]
        again = await _chat(second, "zebra quartz two")
        assert again["turn"] == 2
        assert "(turn 2)" in again["text"]  # the mock counts the questions the model was sent
    finally:
        await second.close()


async def test_reset_forgets_the_conversation_for_later_processes_too() -> None:
    first = await _session()
    try:
        await _chat(first, "zebra quartz one")
        assert (await first.request("sage/chat/reset", {"chatId": CHAT_ID}))["result"] == {}
    finally:
        await first.close()

    second = await _session()
    try:
        unknown = await second.request("sage/chat/history", {"chatId": CHAT_ID})
        assert unknown["error"]["code"] == -32602
        assert "unknown" in unknown["error"]["message"]
        assert "(turn 1)" in (await _chat(second, "zebra quartz again"))["text"]
    finally:
        await second.close()
