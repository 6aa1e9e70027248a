"""The backend manager against a fake vLLM that takes the same arguments (fast tier)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from sage_lsp import protocol
from sage_lsp.backends.base import BackendError, ChatRequest, Delta, ErrorKind, Message
from sage_lsp.config import Settings, SettingsError, load_settings
from sage_lsp.processes import group_alive, is_alive
from sage_lsp.services.managed_backend import finetune_backend
from sage_lsp.services.manager import Progress, ServiceManager
from sage_lsp.services.registry import Registry, ServiceEntry
from tests.services.conftest import FAKE_MODEL
from tests.support.ports import closed_port

# subprocess-heavy: in `make test`, not `make test-fast`
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("fake_vllm")]

MODEL = FAKE_MODEL


def settings(**overrides: object) -> Settings:
    return load_settings(
        {"backend": "finetune", "finetune_model": MODEL, "finetune_port": closed_port(),
         "vllm": {"startup_timeout_seconds": 8}, **overrides}
    )  # fmt: skip


SERVICE_MARKS = ("vllm.entrypoints", "sage_lsp.services.supervisor", "fake-vllm-engine", "VLLM::")
"""What the command lines of a service's processes contain: the supervisor, vLLM (or the fake),
the fake's engine, and vLLM's renamed children (``VLLM::EngineCore``, ``VLLM::Worker``)."""


def service_processes(sage_home: Path) -> list[psutil.Process]:
    """Live processes of this test's services: those with a service's command line whose
    ``SAGE_HOME`` is this test's. Nobody else's processes count, so the suite passes on a
    machine where another vLLM (or another test) runs."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        line = " ".join(process.info["cmdline"] or [])
        if not any(mark in line for mark in SERVICE_MARKS):
            continue
        try:
            if process.environ().get("SAGE_HOME") == str(sage_home):
                found.append(process)
        except psutil.Error:  # gone, a zombie, or not ours to read
            continue
    return found


def wait_no_services(sage_home: Path, seconds: float = 5) -> None:
    """Wait until no process of this test's services is left."""
    deadline = time.monotonic() + seconds
    while service_processes(sage_home) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert service_processes(sage_home) == []


def leftovers(entry: ServiceEntry) -> list[str]:
    """Processes of the service still alive (supervisor, or anything in vLLM's group)."""
    alive = []
    if entry.supervisor_pid and is_alive(entry.supervisor_pid, entry.supervisor_create_time):
        alive.append(f"supervisor {entry.supervisor_pid}")
    if entry.pgid and group_alive(entry.pgid, entry.pid_create_time):
        alive.append(f"process group {entry.pgid}")
    return alive


async def wait_gone(entry: ServiceEntry, registry: Registry, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not leftovers(entry) and registry.read(entry.name) is None:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"left behind after {seconds} s: {leftovers(entry)}")


async def ask(backend: object) -> str:
    request = ChatRequest((Message("user", "hi"),))
    return "".join(
        [e.text async for e in backend.stream(request) if isinstance(e, Delta)]  # type: ignore[attr-defined]
    )


async def test_launch_answer_and_stop_when_released() -> None:
    seen: list[Progress] = []
    backend = finetune_backend(settings(), seen.append)
    await backend.prepare()
    assert backend.handle is not None and backend.handle.entry is not None
    entry = backend.handle.entry
    assert (await ask(backend)).startswith("fake0 fake1")
    info = protocol.to_wire(backend.service())  # as sage/backend/status sends it
    assert info is not None and info["servedModelName"] == MODEL and info["owned"] is True
    assert {p.phase for p in seen} >= {"starting", "ready"}
    log = Path(entry.log_path).read_text()
    assert f"--served-model-name {MODEL}" in log and "--host 127.0.0.1" in log
    assert (
        oct(os.stat(backend.manager.registry.services_dir / f"{MODEL}.json").st_mode)[-3:] == "600"
    )
    await backend.aclose()
    await wait_gone(entry, backend.manager.registry, 5)


