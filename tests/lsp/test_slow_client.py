"""A client that cannot keep up gets the answer coalesced into fewer chunks, none lost."""

from __future__ import annotations

import asyncio
import sys

import pytest

from tests.support.openai_server import OpenAIServer, Reply
from tests.support.rpc_client import frame, parse_frames

pytestmark = pytest.mark.slow

TOKENS = [f" tok{n}" for n in range(20000)]


async def test_deltas_are_coalesced_while_the_client_does_not_read(
    openai_server: OpenAIServer,
) -> None:
    openai_server.reply = Reply(tokens=TOKENS)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "sage_lsp",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        limit=2**16,  # the test process stops reading once 128 KiB are unread
    )
    assert process.stdin is not None and process.stdout is not None
    options = {"backend": "compatible", "baseUrl": openai_server.base_url}
    process.stdin.write(
        frame(
            {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "initialize",
                "params": {"capabilities": {}, "initializationOptions": options},
            }
        )
        + frame({"jsonrpc": "2.0", "method": "initialized", "params": {}})
        + frame({"jsonrpc": "2.0", "id": 2, "method": "sage/chat", "params": {"message": "go"}})
    )
    await process.stdin.drain()
    # Do not read while the model streams: the pipe and the server's buffer fill up.
    for _ in range(600):
        if openai_server.streams and openai_server.streams[-1].done.is_set():
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(1.0)
    out = b""
    while b'"id": 2' not in out and b'"id":2' not in out:
        data = await asyncio.wait_for(process.stdout.read(2**20), 30)
        assert data, "the server closed its output early"
        out += data
    process.stdin.write(
        frame({"jsonrpc": "2.0", "id": 3, "method": "shutdown"})
        + frame({"jsonrpc": "2.0", "method": "exit"})
    )
    await process.stdin.drain()
    rest, _ = await asyncio.wait_for(process.communicate(), 60)
    messages = parse_frames(out + rest)
    chunks = [m["params"] for m in messages if m.get("method") == "sage/chatChunk"]
    [result] = [m["result"] for m in messages if m.get("id") == 2]
    assert result["text"] == "".join(TOKENS)
    assert "".join(c["delta"] for c in chunks) == result["text"]
    assert [c["index"] for c in chunks] == list(range(len(chunks)))
    assert len(chunks) < len(TOKENS) / 2, f"{len(chunks)} chunks: deltas were not coalesced"
    assert process.returncode == 0
