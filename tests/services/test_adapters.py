"""Adapter mode (``vllm.serveAdapter``): one LoRA service per base model, adapters loaded at
runtime, loads kept away from requests in flight, refusals, release per adapter.

The gate and the base comparison run in the fast tier; the rest drives the backend manager
against the fake vLLM (subprocesses: the slow tier)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx2
import pytest

from sage_lsp.backends.openai_compat import OpenAICompatibleBackend
from sage_lsp.config import Settings, SettingsError, load_settings
from sage_lsp.core.errors import InvalidInput, ServiceFailure
from sage_lsp.services import adapters
from sage_lsp.services.adapters import Gate, same_base
from sage_lsp.services.manager import ServiceHandle, ServiceManager, lora_service_name
from sage_lsp.services.registry import Registry, ServiceEntry
from tests.services.test_rejoin import Lookups, ask, backend, handle
from tests.support.openai_server import OpenAIServer
from tests.support.ports import closed_port

BASE = "base/model"
SERVICE = lora_service_name(BASE)


def add_adapter(
    home: Path, name: str, *, r: int = 8, declared: str = BASE, weights: bytes = b"w0"
) -> Path:
    """A finetuned model of ``BASE`` in the store with a LoRA adapter (``lora_weights/``)."""
    model = home / "finetune_output" / name
    adapter = model / "lora_weights"
    adapter.mkdir(parents=True, exist_ok=True)
    config = {"peft_type": "LORA", "r": r, "base_model_name_or_path": declared}
    (adapter / "adapter_config.json").write_text(json.dumps(config))
    (adapter / "adapter_model.safetensors").write_bytes(weights)
    (model / "finetune_meta.json").write_text(json.dumps({"model": BASE}))
    return adapter


def adapter_settings(**vllm: object) -> Settings:
    return load_settings(
        {"finetune_port": closed_port(),
         "vllm": {"serve_adapter": True, "startup_timeout_seconds": 8, **vllm}}
    )  # fmt: skip


def fake(entry: ServiceEntry, what: str) -> dict[str, object]:
    """A ``/_test/*`` report of the fake vLLM behind ``entry``."""
    answer = httpx2.get(f"http://127.0.0.1:{entry.port}/_test/{what}", trust_env=False)
    result: dict[str, object] = answer.json()
    return result


def served(entry: ServiceEntry) -> dict[str, str | None]:
    """The fake vLLM's ``/v1/models``: id -> parent."""
    answer = httpx2.get(
        f"http://127.0.0.1:{entry.port}/v1/models",
        headers={"Authorization": f"Bearer {entry.api_key}"},
        trust_env=False,
    )
    return {m["id"]: m.get("parent") for m in answer.json()["data"]}


def loads(entry: ServiceEntry) -> list[dict[str, object]]:
    """The load calls the fake vLLM got."""
    admin = fake(entry, "requests")["admin"]
    assert isinstance(admin, list)
    return [call for call in admin if call["path"] == "/v1/load_lora_adapter"]


def chat(handle: ServiceHandle, stream: bool = False) -> httpx2.Response:
    body = {"model": handle.served_model_name, "stream": stream,
            "messages": [{"role": "user", "content": "hi"}]}  # fmt: skip
    return httpx2.post(
        f"{handle.base_url}/chat/completions",
        json=body,
        headers={"Authorization": f"Bearer {handle.api_key}"},
        trust_env=False,
        timeout=30,
    )


# --- fast tier --------------------------------------------------------------------------------


async def test_a_load_waits_for_requests_in_flight_and_new_requests_wait_behind_it() -> None:
    gate, order = Gate(), []
    first_in, let_first_go = asyncio.Event(), asyncio.Event()

    async def request(name: str, hold: asyncio.Event | None = None) -> None:
        async with gate.shared():
            order.append(f"{name} in")
            if hold is not None:
                first_in.set()
                await hold.wait()
            order.append(f"{name} out")

    async def load() -> None:
        async with gate.exclusive():
            order.append("load")

    first = asyncio.create_task(request("first", let_first_go))
    await first_in.wait()
    loading = asyncio.create_task(load())
    await asyncio.sleep(0.05)
    second = asyncio.create_task(request("second"))
    await asyncio.sleep(0.05)
    assert order == ["first in"], "the load (and the request behind it) waits for the first"
    let_first_go.set()
    await asyncio.gather(first, loading, second)
    assert order == ["first in", "first out", "load", "second in", "second out"]


async def test_a_cancelled_load_lets_waiting_requests_pass() -> None:
    gate, entered = Gate(), asyncio.Event()

    async def hold() -> None:
        async with gate.shared():
            entered.set()
            await asyncio.sleep(10)

    holder = asyncio.create_task(hold())
    await entered.wait()

    async def load() -> None:
        async with gate.exclusive():
            pass

    loading = asyncio.create_task(load())
    await asyncio.sleep(0.05)
    loading.cancel()
    with pytest.raises(asyncio.CancelledError):
        await loading

    async def request() -> None:
        async with gate.shared():
            pass

    await asyncio.wait_for(request(), 1)
    holder.cancel()


@pytest.mark.parametrize(
    ("declared", "base", "same"),
    [
        ("Qwen/Qwen2.5-Coder-1.5B", "Qwen/Qwen2.5-Coder-1.5B", True),
        ("Qwen/Qwen2.5-Coder-1.5B/", "Qwen/Qwen2.5-Coder-1.5B", True),
        ("Qwen/Qwen2.5-Coder-7B", "Qwen/Qwen2.5-Coder-1.5B", False),
        ("/models/Qwen/Qwen2.5-Coder-1.5B", "Qwen/Qwen2.5-Coder-1.5B", True),
        ("/cache/models--Qwen--Qwen2.5-Coder-1.5B/snapshots/abc", "Qwen/Qwen2.5-Coder-1.5B", True),
        ("/models/llama", "Qwen/Qwen2.5-Coder-1.5B", False),
    ],
)
def test_an_adapters_base_is_compared_by_path_or_hub_id(
    declared: str, base: str, same: bool, tmp_path: Path
) -> None:
    assert same_base(declared, base, tmp_path) is same


def test_paths_of_the_base_compare_resolved(tmp_path: Path) -> None:
    (tmp_path / "base").mkdir()
    (tmp_path / "other").mkdir()
    model = tmp_path / "model"
    model.mkdir()
    assert same_base("../base", str(tmp_path / "base"), model)
    assert not same_base(str(tmp_path / "other"), str(tmp_path / "base"), model)


def test_max_lora_rank_takes_only_ranks_vllm_accepts() -> None:
    assert adapter_settings(max_lora_rank=64).vllm.max_lora_rank == 64
    with pytest.raises(SettingsError, match="must be one of 1, 8, 16, 32, 64"):
        adapter_settings(max_lora_rank=12)


async def test_an_adapter_has_its_bases_context(openai_server: OpenAIServer) -> None:
    """vLLM lists an adapter with no ``max_model_len`` of its own: its base's counts, so a
    chat in adapter mode fits its prompt as it does with a merged model."""
    openai_server.models, openai_server.max_model_len = [SERVICE, "coder-a"], 512
    openai_server.parents = {"coder-a": SERVICE}
    url = openai_server.base_url
    backend = OpenAICompatibleBackend("compatible", base_url=url, model="coder-a")
    try:
        window = await backend.context_window()
    finally:
        await backend.aclose()
    assert window is not None and (window.model, window.tokens) == ("coder-a", 512)


async def test_the_editors_backend_answers_inside_the_services_gate(
    openai_server: OpenAIServer,
) -> None:
    """A load (exclusive) waits until a managed backend's answer has streamed to its end."""
    openai_server.reply.delay = 0.05
    managed = backend(Lookups(handle(openai_server, "")))
    order: list[str] = []

    async def answer() -> None:
        order.append(f"answered {await ask(managed)}")

    answering = asyncio.create_task(answer())
    while not openai_server.streams:
        await asyncio.sleep(0.01)
    async with managed.manager.gate("svc").exclusive():
        order.append("load")
    await answering
    await managed.aclose()
    assert order == ["answered Hello, world!", "load"]


# --- with the fake vLLM (subprocesses) ----------------------------------------------------------


@pytest.mark.slow
@pytest.mark.usefixtures("fake_vllm")
async def test_two_adapters_of_one_base_share_one_service_the_second_loaded_at_runtime(
    sage_home: Path,
) -> None:
    add_adapter(sage_home, "coder-a")
    add_adapter(sage_home, "coder-b", r=16, weights=b"w1")
    manager = ServiceManager(adapter_settings())
    try:
        a = await manager.ensure_finetuned("coder-a", manager.settings.finetune_port)
        b = await manager.ensure_finetuned("coder-b", manager.settings.finetune_port)
        assert (a.name, a.served_model_name, b.served_model_name) == (SERVICE, "coder-a", "coder-b")
        assert a.port == b.port and a.entry.pid == b.entry.pid
        [entry] = Registry(sage_home / "run").entries()
        assert entry.name == SERVICE and entry.base_model == BASE
        assert set(entry.adapters) == {"coder-a", "coder-b"}
        command = " ".join(entry.command)
        assert "--enable-lora" in command and "--lora-modules coder-a=" in command
        assert "--max-lora-rank 16" in command, "fits the largest adapter of the base in the store"
        assert "--max-loras 4" in command and "coder-b" not in command
        assert entry.env["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] == "True"
        [load] = loads(entry)
        assert load["body"]["lora_name"] == "coder-b"  # type: ignore[index]
        assert served(entry) == {SERVICE: None, "coder-a": SERVICE, "coder-b": SERVICE}
        for handle in (a, b):
            answer = chat(handle)
            assert answer.status_code == 200 and answer.json()["model"] == handle.served_model_name
        assert manager.held == {"coder-a", "coder-b"}
        listed = subprocess.run(
            [sys.executable, "-m", "sage_lsp.cli", "services"], capture_output=True, text=True
        )
        assert f"{SERVICE} (coder-a, coder-b)" in listed.stdout
        # a second session joins and finds both loaded: no load again
        other = ServiceManager(adapter_settings())
        again = await other.ensure_finetuned("coder-b", other.settings.finetune_port)
        assert again.port == b.port and len(loads(entry)) == 1
        other.release_sync()
    finally:
        manager.release_sync()


@dataclass
class Streaming:
    """Two sessions on one LoRA service: the first streams an answer of ``coder-a``."""

    first: ServiceManager
    second: ServiceManager
    a: ServiceHandle
    stream: asyncio.Task[httpx2.Response]


@pytest.fixture
async def streaming(
    fake_vllm: None, sage_home: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Streaming]:
    """Adapters ``coder-a`` and ``coder-b``; a first session streams ``coder-a`` (40 tokens in
    2 s, half a second in) when the test begins."""
    monkeypatch.setenv("FAKE_VLLM_TOKEN_DELAY", "0.05")
    add_adapter(sage_home, "coder-a")
    add_adapter(sage_home, "coder-b")
    first, second = ServiceManager(adapter_settings()), ServiceManager(adapter_settings())
    try:
        a = await first.ensure_finetuned("coder-a", first.settings.finetune_port)
        stream = asyncio.create_task(asyncio.to_thread(chat, a, True))
        await asyncio.sleep(0.5)
        yield Streaming(first, second, a, stream)
        await stream
    finally:
        first.release_sync()
        second.release_sync()


@pytest.mark.slow
async def test_a_load_waits_until_other_sessions_requests_ended(streaming: Streaming) -> None:
    second = streaming.second
    b = await second.ensure_finetuned("coder-b", second.settings.finetune_port)
    assert streaming.stream.done(), "the load went ahead while another session's stream ran"
    assert (await streaming.stream).status_code == 200
    [load] = loads(b.entry)
    assert load["running"] == 0


@pytest.mark.slow
async def test_a_load_that_waited_too_long_for_other_sessions_is_refused_as_busy(
    streaming: Streaming, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(adapters, "IDLE_WAIT_SECONDS", 0.3)
    second = streaming.second
    with pytest.raises(ServiceFailure, match=r"busy with other sessions' requests for 0\.3 s"):
        await second.ensure_finetuned("coder-b", second.settings.finetune_port)
    assert second.held == set() and not streaming.stream.done()
    assert loads(streaming.a.entry) == []
    assert (await streaming.stream).status_code == 200
    b = await second.ensure_finetuned("coder-b", second.settings.finetune_port)
    assert b.port == streaming.a.port, "asked again once the stream ended: loaded"


@pytest.mark.slow
@pytest.mark.usefixtures("fake_vllm")
async def test_an_adapter_of_another_base_is_refused_before_anything_starts(
    sage_home: Path,
) -> None:
    add_adapter(sage_home, "stranger", declared="other/model")
    manager = ServiceManager(adapter_settings())
    with pytest.raises(InvalidInput, match="trained on other/model, not on base/model"):
        await manager.ensure_finetuned("stranger", manager.settings.finetune_port)
    assert Registry(sage_home / "run").entries() == [] and manager.held == set()


@pytest.mark.slow
@pytest.mark.usefixtures("fake_vllm")
async def test_an_adapter_too_large_for_the_running_service_is_refused(sage_home: Path) -> None:
    add_adapter(sage_home, "coder-a")
    manager = ServiceManager(adapter_settings())
    try:
        a = await manager.ensure_finetuned("coder-a", manager.settings.finetune_port)
        assert a.entry.max_lora_rank == 8
        add_adapter(sage_home, "coder-big", r=64)  # trained after the service started
        with pytest.raises(InvalidInput, match="rank 64") as refused:
            await manager.ensure_finetuned("coder-big", manager.settings.finetune_port)
        assert "vllm.maxLoraRank = 64" in refused.value.hint
        assert manager.held == {"coder-a"} and loads(a.entry) == []
        assert chat(a).status_code == 200, "the service serves on"
    finally:
        manager.release_sync()
    # a maxLoraRank too small for the adapter: refused before a launch
    small = ServiceManager(adapter_settings(max_lora_rank=8))
    with pytest.raises(InvalidInput, match="takes at most 8"):
        await small.ensure_finetuned("coder-big", small.settings.finetune_port)


@pytest.mark.slow
@pytest.mark.usefixtures("fake_vllm")
async def test_a_retrained_adapter_is_reloaded_in_place_from_a_new_path(sage_home: Path) -> None:
    adapter = add_adapter(sage_home, "coder-a")
    manager = ServiceManager(adapter_settings())
    try:
        first = await manager.ensure_finetuned("coder-a", manager.settings.finetune_port)
        old = first.entry.adapters["coder-a"]
        (adapter / "adapter_model.safetensors").write_bytes(b"retrained")
        again = await manager.ensure_finetuned("coder-a", manager.settings.finetune_port)
        assert again.entry.pid == first.entry.pid, "no restart"
        assert again.entry.adapters["coder-a"] not in ("", old)
        [load] = loads(again.entry)
        body = load["body"]
        assert isinstance(body, dict) and body["load_inplace"] is True
        assert Path(body["lora_path"]).resolve() == adapter.resolve()
        assert body["lora_path"] not in " ".join(first.entry.command), "a new path: no stale cache"
    finally:
        manager.release_sync()


@pytest.mark.slow
@pytest.mark.usefixtures("fake_vllm")
async def test_releasing_one_adapter_keeps_the_base_for_the_other(sage_home: Path) -> None:
    add_adapter(sage_home, "coder-a")
    add_adapter(sage_home, "coder-b")
    manager = ServiceManager(adapter_settings())
    registry = Registry(sage_home / "run")
    try:
        await manager.ensure_finetuned("coder-a", manager.settings.finetune_port)
        b = await manager.ensure_finetuned("coder-b", manager.settings.finetune_port)
        stopped = await asyncio.to_thread(manager.release_one, "coder-a", stop=True, wait=5)
        entry = registry.read(SERVICE)
        assert not stopped and entry is not None and entry.holders == [manager.holder]
        assert chat(b).status_code == 200
        assert await asyncio.to_thread(manager.release_one, "coder-b", stop=True, wait=5)
        assert registry.read(SERVICE) is None and manager.held == set()
    finally:
        manager.release_sync()
    # release_sync lets go of a service held for two adapters (no orphan)
    manager = ServiceManager(adapter_settings())
    await manager.ensure_finetuned("coder-a", manager.settings.finetune_port)
    await manager.ensure_finetuned("coder-b", manager.settings.finetune_port)
    manager.release_sync()
    entry = registry.read(SERVICE)
    assert manager.held == set() and (entry is None or entry.holders == [])
