"""Faults nobody scripts, against the fake vLLM: a supervisor that dies, pids that now belong to
other programs, a service that answers slowly, holders joining while the supervisor prunes, two
projects' ``./model``, and logs that grow without end."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sage_lsp.config import load_settings
from sage_lsp.processes import create_time, is_alive
from sage_lsp.services import probe
from sage_lsp.services.factory import create_backend
from sage_lsp.services.launcher import new_api_key, vllm_command
from sage_lsp.services.logfile import LOG_MAX_BYTES, backup
from sage_lsp.services.managed_backend import finetune_backend
from sage_lsp.services.manager import Progress, ServiceManager
from sage_lsp.services.registry import Holder, Registry, ServiceEntry
from sage_lsp.services.supervisor import Supervisor
from tests.services.test_manager import (
    MODEL,
    ask,
    settings,
    wait_gone,
    wait_no_services,
)
from tests.support.ports import closed_port

# subprocess-heavy: in `make test`, not `make test-fast`
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("fake_vllm")]

ANSWER = "".join(f"fake{n} " for n in range(40))
"""What the fake vLLM streams."""


def registry() -> Registry:
    return Registry(load_settings().sage_home / "run")


def wait_dead(pid: int, created: float | None = None, seconds: float = 5) -> None:
    deadline = time.monotonic() + seconds
    while is_alive(pid, created) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not is_alive(pid, created)


# --- 1. the supervisor dies ------------------------------------------------------------------


async def test_a_supervisor_killed_while_starting_is_replaced_within_bounds(
    monkeypatch: pytest.MonkeyPatch, sage_home: Path
) -> None:
    monkeypatch.setenv("FAKE_VLLM_DELAY", "3")
    config = settings(vllm={"startup_timeout_seconds": 20})
    first, second = finetune_backend(config, None), finetune_backend(config, None)
    starting = asyncio.create_task(first.prepare())
    deadline = time.monotonic() + 10
    while (entry := registry().read(MODEL)) is None or entry.pid is None:
        assert time.monotonic() < deadline, "the service was not launched"
        await asyncio.sleep(0.05)
    assert entry.supervisor_pid is not None
    os.kill(entry.supervisor_pid, signal.SIGKILL)  # vLLM is still loading
    await asyncio.wait_for(asyncio.gather(starting, second.prepare()), 25)
    assert first.handle and second.handle
    assert first.handle.entry.pid == second.handle.entry.pid  # one service for both
    assert (await ask(second)).startswith("fake0")
    await first.aclose()
    await second.aclose()
    wait_no_services(sage_home, 15)
    assert registry().read(MODEL) is None


async def test_a_ready_service_whose_supervisor_died_is_adopted(sage_home: Path) -> None:
    config = settings()
    first = finetune_backend(config, None)
    await first.prepare()
    assert first.handle
    old = first.handle.entry
    assert old.supervisor_pid and old.supervisor_create_time
    os.kill(old.supervisor_pid, signal.SIGKILL)
    wait_dead(old.supervisor_pid, old.supervisor_create_time)
    seen: list[Progress] = []
    second = finetune_backend(config, seen.append)
    await asyncio.wait_for(second.prepare(), 15)
    assert second.handle
    adopted = second.handle.entry
    assert adopted.pid == old.pid, "the running vLLM is kept, not relaunched"
    assert adopted.supervisor_pid != old.supervisor_pid and adopted.supervisor_alive()
    deadline = time.monotonic() + 5
    while "adopting vLLM" not in Path(adopted.log_path).read_text():
        assert time.monotonic() < deadline, "the new supervisor did not take over"
        await asyncio.sleep(0.1)
    assert (await ask(first)).startswith("fake0") and (await ask(second)).startswith("fake0")
    await first.aclose()
    await second.aclose()  # the new supervisor stops it: nothing is left
    await wait_gone(adopted, registry(), 10)
    wait_no_services(sage_home)


def write_entry(reg: Registry, **fields: object) -> ServiceEntry:
    """A registry entry as a session writes it before starting the supervisor."""
    port = closed_port()
    command = vllm_command(sys.executable, "model", MODEL, port, load_settings().vllm)
    entry = ServiceEntry(
        name=MODEL, served_model_name=MODEL, port=port, api_key=new_api_key(),
        log_path=str(reg.run_dir.parent / "logs" / "services" / f"{MODEL}.log"),
        command=command, started_at=time.time(), **fields,  # type: ignore[arg-type]
    )  # fmt: skip
    with reg.locked():
        reg.write(entry)
    return entry


def test_an_error_in_the_supervisor_stops_vllm_and_fails_the_entry(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reg = registry()
    write_entry(reg, holders=[Holder(os.getpid(), create_time(os.getpid()), "test")])
    calls = 0

    def failing_probe(port: int, timeout: float = 2.0) -> bool:
        nonlocal calls
        calls += 1
        if calls > 2:  # vLLM runs by now
            raise RuntimeError("psutil.Error: simulated")
        return False

    monkeypatch.setattr(probe, "healthy", failing_probe)
    monkeypatch.setattr(signal, "signal", lambda *args: None)  # the test runner keeps its own
    with pytest.raises(RuntimeError, match="simulated"):
        Supervisor(reg.run_dir, MODEL).run()
    entry = reg.read(MODEL)
    assert entry is not None and entry.pid is not None
    assert entry.state == "failed" and "simulated" in (entry.message or "")
    assert not entry.group_alive(), "vLLM was left running"
    assert "the supervisor failed" in Path(entry.log_path).read_text()


# --- 2. pids that belong to other programs now -----------------------------------------------


@pytest.fixture
def innocents() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Two ``sleep`` processes (each leading its own process group) that are not ours to stop."""
    sleeps = [subprocess.Popen(["sleep", "600"], start_new_session=True) for _ in range(2)]
    yield sleeps
    for process in sleeps:
        process.kill()
        process.wait()


