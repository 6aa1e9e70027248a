"""Merges are bound to the session that started them: the child holds the model's merge lock for
its whole life, dies with its session (also after a SIGKILL), is stopped when the session ends
(`sage chat`, the language server), and what a killed merge left is cleaned by the next one.

A stand-in merge Python runs the real child (``sage_lsp.services.merge_child.main``: lock, parent
watch, stop, leftovers) around a fake merge that writes a temporary folder and sleeps.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest
from filelock import FileLock, Timeout

from sage_lsp import protocol
from sage_lsp.backends.base import BackendError, ErrorKind
from sage_lsp.config import load_settings
from sage_lsp.processes import is_alive
from sage_lsp.services import logfile
from sage_lsp.services.manager import Progress, ServiceManager
from sage_lsp.services.merge import adapter_fingerprint, read_merge_record, run_merge
from sage_lsp.services.store import MERGE_RECORD, FinetunedModel
from tests.support.ports import closed_port
from tests.support.rpc_client import RpcClient

pytestmark = pytest.mark.slow  # every test starts merge children

NAME = "m"
FAKE_CHILD = """
import json, os, sys, time
import sage_lsp.services.merge as merge
import sage_lsp.services.merge_child as child

def fake_merge(base, adapter, output, session_alive):
    tmp, old = merge.temp_dirs(output, os.getpid())
    try:
        tmp.mkdir(parents=True)
        (tmp / "model.safetensors").write_bytes(b"new merged weights")
        print(f"saving to {tmp}", flush=True)
        time.sleep(float(os.environ.get("FAKE_MERGE_SECONDS", "0")))
        (tmp / "config.json").write_text("{}")
        record = {"adapter": str(adapter), "fingerprint": merge.adapter_fingerprint(adapter)}
        (tmp / merge.MERGE_RECORD).write_text(json.dumps(record))
        if not session_alive():
            raise KeyboardInterrupt
        merge.swap_into_place(tmp, output, old)
    except BaseException:
        merge.clean_after(output, os.getpid())
        raise