async def test_two_sessions_share_one_launch() -> None:
    config = settings()
    first, second = finetune_backend(config, None), finetune_backend(config, None)
    await asyncio.gather(first.prepare(), second.prepare())
    assert first.handle and second.handle and first.handle.entry and second.handle.entry
    assert first.handle.base_url == second.handle.base_url
    entry = first.handle.entry
    assert Path(entry.log_path).read_text().count("launching:") == 1
    current = first.manager.registry.read(MODEL)
    assert current is not None and len(current.live_holders()) == 2
    await first.aclose()
    await asyncio.sleep(1.5)  # the supervisor polls twice a second: it would have stopped it
    assert leftovers(entry) and first.manager.registry.read(MODEL) is not None
    assert (await ask(second)).startswith("fake0")
    await second.aclose()
    await wait_gone(entry, first.manager.registry, 5)


@pytest.mark.parametrize(
    ("mode", "text"),
    [
        ("exit", "vLLM exited with code 3"),
        ("never", "not ready after 2 s"),
        ("wrong-name", "not ready after 2 s"),
    ],
)
async def test_failed_starts_report_the_cause_and_leave_nothing(
    monkeypatch: pytest.MonkeyPatch, sage_home: Path, mode: str, text: str
) -> None:
    monkeypatch.setenv("FAKE_VLLM_MODE", mode)
    backend = finetune_backend(settings(vllm={"startup_timeout_seconds": 2}), None)
    with pytest.raises(BackendError) as err:
        await backend.prepare()
    assert err.value.kind is ErrorKind.SERVICE_FAILED, err.value
    assert text in str(err.value), err.value.details
    details = err.value.details
    assert details["logPath"] and isinstance(details["logTail"], list)
    if mode == "exit":
        assert details["exitCode"] == 3
        assert any("fake error" in line for line in details["logTail"])
    await backend.aclose()
    registry = backend.manager.registry
    deadline = time.monotonic() + 6
    while registry.entries() and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert registry.entries() == []
    wait_no_services(sage_home)


async def test_death_in_mid_stream_is_an_interruption(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_VLLM_MODE", "die-mid-stream")
    backend = finetune_backend(settings(), None)
    await backend.prepare()
    assert backend.handle and backend.handle.entry
    entry = backend.handle.entry
    with pytest.raises(BackendError) as err:
        await ask(backend)
    assert err.value.kind is ErrorKind.INTERRUPTED
    await backend.aclose()
    await wait_gone(entry, backend.manager.registry, 5)


@pytest.mark.slow
async def test_a_server_that_ignores_sigterm_is_killed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_VLLM_MODE", "ignore-term")
    backend = finetune_backend(settings(), None)
    await backend.prepare()
    assert backend.handle and backend.handle.entry
    entry = backend.handle.entry
    await backend.aclose()
    await wait_gone(entry, backend.manager.registry, 14)
    assert "killed" in Path(entry.log_path).read_text()


async def test_port_taken_by_another_program_moves_to_the_next() -> None:
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        seen: list[Progress] = []
        backend = finetune_backend(settings(finetune_port=port), seen.append)
        await backend.prepare()
        assert backend.handle and backend.handle.entry
        assert backend.handle.entry.port > port
        assert any(f"port {port} is taken" in p.detail for p in seen)
        await backend.aclose()


async def test_unknown_model_and_bad_name() -> None:
    with pytest.raises(BackendError) as err:
        await finetune_backend(settings(finetune_model="nope"), None).prepare()
    assert err.value.kind is ErrorKind.MODEL_NOT_FOUND
    assert "tiny" in str(err.value) and err.value.details["searched"]
    with pytest.raises(SettingsError, match=r"invalid finetune_model = '\.\./etc'"):
        settings(finetune_model="../etc")


HOLDER = """
import asyncio, sys
from sage_lsp.services.managed_backend import finetune_backend
from sage_lsp.config import load_settings
async def main():
    backend = finetune_backend(load_settings({"backend": "finetune", "finetune_model": "tiny",
                                             "finetune_port": int(sys.argv[1])}), None)
    await backend.prepare()
    print("ready", flush=True)
    await asyncio.sleep(600)
asyncio.run(main())
"""


async def test_sigkill_of_every_holder_still_stops_the_service() -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(closed_port())], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(holder.stdout.readline), 30)
        assert line.strip() == "ready"
        registry = ServiceManager(settings()).registry
        [entry] = registry.entries()
        holder.send_signal(signal.SIGKILL)
        await wait_gone(entry, registry, 10)
    finally:
        holder.kill()
        holder.wait()


