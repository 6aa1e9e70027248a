"""``sage lsp --tcp`` serves only a client that sends the session's token."""

from __future__ import annotations

import asyncio
import json
import stat
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from sage_lsp import protocol
from tests.support.ports import closed_port
from tests.support.rpc_client import frame

pytestmark = pytest.mark.slow


class TcpClient:
    """One connection to the server: framed messages out, whole messages in."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, port: int) -> TcpClient:
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    async def send(self, message: dict[str, Any]) -> None:
        self.writer.write(frame(message))
        await self.writer.drain()

    async def receive(self) -> dict[str, Any] | None:
        """The next message, or None when the server closed the connection."""
        length = None
        while True:
            line = await asyncio.wait_for(self.reader.readline(), 10)
            if not line:
                return None
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
            elif line == b"\r\n" and length is not None:
                message: dict[str, Any] = json.loads(await self.reader.readexactly(length))
                return message

    async def request(self, msg_id: int, method: str, params: Any) -> dict[str, Any]:
        """Send a request and return its response (notifications before it are skipped)."""
        await self.send({"jsonrpc": "2.0", "id": msg_id, "method": method, "params": params})
        while True:
            message = await self.receive()
            assert message is not None, "the connection closed"
            if message.get("id") == msg_id and "method" not in message:
                return message


def initialize(token: str | None) -> dict[str, Any]:
    options: dict[str, Any] = {"backend": "mock"}
    if token is not None:
        options["authToken"] = token
    return {"processId": None, "capabilities": {}, "initializationOptions": options}


async def refused(client: TcpClient, message: dict[str, Any]) -> dict[str, Any]:
    """Send ``message`` first; the answer must be -32005, and then the connection closes."""
    await client.send(message)
    answer = await client.receive()
    assert answer is not None and answer["error"]["code"] == protocol.UNAUTHORIZED, answer
    assert await client.receive() is None
    return answer


async def connect(port: int, process: asyncio.subprocess.Process) -> TcpClient:
    for _ in range(200):
        try:
            return await TcpClient.connect(port)
        except OSError:
            assert process.returncode is None, "the server ended"
            await asyncio.sleep(0.05)
    raise AssertionError("the server never listened")


async def start(*args: str) -> tuple[asyncio.subprocess.Process, int]:
    port = closed_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sage_lsp", "--tcp", "--port", str(port), *args,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    return process, port


@pytest.fixture
async def server(sage_home: Path) -> AsyncIterator[tuple[asyncio.subprocess.Process, int]]:
    process, port = await start()
    yield process, port
    if process.returncode is None:
        process.kill()
        await process.wait()


async def test_only_the_client_with_the_token_is_served(
    server: tuple[asyncio.subprocess.Process, int], sage_home: Path
) -> None:
    process, port = server
    intruder = await connect(port, process)
    token_file = sage_home / "run" / f"lsp-tcp-{port}.token"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    token = token_file.read_text().strip()
    assert len(token) >= 32

    answer = await refused(
        intruder, {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": initialize("x")}
    )
    assert answer["id"] == 1 and str(token_file) in answer["error"]["message"]
    chat = {"message": "hi", "backend": {"backend": "mock"}}
    second = await connect(port, process)
    await refused(second, {"jsonrpc": "2.0", "id": 2, "method": protocol.CHAT, "params": chat})
    third = await connect(port, process)
    await refused(third, {"jsonrpc": "2.0", "id": 3, "method": "initialize", "params": {}})

    user = await connect(port, process)
    result = await user.request(1, "initialize", initialize(token))
    assert result["result"]["capabilities"]["experimental"]["sage"]["version"] == 1
    await user.send({"jsonrpc": "2.0", "method": "initialized", "params": {}})
    answer = await user.request(2, protocol.CHAT, {"message": "hi"})
    assert "mock backend" in answer["result"]["text"]
    with pytest.raises(OSError):
        await TcpClient.connect(port)  # one session: nobody else is listened to now

    assert (await user.request(3, "shutdown", None))["result"] is None
    await user.send({"jsonrpc": "2.0", "method": "exit", "params": None})
    assert await asyncio.wait_for(process.wait(), 5) == 0
    assert not token_file.exists()
    assert b"Traceback" not in await process.stderr.read()  # type: ignore[union-attr]


async def test_the_token_can_come_from_a_file(sage_home: Path, tmp_path: Path) -> None:
    token_file = tmp_path / "my.token"
    token_file.write_text("  s3cret-token-of-mine\n")
    process, port = await start("--token-file", str(token_file))
    try:
        intruder = await connect(port, process)
        await refused(
            intruder,
            {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": initialize(None)},
        )
        user = await connect(port, process)
        result = await user.request(1, "initialize", initialize("s3cret-token-of-mine"))
        assert "result" in result
        user.writer.close()
        assert await asyncio.wait_for(process.wait(), 5) == 0
        assert token_file.exists()  # the user's own file stays
        assert not list((sage_home / "run").glob("lsp-tcp-*"))
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_an_empty_token_file_is_one_line_and_exit_2(tmp_path: Path) -> None:
    empty = tmp_path / "empty.token"
    empty.write_text("\n")
    port = closed_port()
    sage = Path(sys.executable).parent / "sage"
    process = await asyncio.create_subprocess_exec(
        str(sage), "lsp", "--tcp", "--port", str(port), "--token-file", str(empty),
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await asyncio.wait_for(process.communicate(), 20)
    assert process.returncode == 2
    assert err.decode().splitlines() == [
        f"error: cannot serve on 127.0.0.1:{port}: the token file {empty} is empty"
    ]