child._merge = fake_merge
sys.exit(child.main(sys.argv[3:]))
"""
SESSION = """
import sys
from sage_lsp.config import load_settings
from sage_lsp.services.manager import ServiceManager
manager = ServiceManager(load_settings())
merged = manager.merge_if_needed(manager.store.get(sys.argv[1]))
print("merged" if merged else "up to date", flush=True)
"""
"""A session that merges the model (``sage finetune merge``, reduced to the call)."""


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


@pytest.fixture
def model(sage_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FinetunedModel:
    """A model with an adapter and no merge yet; merges run the stand-in child."""
    path = sage_home / "finetune_output" / NAME
    (path / "lora_weights").mkdir(parents=True)
    (path / "finetune_meta.json").write_text(json.dumps({"model": "Org/Base-1B"}))
    (path / "lora_weights" / "adapter_config.json").write_text('{"r": 8}')
    (path / "lora_weights" / "adapter_model.safetensors").write_bytes(b"weights")
    script = tmp_path / "fake_child.py"
    script.write_text(FAKE_CHILD, encoding="utf-8")
    python = tmp_path / "merge-python"
    python.write_text(f'#!/bin/sh\nexec {sys.executable} {script} "$@"\n', encoding="utf-8")
    python.chmod(python.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("SAGE_MERGE_PYTHON", str(python))
    monkeypatch.setenv("FAKE_CHILD", str(script))
    monkeypatch.setenv("FAKE_MERGE_SECONDS", "60")
    return FinetunedModel(NAME, path)


def lock_path(sage_home: Path) -> Path:
    return sage_home / "run" / f"{NAME}.merge.lock"


def log_path(sage_home: Path) -> Path:
    return sage_home / "logs" / "merge" / f"{NAME}.log"


def leftovers(model: FinetunedModel) -> list[str]:
    """Temporary or set-aside folders a merge left in the model folder."""
    return sorted(p.name for p in model.path.iterdir() if p.name.startswith(".merged_model."))


def wait_until(check: Callable[[], object], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not {what} after {seconds} s")
        time.sleep(0.05)


def merging_child(model: FinetunedModel, seconds: float = 30) -> psutil.Process:
    """The merge child, once it writes its temporary folder ``.merged_model.tmp-PID``."""
    found: list[str] = []
    wait_until(lambda: found.extend(leftovers(model)) or found, seconds, "merging")
    return psutil.Process(int(found[0].rsplit("-", 1)[1]))


def gone(child: psutil.Process) -> bool:
    return not is_alive(child.pid, child.create_time())


def lock_is_free(path: Path) -> bool:
    lock = FileLock(str(path))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return False
    lock.release()
    return True


@pytest.fixture
def reap() -> Iterator[list[psutil.Process]]:
    """Processes a test started; any still alive at the end are killed."""
    started: list[psutil.Process] = []
    yield started
    for process in started:
        if is_alive(process.pid, process.create_time()):
            process.kill()


def start_session(reap: list[psutil.Process]) -> subprocess.Popen[str]:
    session = subprocess.Popen(
        [sys.executable, "-c", SESSION, NAME], stdout=subprocess.PIPE, text=True
    )
    reap.append(psutil.Process(session.pid))
    return session


# --------------------------------------------------------------------------------------------
# Bound to the session
# --------------------------------------------------------------------------------------------


def without_exec() -> None:
    """Make the merge Python a wrapper script that runs Python as its child (no ``exec``)."""
    python = Path(os.environ["SAGE_MERGE_PYTHON"])
    python.write_text(f'#!/bin/sh\n{sys.executable} {os.environ["FAKE_CHILD"]} "$@"\n')


@pytest.mark.parametrize("wrapper", ["exec", "no-exec"])
def test_the_child_holds_the_lock_for_its_life_and_dies_with_its_killed_session(
    model: FinetunedModel, sage_home: Path, reap: list[psutil.Process], wrapper: str
) -> None:
    if wrapper == "no-exec":
        without_exec()
    session = start_session(reap)
    child = merging_child(model)
    reap.append(child)
    assert (child.ppid() == session.pid) is (wrapper == "exec")
    child.suspend()  # the child lives on a moment after its session dies
    session.kill()
    session.wait()
    assert not lock_is_free(lock_path(sage_home)), "the lock went with the session, not the child"
    child.resume()
    wait_until(lambda: gone(child), 10, "stopped after its session died")
    assert leftovers(model) == [] and not model.merged_dir.exists()
    assert lock_is_free(lock_path(sage_home))
    log = log_path(sage_home).read_text(encoding="utf-8")
    assert f"the session that started this merge (pid {session.pid}) is gone" in log


def test_a_second_session_waits_for_the_merge_and_does_not_merge_again(
    model: FinetunedModel,
    sage_home: Path,
    reap: list[psutil.Process],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FAKE_MERGE_SECONDS", "2")
    first = start_session(reap)
    merging_child(model)
    seen: list[Progress] = []
    second = ServiceManager(load_settings(), seen.append)
    assert second.merge_if_needed(model) is False
    assert first.communicate(timeout=30)[0].strip() == "merged"
    assert any(f"waiting for another merge of {NAME}" in p.detail for p in seen)
    assert log_path(sage_home).read_text(encoding="utf-8").count("=== merge ") == 1
    record = read_merge_record(model.merged_dir)
    assert record is not None and record["fingerprint"] == adapter_fingerprint(model.lora_dir)


def test_a_child_that_finds_the_merge_done_under_the_lock_does_not_merge(
    model: FinetunedModel, sage_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another session may merge between this session's check and its child taking the lock.
    (The merge Python here is a wrapper that does not ``exec``: the child still merges.)"""
    monkeypatch.setenv("FAKE_MERGE_SECONDS", "1")
    without_exec()
    python = os.environ["SAGE_MERGE_PYTHON"]
    log, lock = log_path(sage_home), lock_path(sage_home)
    assert run_merge(model, python, log, lock_path=lock) is True
    before = (model.merged_dir / MERGE_RECORD).stat().st_mtime_ns
    assert run_merge(model, python, log, lock_path=lock) is False
    assert (model.merged_dir / MERGE_RECORD).stat().st_mtime_ns == before
    assert "merge not needed: " in log.read_text(encoding="utf-8")
    assert run_merge(model, python, log, lock_path=lock, force=True) is True
    assert (model.merged_dir / MERGE_RECORD).stat().st_mtime_ns != before


def test_a_stopped_merge_ends_at_once_and_leaves_nothing(
    model: FinetunedModel, sage_home: Path, reap: list[psutil.Process]
) -> None:
    stop = threading.Event()
    errors: list[BaseException] = []

    def merge() -> None:
        try:
            run_merge(model, os.environ["SAGE_MERGE_PYTHON"], log_path(sage_home),
                      lock_path=lock_path(sage_home), stop=stop)  # fmt: skip
        except BaseException as exc:
            errors.append(exc)

    worker = threading.Thread(target=merge)
    worker.start()
    child = merging_child(model)
    reap.append(child)
    stopped = time.monotonic()
    stop.set()
    worker.join(10)
    assert not worker.is_alive() and time.monotonic() - stopped < 5
    [error] = errors
    assert isinstance(error, BackendError) and error.kind is ErrorKind.INTERRUPTED
    assert gone(child) and leftovers(model) == [] and lock_is_free(lock_path(sage_home))


