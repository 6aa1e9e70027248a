"""An in-process server for the fast tier: a real :class:`SageServer` fed framed JSON-RPC bytes
through the same reader a stdio client reaches (:func:`read_messages`), writing into a list.

No process is spawned, so a whole exchange takes milliseconds; every message still goes through
framing, the envelope checks, pygls' dispatch and the routes, as it would from an editor.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from sage_lsp.config import load_settings
from sage_lsp.server.app import SageServer
from sage_lsp.server.transport import read_messages
from tests.support.rpc_client import frame, parse_frames


class ListWriter:
    """A pygls writer that keeps every message the server writes, decoded, in order."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.changed = asyncio.Condition()

    def write(self, data: bytes) -> None:
        self.messages.extend(parse_frames(data))  # pygls writes one whole frame per call
        asyncio.get_running_loop().create_task(self._notify())

    async def _notify(self) -> None:
        async with self.changed:
            self.changed.notify_all()

    def close(self) -> None:
        pass

    @property
    def backlog(self) -> int:
        return 0


class InProcessServer:
    """Drives one :class:`SageServer` as an editor would, without a process in between."""

    def __init__(self, server: SageServer) -> None:
        self.server = server
        self.out = ListWriter()
        # What sage_lsp.server.main does for a stdio session.
        server.writer = self.out
        server.protocol.set_writer(self.out)
        self.input = asyncio.StreamReader()
        self.reading = asyncio.create_task(read_messages(self.input, server.protocol))
        self._ids = itertools.count(1)

    def send_bytes(self, data: bytes) -> None:
        self.input.feed_data(data)

    def send(self, message: dict[str, Any]) -> None:
        self.send_bytes(frame(message))

    def notify(self, method: str, params: Any = None) -> None:
        self.send({"jsonrpc": "2.0", "method": method, "params": params})

    def request_later(self, method: str, params: Any = None) -> int:
        """Send a request and return its id without waiting for the answer."""
        msg_id = next(self._ids)
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": msg_id, "method": method}
        if params is not None:
            message["params"] = params
        self.send(message)
        return msg_id

    async def request(self, method: str, params: Any = None) -> dict[str, Any]:
        """Send a request and return the whole response (``result`` or ``error``)."""
        return await self.response(self.request_later(method, params))

    async def response(self, msg_id: Any) -> dict[str, Any]:
        """The response to request ``msg_id``, once written."""
        found: list[dict[str, Any]] = []

        def answered() -> bool:
            found[:] = [m for m in self.out.messages if "method" not in m and m["id"] == msg_id]
            return bool(found)

        await self.wait_for(answered)
        return found[0]

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 5) -> None:
        """Wait until ``predicate()`` is true, re-checking whenever the server writes."""
        async with self.out.changed:
            await asyncio.wait_for(self.out.changed.wait_for(predicate), timeout)

    def notifications(self, method: str) -> list[Any]:
        """The params of every ``method`` notification written so far."""
        return [
            m["params"] for m in self.out.messages if m.get("method") == method and "id" not in m
        ]

    async def initialize(self, options: dict[str, Any] | None = None) -> dict[str, Any]:
        """``initialize`` then ``initialized``, as every editor starts; returns the result."""
        response = await self.request(
            "initialize",
            {"processId": None, "capabilities": {}, "initializationOptions": options},
        )
        self.notify("initialized", {})
        return response["result"]

    async def close(self) -> None:
        """End the input, as a client closing stdin does, and run the session's cleanup."""
        self.input.feed_eof()
        await asyncio.wait_for(self.reading, 5)
        await asyncio.wait_for(self.server.close(), 5)


@pytest.fixture
async def fresh() -> AsyncIterator[InProcessServer]:
    """A server that has not been initialized yet (settings from the test's SAGE_HOME)."""
    lsp = InProcessServer(SageServer(load_settings()))
    yield lsp
    await lsp.close()
    failures = [
        m for m in lsp.notifications("window/showMessage") if "Error in server" in m["message"]
    ]
    assert not failures, failures  # pygls' report of a handler that raised


@pytest.fixture
async def server(fresh: InProcessServer) -> InProcessServer:
    """A server initialized with the mock backend."""
    await fresh.initialize({"backend": "mock"})
    return fresh
