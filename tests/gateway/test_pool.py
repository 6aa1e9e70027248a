"""The model pool against a stand-in backend manager whose releases take seconds, as a vLLM's
stop does: a request that ends while another model is being released is not held up by it."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any, cast

from sage_lsp.gateway.pool import ModelPool
from sage_lsp.services.manager import ServiceHandle

RELEASE_SECONDS = 1.0


class SlowManager:
    """Starts at once, releases in :data:`RELEASE_SECONDS`; a held service is ready on its
    port."""

    def __init__(self) -> None:
        self.held: set[str] = set()
        self.released: list[str] = []
        self.ports = {"a": 9001, "b": 9002, "c": 9003}
        self.registry = SimpleNamespace(read=self._read)
        self.store = SimpleNamespace(list=lambda: [SimpleNamespace(name=n) for n in self.ports])
        self._lock = threading.Lock()

    def _read(self, name: str) -> Any:
        with self._lock:
            held = name in self.held
        return SimpleNamespace(state="ready", port=self.ports[name]) if held else None

    def parent(self, name: str) -> None:
        return None

    async def ensure_finetuned(self, name: str, port: int) -> ServiceHandle:
        with self._lock:
            self.held.add(name)
        return ServiceHandle(name, name, self.ports[name], "key", cast(Any, None))

    def release_one(self, name: str, *, stop: bool = False, wait: float = 20.0) -> bool:
        with self._lock:  # as the manager does: the hold goes first, then the service stops
            if name not in self.held:
                return False
            self.held.discard(name)
        time.sleep(RELEASE_SECONDS)
        with self._lock:
            self.released.append(name)
        return True

    @contextlib.asynccontextmanager
    async def in_use(self, handle: ServiceHandle) -> AsyncIterator[None]:
        yield


def test_a_request_never_waits_for_another_models_release() -> None:
    async def scenario() -> tuple[float, float, list[str]]:
        manager = SlowManager()
        pool = ModelPool(cast(Any, manager), ttl=0.2, port=9000)
        for name in ("a", "b"):
            async with pool.use(name):
                pass
        await asyncio.sleep(0.4)  # both idle past their TTL: their releases are under way
        assert manager.released == []
        started = time.monotonic()
        async with pool.use("c") as handle:
            assert handle.port == 9003
        ended = time.monotonic() - started
        started = time.monotonic()
        await pool.close()
        return ended, time.monotonic() - started, sorted(manager.released)

    ended, closing, released = asyncio.run(scenario())
    assert ended < 0.5, f"the request took {ended:.2f} s: it waited for a release"
    assert released == ["a", "b", "c"] and closing >= RELEASE_SECONDS * 0.9
