"""A minimal JSON-RPC client over a server subprocess's pipes, for raw-bytes tests and benchmarks.

pytest-lsp covers the well-behaved client; this one can also send garbage, watch the process
itself, and read notifications with as little overhead as possible.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import sys
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

SERVER = [sys.executable, "-m", "sage_lsp"]


def frame(message: bytes | dict[str, Any]) -> bytes:
    """One framed message; a dict is encoded as JSON, bytes are sent as they are."""
    body = message if isinstance(message, bytes) else json.dumps(message).encode()
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


def parse_frames(data: bytes) -> list[dict[str, Any]]:
    """Split a captured output stream into messages; fails on anything that is not a frame."""
    messages = []
    while data:
        header, sep, data = data.partition(b"\r\n\r\n")
        fields = dict(line.split(b": ", 1) for line in header.split(b"\r\n"))
        assert sep and set(fields) <= {b"Content-Length", b"Content-Type"}, header[:80]
        length = int(fields[b"Content-Length"])
        messages.append(json.loads(data[:length]))
        data = data[length:]
    return messages


class RpcClient:
    """Talks to one ``sage-lsp`` process; responses by id, notifications by method."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.notifications: dict[str, list[Any]] = defaultdict(list)
        self.notified = asyncio.Condition()
        self.orphans: list[dict[str, Any]] = []
        self._sending: set[asyncio.Future[None]] = set()
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def start(
        cls, env: dict[str, str] | None = None, command: Sequence[str] = SERVER, **kwargs: Any
    ) -> RpcClient:
        process = await asyncio.create_subprocess_exec(
            *command,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, **(env or {})},
            limit=2**26,
            **kwargs,
        )
        return cls(process)

    async def _read(self) -> None:
        stdout = self.process.stdout
        assert stdout is not None
        while True:
            length = None
            while True:
                line = await stdout.readline()
                if not line:
                    return
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
                elif line in (b"\r\n", b"\n") and length is not None:
                    break
            message = json.loads(await stdout.readexactly(length))
            if "method" in message and "id" in message:  # a request from the server
                await self.send({"jsonrpc": "2.0", "id": message["id"], "result": None})
            elif "method" in message:
                self.notifications[message["method"]].append(message["params"])
                async with self.notified:
                    self.notified.notify_all()
            elif message.get("id") in self._waiting:
                self._waiting.pop(message["id"]).set_result(message)
            else:
                self.orphans.append(message)
                async with self.notified:
                    self.notified.notify_all()

    async def send_bytes(self, data: bytes) -> None:
        stdin = self.process.stdin
        assert stdin is not None
        stdin.write(data)
        await stdin.drain()

    async def send(self, message: dict[str, Any]) -> None:
        await self.send_bytes(frame(message))

    async def request(self, method: str, params: Any = None, timeout: float = 30) -> dict[str, Any]:
        """Send a request and return the whole response (``result`` or ``error``)."""
        msg_id = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[msg_id] = future
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": msg_id, "method": method}
        if params is not None:
            message["params"] = params
        await self.send(message)
        return await asyncio.wait_for(future, timeout)

    def request_later(self, method: str, params: Any = None) -> tuple[int, asyncio.Future[Any]]:
        """Send a request in the background; return its id and the future of its response."""
        msg_id = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[msg_id] = future
        message = {"jsonrpc": "2.0", "id": msg_id, "method": method, "params": params}
        self._sending.add(asyncio.ensure_future(self.send(message)))
        return msg_id, future

    async def notify(self, method: str, params: Any = None) -> None:
        await self.send({"jsonrpc": "2.0", "method": method, "params": params})

    async def wait_for(self, predicate: Any, timeout: float = 10) -> None:
        """Wait until ``predicate()`` is true, re-checking on every notification."""
        async with self.notified:
            await asyncio.wait_for(self.notified.wait_for(predicate), timeout)

    async def initialize(self, options: dict[str, Any] | None = None, **params: Any) -> Any:
        response = await self.request(
            "initialize",
            {
                "processId": None,
                "rootUri": None,
                "capabilities": {},
                "initializationOptions": options,
                **params,
            },
        )
        await self.notify("initialized", {})
        return response["result"]

    async def close(self) -> int:
        """End the process as a client would (shutdown, exit) and return its exit code."""
        if self.process.returncode is None:
            try:
                await self.request("shutdown", timeout=5)
                await self.notify("exit")
                await asyncio.wait_for(self.process.wait(), 5)
            except (TimeoutError, ConnectionError, BrokenPipeError):
                self.process.kill()
                await self.process.wait()
        self._reader.cancel()
        return self.process.returncode or 0