def stale_entry(sleeps: list[subprocess.Popen[bytes]], recorded: str) -> None:
    """An entry left from before a crash whose pids now belong to ``sleeps``: without create
    times (an older entry) or with create times that are not theirs."""
    vllm, supervisor = sleeps
    entry: dict[str, object] = {
        "name": MODEL, "served_model_name": MODEL, "port": closed_port(), "api_key": "k",
        "log_path": "/nonexistent.log", "command": ["vllm"], "started_at": time.time() - 3600,
        "state": "ready", "pid": vllm.pid, "pgid": vllm.pid, "supervisor_pid": supervisor.pid,
    }  # fmt: skip
    if recorded == "other create times":
        entry["pid_create_time"] = create_time(vllm.pid) - 1000
        entry["supervisor_create_time"] = create_time(supervisor.pid) - 1000
    services = registry().services_dir
    services.mkdir(parents=True, exist_ok=True)
    (services / f"{MODEL}.json").write_text(json.dumps(entry))


def sage(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sage_lsp.cli", *args],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def assert_untouched(sleeps: list[subprocess.Popen[bytes]]) -> None:
    time.sleep(0.2)
    assert [p.poll() for p in sleeps] == [None, None], "an innocent process was signalled"


@pytest.mark.parametrize("recorded", ["no create times", "other create times"])
async def test_reused_pids_are_never_signalled_and_their_entry_is_not_listed(
    innocents: list[subprocess.Popen[bytes]], recorded: str
) -> None:
    stale_entry(innocents, recorded)
    listed = sage("services", "list")
    assert listed.returncode == 0 and "no services running" in listed.stdout, listed.stdout
    assert registry().read(MODEL) is None
    assert_untouched(innocents)

    stale_entry(innocents, recorded)
    stopped = sage("services", "stop", MODEL)
    assert stopped.returncode == 1 and "no service named" in stopped.stderr
    assert registry().read(MODEL) is None
    assert_untouched(innocents)

    stale_entry(innocents, recorded)
    manager = ServiceManager(settings())
    assert manager.stop(MODEL) is False
    manager.held.add(MODEL)
    stale_entry(innocents, recorded)
    manager.release_sync()
    assert_untouched(innocents)

    stale_entry(innocents, recorded)
    backend = finetune_backend(settings(), None)
    await backend.prepare()  # the stale entry is replaced by a new launch
    assert backend.handle and backend.handle.entry.pid not in [p.pid for p in innocents]
    assert_untouched(innocents)
    entry = backend.handle.entry
    await backend.aclose()
    await wait_gone(entry, registry(), 5)
    assert_untouched(innocents)


def test_a_pid_of_another_user_is_stale_not_a_crash(monkeypatch: pytest.MonkeyPatch) -> None:
    me = os.getpid()
    reg = registry()
    write_entry(reg, state="ready", supervisor_pid=me, supervisor_create_time=create_time(me),
                pid=me, pgid=me, pid_create_time=create_time(me))  # fmt: skip

    def not_permitted(*args: object) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "kill", not_permitted)
    monkeypatch.setattr(os, "killpg", not_permitted)
    ServiceManager(settings()).stop(MODEL)  # the signals fail: no crash, the entry is cleaned
    assert reg.read(MODEL) is None


