"""A managed service that was stopped or relaunched (new key, maybe a new port) is looked up
again: sessions that held the old one answer their next turn instead of failing with 401 or
"connection refused" forever. Once per request, and never after part of an answer.

The fast tests stand a scripted OpenAI server behind ``ManagedBackend``; the slow ones relaunch
a fake vLLM through the registry, as ``sage services stop`` and another session would.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from sage_lsp.backends.base import BackendError, ChatRequest, Delta, ErrorKind, Message
from sage_lsp.config import Settings, load_settings
from sage_lsp.services.managed_backend import ManagedBackend, finetune_backend
from sage_lsp.services.manager import ServiceHandle, ServiceManager
from sage_lsp.services.registry import Registry, ServiceEntry
from tests.services.conftest import FAKE_MODEL
from tests.support.openai_server import OpenAIServer, Reply
from tests.support.ports import closed_port

MODEL = FAKE_MODEL
KEY = "the-service-key"


async def ask(backend: ManagedBackend) -> str:
    request = ChatRequest((Message("user", "hi"),))
    return "".join([e.text async for e in backend.stream(request) if isinstance(e, Delta)])


class Lookups:
    """An ``ensure`` that hands out the given handles in turn and counts the look-ups."""

    def __init__(self, *handles: ServiceHandle) -> None:
        self.handles = list(handles)
        self.count = 0

    async def __call__(self, manager: ServiceManager) -> ServiceHandle:
        handle = self.handles[min(self.count, len(self.handles) - 1)]
        self.count += 1
        return handle


def handle(server: OpenAIServer, key: str, port: int | None = None) -> ServiceHandle:
    """A handle on ``server`` (or on ``port``) with ``key``."""
    port = server.port if port is None else port
    entry = ServiceEntry("svc", "tiny-model", port, key, "svc.log", [], time.time())
    return ServiceHandle("svc", "tiny-model", port, key, entry)


def backend(lookups: Lookups) -> ManagedBackend:
    return ManagedBackend("finetune", Settings(), lookups, "tiny-model")


# --------------------------------------------------------------------------------------------
# Fast: a scripted server
# --------------------------------------------------------------------------------------------


async def test_a_relaunched_service_with_a_new_key_is_looked_up_again() -> None:
    with OpenAIServer(api_key=KEY) as server:
        lookups = Lookups(handle(server, "the-old-key"), handle(server, KEY))
        managed = backend(lookups)
        assert await ask(managed) == "Hello, world!"
        assert lookups.count == 2 and managed.handle is not None and managed.handle.api_key == KEY
        assert await ask(managed) == "Hello, world!"
        assert lookups.count == 2  # the new handle is kept
        await managed.aclose()


async def test_a_service_on_a_new_port_is_looked_up_again() -> None:
    with OpenAIServer(api_key=KEY) as server:
        lookups = Lookups(handle(server, KEY, port=closed_port()), handle(server, KEY))
        managed = backend(lookups)
        assert await ask(managed) == "Hello, world!"
        assert lookups.count == 2
        await managed.aclose()


async def test_it_is_looked_up_once_per_request() -> None:
    with OpenAIServer(api_key=KEY) as server:
        lookups = Lookups(handle(server, "the-old-key"))
        managed = backend(lookups)
        with pytest.raises(BackendError) as err:
            await ask(managed)
        assert err.value.kind is ErrorKind.AUTH and lookups.count == 2
        await managed.aclose()


async def test_after_part_of_an_answer_the_error_stands_and_the_next_turn_looks_up() -> None:
    with OpenAIServer(api_key=KEY) as server:
        server.reply = Reply(tokens=["a ", "b ", "c ", "d "], disconnect_after=2)
        lookups = Lookups(handle(server, KEY))
        managed = backend(lookups)
        request = ChatRequest((Message("user", "hi"),))
        seen: list[str] = []
        with pytest.raises(BackendError) as err:
            async for event in managed.stream(request):
                if isinstance(event, Delta):
                    seen.append(event.text)
        assert err.value.kind is ErrorKind.INTERRUPTED
        assert seen == ["a ", "b "] and lookups.count == 1  # not asked twice
        assert managed.handle is None
        server.reply = Reply(tokens=["fine"])
        assert await ask(managed) == "fine"
        assert lookups.count == 2
        await managed.aclose()


async def test_other_errors_are_not_looked_up_again() -> None:
    with OpenAIServer(api_key=KEY) as server:
        server.reply = Reply(status=500)
        lookups = Lookups(handle(server, KEY))
        managed = backend(lookups)
        with pytest.raises(BackendError) as err:
            await ask(managed)
        assert err.value.kind is ErrorKind.SERVER and lookups.count == 1
        assert managed.handle is not None
        await managed.aclose()


# --------------------------------------------------------------------------------------------
# Slow: the fake vLLM, stopped and relaunched by another session
# --------------------------------------------------------------------------------------------


def settings(port: int) -> Settings:
    return load_settings(
        {"backend": "finetune", "finetune_model": MODEL, "finetune_port": port,
         "vllm": {"startup_timeout_seconds": 8}}
    )  # fmt: skip


async def wait_gone(entry: ServiceEntry, registry: Registry, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while registry.read(entry.name) is not None or entry.processes_alive():
        assert time.monotonic() < deadline, f"{entry.name} still there after {seconds} s"
        await asyncio.sleep(0.1)


@pytest.mark.slow
@pytest.mark.usefixtures("fake_vllm")
@pytest.mark.parametrize("same_port", [True, False], ids=["same-port", "new-port"])
async def test_a_session_answers_after_another_one_relaunched_the_service(
    same_port: bool,
) -> None:
    port = closed_port()
    first = finetune_backend(settings(port), None)
    await first.prepare()
    assert first.handle is not None and first.handle.entry is not None
    old_key = first.handle.api_key
    registry = first.manager.registry
    assert ServiceManager(settings(port)).stop(MODEL)  # `sage services stop tiny`
    second = finetune_backend(settings(port if same_port else closed_port()), None)
    await second.prepare()
    assert second.handle is not None and second.handle.entry is not None
    assert second.handle.api_key != old_key
    assert (second.handle.port == port) is same_port

    assert (await ask(first)).startswith("fake0")
    assert first.handle is not None and first.handle.api_key == second.handle.api_key
    assert first.handle.port == second.handle.port
    entry = registry.read(MODEL)
    assert entry is not None and len(entry.live_holders()) == 2
    await second.aclose()
    assert (await ask(first)).startswith("fake0")  # still held by the first session
    await first.aclose()
    await wait_gone(entry, registry, 10)
