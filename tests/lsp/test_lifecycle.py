"""Every way a session ends, the process is gone promptly; stdout carries protocol only."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.rpc_client import RpcClient, frame, parse_frames

pytestmark = pytest.mark.slow

GONE_WITHIN = 2.0


async def gone_within(client: RpcClient, seconds: float = GONE_WITHIN) -> int:
    started = time.monotonic()
    code = await asyncio.wait_for(client.process.wait(), seconds + 1)
    assert time.monotonic() - started < seconds, "the server took too long to exit"
    return code


async def started_client(**params: object) -> RpcClient:
    client = await RpcClient.start()
    await client.initialize({"backend": "mock"}, **params)
    await client.request("sage/chat", {"message": "warm up"})
    return client


async def test_shutdown_then_exit(sage_home: Path) -> None:
    client = await started_client()
    assert (await client.request("shutdown"))["result"] is None
    await client.notify("exit")
    assert await gone_within(client) == 0
    log = (sage_home / "logs" / "lsp.log").read_text()
    assert f"{client.process.pid} INFO sage_lsp.server.session: session ending" in log


async def test_exit_without_shutdown_exits_1() -> None:
    client = await started_client()
    await client.notify("exit")
    assert await gone_within(client) == 1


async def test_requests_after_shutdown_are_refused() -> None:
    client = await started_client()
    await client.request("shutdown")
    response = await client.request("sage/backend/status", {})
    assert response["error"]["code"] == -32600
    assert "shutting down" in response["error"]["message"]
    await client.notify("exit")
    assert await gone_within(client) == 0


async def test_stdin_eof() -> None:
    client = await started_client()
    assert client.process.stdin is not None
    client.process.stdin.close()
    assert await gone_within(client) == 0


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
async def test_signal_during_a_stream(signum: int) -> None:
    client = await started_client()
    _, pending = client.request_later("sage/chat", {"message": "a long answer"})
    await client.wait_for(lambda: len(client.notifications["sage/chatChunk"]) > 60)
    client.process.send_signal(signum)
    assert await gone_within(client) == 0
    pending.cancel()


async def test_editor_process_killed() -> None:
    editor = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        client = await started_client(processId=editor.pid)
        editor.kill()  # SIGKILL; the test keeps the server's pipes open, so only the pid tells
        assert await gone_within(client) == 0
    finally:
        editor.kill()
        editor.wait()


async def test_a_dead_process_id_at_start_is_not_watched() -> None:
    editor = subprocess.Popen([sys.executable, "-c", "pass"])
    editor.wait()
    client = await started_client(processId=editor.pid)
    await asyncio.sleep(0.5)
    assert client.process.returncode is None
    assert await client.close() == 0


async def test_stdout_carries_only_protocol_frames() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "sage_lsp",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    frames = [
        {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"capabilities": {}}},
        {"jsonrpc": "2.0", "method": "initialized", "params": {}},
        {"jsonrpc": "2.0", "id": 2, "method": "sage/chat", "params": {"message": "hi"}},
        {"jsonrpc": "2.0", "id": 3, "method": "shutdown"},
        {"jsonrpc": "2.0", "method": "exit"},
    ]
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write(b"".join(frame(f) for f in frames[:3]))
    await process.stdin.drain()
    out = b""
    while b'"id": 2' not in out and b'"id":2' not in out:
        chunk = await asyncio.wait_for(process.stdout.read(65536), 10)
        assert chunk, "the server closed stdout early"
        out += chunk
    process.stdin.write(b"".join(frame(f) for f in frames[3:]))
    await process.stdin.drain()
    rest, _ = await asyncio.wait_for(process.communicate(), 5)
    messages = parse_frames(out + rest)
    assert [m.get("id") for m in messages if "method" not in m] == [1, 2, 3]
    assert process.returncode == 0


async def test_sage_lsp_console_commands_serve() -> None:
    bin_dir = __import__("pathlib").Path(sys.executable).parent
    for command in ([str(bin_dir / "sage"), "lsp"], [str(bin_dir / "sage-lsp")]):
        client = await RpcClient.start(command=command)
        result = await client.initialize({"backend": "mock"})
        assert result["capabilities"]["experimental"]["sage"]["version"] == 1
        assert await client.close() == 0