# --- 3. a slow service is not a dead one --------------------------------------------------------


async def test_a_slow_service_is_joined_and_its_streams_go_on(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, sage_home: Path
) -> None:
    flag = tmp_path / "slow"
    monkeypatch.setenv("FAKE_VLLM_SLOW_FLAG", str(flag))
    monkeypatch.setenv("FAKE_VLLM_SLOW_SECONDS", "4")  # the join's first check waits 2 s
    monkeypatch.setenv("FAKE_VLLM_TOKEN_DELAY", "0.25")  # a 10 s answer
    config = settings()
    first = finetune_backend(config, None)
    await first.prepare()
    assert first.handle
    pid = first.handle.entry.pid
    flag.touch()
    streaming = asyncio.create_task(ask(first))
    await asyncio.sleep(0.5)
    seen: list[Progress] = []
    second = finetune_backend(config, seen.append)
    await asyncio.wait_for(second.prepare(), 20)
    assert second.handle and second.handle.entry.pid == pid, "the service was relaunched"
    assert any("slow to answer" in p.detail for p in seen), [p.detail for p in seen]
    assert await streaming == ANSWER, "the first session's answer broke"
    flag.unlink()
    await first.aclose()
    await second.aclose()
    wait_no_services(sage_home)


# --- 6. holders joining meanwhile, relative model paths --------------------------------------


def test_pruning_dead_holders_keeps_one_that_joined_meanwhile(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reg = registry()
    dead = Holder(2**22 + 1, 1.0, "dead")
    newcomer = Holder(os.getpid(), create_time(os.getpid()), "newcomer")
    write_entry(reg, holders=[dead])

    def join() -> None:  # another session, with its own lock
        other = Registry(reg.run_dir)
        with other.locked():
            entry = other.read(MODEL)
            assert entry is not None
            entry.holders.append(newcomer)
            other.write(entry)

    joining = threading.Thread(target=join)
    alive = Holder.alive

    def alive_while_someone_joins(holder: Holder) -> bool:
        if holder == dead and not joining.is_alive():
            joining.start()
            joining.join(0.5)  # it gets in here unless the lock is held
        return alive(holder)

    monkeypatch.setattr(Holder, "alive", alive_while_someone_joins)
    Supervisor(reg.run_dir, MODEL).drop_dead_holders()
    joining.join(10)
    entry = reg.read(MODEL)
    assert entry is not None and entry.holders == [newcomer]


async def test_two_projects_relative_models_are_two_services(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, sage_home: Path
) -> None:
    port = closed_port()
    backends = []
    for project in ("one", "two"):
        model = (tmp_path / project / "model").resolve()
        model.mkdir(parents=True)
        (model / "config.json").write_text("{}")
        monkeypatch.chdir(model.parent)
        backend = create_backend(settings(backend="vllm", model="./model", finetune_port=port))
        await backend.prepare()
        backends.append(backend)
        assert backend.model == str(model)
        assert f"--model {model} " in " ".join(backend.handle.entry.command)  # type: ignore[attr-defined]
    entries = [b.handle.entry for b in backends]  # type: ignore[attr-defined]
    assert len({e.name for e in entries}) == 2 and len({e.pid for e in entries}) == 2
    for backend in backends:
        await backend.aclose()
    wait_no_services(sage_home)


# --- 12. service logs: private, capped -------------------------------------------------------


async def test_service_logs_are_private_and_capped(
    monkeypatch: pytest.MonkeyPatch, sage_home: Path
) -> None:
    port = closed_port()
    log = sage_home / "logs" / "services" / f"{MODEL}-{port}.log"
    log.parent.mkdir(parents=True)
    log.write_bytes(b"an earlier run\n" * (LOG_MAX_BYTES // 15 + 1))
    log.chmod(0o644)
    monkeypatch.setenv("FAKE_VLLM_SPAM_BYTES", str(LOG_MAX_BYTES + 2_000_000))
    backend = finetune_backend(settings(finetune_port=port), None)
    await backend.prepare()
    assert backend.handle and Path(backend.handle.entry.log_path) == log
    deadline = time.monotonic() + 15
    while not backup(log, 2).exists() and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    assert backup(log, 2).read_bytes().startswith(b"an earlier run")  # capped at launch
    assert b"x" * 999 in backup(log, 1).read_bytes()  # capped while running
    assert log.stat().st_size < LOG_MAX_BYTES
    assert "log capped" in log.read_text()
    for path in (log, backup(log, 1), backup(log, 2)):
        assert oct(path.stat().st_mode)[-3:] == "600", path
    await backend.aclose()
    wait_no_services(sage_home)