async def test_vllm_backend_with_a_model_and_no_url_manages_a_base_model() -> None:
    from sage_lsp.services.factory import create_backend

    backend = create_backend(
        settings(backend="vllm", model="org/base-model", finetune_port=closed_port())
    )
    await backend.prepare()
    assert backend.model == "org/base-model"
    [entry] = ServiceManager(settings()).services()
    assert entry.name == "org--base-model" and entry.served_model_name == "org/base-model"
    assert "--model org/base-model" in " ".join(entry.command)
    assert (await ask(backend)).startswith("fake0")
    await backend.aclose()
    await wait_gone(entry, Registry(entry_registry_dir()), 5)


def entry_registry_dir() -> Path:
    return load_settings().sage_home / "run"


def remerge(sage_home: Path, weights: bytes) -> None:
    """Give the model an adapter with these weights and a merge record that matches it."""
    from sage_lsp.services.merge import adapter_fingerprint

    model = sage_home / "finetune_output" / MODEL
    (model / "lora_weights").mkdir(exist_ok=True)
    (model / "lora_weights" / "adapter_config.json").write_text('{"r": 8}')
    (model / "lora_weights" / "adapter_model.safetensors").write_bytes(weights)
    record = {"adapter": str(model / "lora_weights"),
              "fingerprint": adapter_fingerprint(model / "lora_weights")}  # fmt: skip
    (model / "merged_model" / "sage_merge.json").write_text(json.dumps(record))


async def test_a_newer_merge_restarts_an_idle_service_and_warns_a_shared_one(
    sage_home: Path,
) -> None:
    remerge(sage_home, b"v1")
    config = settings(keep_alive_seconds=60)
    first = finetune_backend(config, None)
    await first.prepare()
    assert first.handle and first.handle.entry
    old_pid = first.handle.entry.pid
    remerge(sage_home, b"v2")
    seen: list[Progress] = []
    shared = finetune_backend(config, seen.append)
    await shared.prepare()
    assert shared.handle and shared.handle.entry and shared.handle.entry.pid == old_pid
    assert any("serves an older version" in p.detail for p in seen)
    await shared.aclose()
    await first.aclose()  # kept alive for 60 s, but nobody holds it now
    fresh = finetune_backend(config, None)
    await fresh.prepare()
    assert fresh.handle and fresh.handle.entry and fresh.handle.entry.pid != old_pid
    assert not is_alive(old_pid or 0)
    manager = fresh.manager
    await fresh.aclose()
    assert manager.stop(MODEL)


def test_api_keys_never_look_like_flags() -> None:
    from sage_lsp.services.launcher import new_api_key

    keys = {new_api_key() for _ in range(500)}
    assert len(keys) == 500 and all(key[0].isalnum() and len(key) >= 32 for key in keys)


async def test_release_one_stops_only_a_service_nobody_else_holds() -> None:
    config = settings()
    first, second = ServiceManager(config), ServiceManager(config)
    port = config.finetune_port
    await first.ensure_finetuned(MODEL, port)
    await second.ensure_finetuned(MODEL, port)
    entry = first.registry.read(MODEL)
    assert entry is not None and len(entry.holders) == 2
    assert await asyncio.to_thread(first.release_one, MODEL, stop=True) is False
    kept = first.registry.read(MODEL)
    assert first.held == set() and kept is not None and kept.holders == [second.holder]
    assert kept.processes_alive()
    assert await asyncio.to_thread(second.release_one, MODEL, stop=True) is True
    assert second.registry.read(MODEL) is None
    await wait_gone(entry, second.registry, 5)