def test_ctrl_c_in_sage_chat_stops_the_merge_and_exits_promptly(
    model: FinetunedModel, sage_home: Path, reap: list[psutil.Process]
) -> None:
    chat = subprocess.Popen(
        [sys.executable, "-m", "sage_lsp.cli", "chat", "--backend", "finetune",
         "--finetune-model", NAME, "--finetune-port", str(closed_port()), "--ask", "hi"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    reap.append(psutil.Process(chat.pid))
    child = merging_child(model)
    reap.append(child)
    interrupted = time.monotonic()
    chat.send_signal(signal.SIGINT)
    _, err = chat.communicate(timeout=15)
    assert time.monotonic() - interrupted < 8, "sage chat waited for the merge"
    assert chat.returncode == 130, err
    assert gone(child) and leftovers(model) == [] and not model.merged_dir.exists()


async def test_the_language_server_exits_promptly_during_a_merge(
    model: FinetunedModel, sage_home: Path, reap: list[psutil.Process]
) -> None:
    client = await RpcClient.start()
    reap.append(psutil.Process(client.process.pid))
    await client.initialize({"backend": "finetune", "finetuneModel": NAME,
                             "finetunePort": closed_port()})  # fmt: skip
    client.request_later(protocol.BACKEND_START, {})
    child = await asyncio.to_thread(merging_child, model)
    reap.append(child)
    ending = time.monotonic()
    await client.request("shutdown", timeout=5)
    await client.notify("exit")
    await asyncio.wait_for(client.process.wait(), 10)
    assert time.monotonic() - ending < 8, "the server waited for the merge"
    await asyncio.to_thread(wait_until, lambda: gone(child), 5, "stopped")
    assert leftovers(model) == [] and not model.merged_dir.exists()


# --------------------------------------------------------------------------------------------
# What a killed merge left, and the merge log
# --------------------------------------------------------------------------------------------


def test_the_next_merge_removes_what_a_killed_one_left_and_puts_back_the_old_merge(
    model: FinetunedModel, sage_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A merge killed in mid-swap: merged_model is set aside as .old-PID and .tmp-PID is half
    written. The next merge puts the old one back, removes the rest, and merges only if needed."""
    monkeypatch.setenv("FAKE_MERGE_SECONDS", "0")
    old = model.path / ".merged_model.old-4000001"
    old.mkdir()
    (old / "config.json").write_text("{}")
    record = {"adapter": str(model.lora_dir), "fingerprint": adapter_fingerprint(model.lora_dir)}
    (old / MERGE_RECORD).write_text(json.dumps(record))
    (model.path / ".merged_model.tmp-4000001").mkdir()
    (model.path / ".merged_model.tmp-4000001" / "model.safetensors").write_bytes(b"half")
    (model.path / ".merged_model.tmp-4000002").mkdir()
    python, log = os.environ["SAGE_MERGE_PYTHON"], log_path(sage_home)
    assert run_merge(model, python, log, lock_path=lock_path(sage_home)) is False
    assert leftovers(model) == []
    assert read_merge_record(model.merged_dir) == record  # the old merge, put back

    (model.path / ".merged_model.tmp-4000003").mkdir()
    (model.lora_dir / "adapter_model.safetensors").write_bytes(b"newer weights")
    assert run_merge(model, python, log, lock_path=lock_path(sage_home)) is True
    assert leftovers(model) == []
    assert (model.merged_dir / "model.safetensors").read_bytes() == b"new merged weights"


def test_the_merge_log_is_private_and_rotated_when_large(
    model: FinetunedModel, sage_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_MERGE_SECONDS", "0")
    log = log_path(sage_home)
    log.parent.mkdir(parents=True)
    log.write_bytes(b"an earlier merge\n" * (logfile.LOG_MAX_BYTES // 17 + 1))
    log.chmod(0o644)
    python = os.environ["SAGE_MERGE_PYTHON"]
    assert run_merge(model, python, log, lock_path=lock_path(sage_home)) is True
    assert log.stat().st_size < 10_000
    assert log.read_text(encoding="utf-8").startswith("=== merge m at ")
    rotated = logfile.backup(log, 1)
    assert rotated.read_bytes().startswith(b"an earlier merge\n")
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    assert stat.S_IMODE(rotated.stat().st_mode) == 0o600


# --------------------------------------------------------------------------------------------
# The real merge (vLLM environment)
# --------------------------------------------------------------------------------------------


@pytest.mark.vllm
def test_a_real_merge_dies_with_its_killed_session_and_the_next_one_merges(
    tiny_model: FinetunedModel,
    vllm_python: Path,
    reap: list[psutil.Process],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    home = tiny_model.path.parents[1]
    monkeypatch.setenv("SAGE_HOME", str(home))
    monkeypatch.setenv("SAGE_MERGE_PYTHON", str(vllm_python))
    session = subprocess.Popen(
        [sys.executable, "-c", SESSION, tiny_model.name], stdout=subprocess.PIPE, text=True
    )
    reap.append(psutil.Process(session.pid))
    log = home / "logs" / "merge" / f"{tiny_model.name}.log"
    wait_until(lambda: log.is_file() and "loading base" in log.read_text(), 120, "loading")
    [child] = psutil.Process(session.pid).children()
    reap.append(child)
    child.suspend()  # the tiny merge is quick: its session dies before it can finish
    session.kill()
    session.wait()
    child.resume()
    wait_until(lambda: gone(child), 40, "stopped after its session died")
    assert leftovers(tiny_model) == [] and not tiny_model.merged_dir.exists()
    lock = home / "run" / f"{tiny_model.name}.merge.lock"
    assert lock_is_free(lock)
    assert run_merge(tiny_model, str(vllm_python), log, lock_path=lock) is True
    record = read_merge_record(tiny_model.merged_dir)
    assert record is not None and record["fingerprint"] == adapter_fingerprint(tiny_model.lora_dir)
    assert leftovers(tiny_model) == []
