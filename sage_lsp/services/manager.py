"""The backend manager: ensure a model service runs (merge, launch or join), release it, list
and stop services. docs/services.md describes the whole life of a service."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock

from sage_lsp.backends.base import BackendError, ErrorKind
from sage_lsp.config import Settings
from sage_lsp.processes import create_time, stop_group
from sage_lsp.services import probe
from sage_lsp.services.launcher import choose_port, new_api_key, start_supervisor, vllm_command
from sage_lsp.services.merge import (
    adapter_fingerprint,
    merge_needed,
    read_merge_record,
    resolve_base,
    run_merge,
)
from sage_lsp.services.registry import Holder, Registry, ServiceEntry
from sage_lsp.services.store import FinetunedModel, ModelStore

LOG_TAIL_LINES = 40
WAIT_POLL_SECONDS = 0.25
LAUNCH_GRACE_SECONDS = 10.0
"""How long a new entry may lack a live supervisor before the launch counts as failed."""


@dataclass(frozen=True)
class Progress:
    """What a preparation is doing, for the REPL and the editor."""

    phase: str
    """``merging``, ``starting`` or ``ready``."""
    elapsed: float
    """Seconds since the preparation began."""
    detail: str
    """One line: the last log line, the port chosen, ..."""


ProgressCallback = Callable[[Progress], None]


@dataclass(frozen=True)
class ServiceHandle:
    """How to reach a running service."""

    name: str
    """The service name."""
    served_model_name: str
    """The model name to send in requests."""
    port: int
    """The port it listens on, on 127.0.0.1."""
    api_key: str | None
    """The service's key (None for a service started by hand)."""
    owned: bool
    """False for a service the user started by hand: used, never stopped."""
    entry: ServiceEntry | None
    """The registry entry (None for a service started by hand)."""

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/v1``."""
        return f"http://{probe.HOST}:{self.port}/v1"


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> list[str]:
    """The last ``lines`` lines of a log file."""
    try:
        with path.open("rb") as log:
            log.seek(0, os.SEEK_END)
            log.seek(max(0, log.tell() - 64 * 1024))
            text = log.read().decode("utf-8", "replace")
    except OSError:
        return []
    return text.splitlines()[-lines:]


def service_failed(message: str, log_path: Path, exit_code: int | None) -> BackendError:
    """A -32003 error with the log's tail."""
    return BackendError(
        ErrorKind.SERVICE_FAILED,
        message,
        f"see {log_path}",
        {"logPath": str(log_path), "logTail": log_tail(log_path), "exitCode": exit_code},
    )


def service_name(model: str) -> str:
    """A registry-safe name for a base model id such as ``Qwen/Qwen2.5-Coder-1.5B``."""
    return re.sub(r"[^A-Za-z0-9._-]+", "--", model).strip("-.") or "model"


class ServiceManager:
    """Ensures, holds and releases model services for one session."""

    def __init__(self, settings: Settings, on_progress: ProgressCallback | None = None) -> None:
        self.settings = settings
        self.registry = Registry(settings.paths.run_dir)
        self.store = ModelStore(settings.sage_home)
        self.on_progress = on_progress
        pid = os.getpid()
        self.holder = Holder(pid, create_time(pid), uuid.uuid4().hex[:8])
        self.held: set[str] = set()
        self._children: list[subprocess.Popen[bytes]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = threading.get_ident()

    # --- preparing -----------------------------------------------------------------------------

    def _report(self, phase: str, started: float, detail: str) -> None:
        """Tell ``on_progress``, on the event loop's thread when there is one (merges and
        launches run in worker threads; editors are notified from the loop only)."""
        if self.on_progress is None:
            return
        progress = Progress(phase, time.monotonic() - started, detail)
        if self._loop is not None and threading.get_ident() != self._loop_thread:
            self._loop.call_soon_threadsafe(self.on_progress, progress)
        else:
            self.on_progress(progress)

    def _bind_loop(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()

    @property
    def vllm_python(self) -> str:
        """The Python that runs vLLM (``vllm.python``, else this one)."""
        return self.settings.vllm.python or sys.executable

    @property
    def merge_python(self) -> str:
        """The Python that merges (``merge_python``, else the vLLM one)."""
        return self.settings.merge_python or self.vllm_python

    def merge_if_needed(self, model: FinetunedModel, force: bool = False) -> bool:
        """Merge the model's adapter unless the merge is up to date (blocking; one merge of a
        model at a time across sessions). Returns whether it merged."""
        started = time.monotonic()
        self.registry.run_dir.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(self.registry.run_dir / f"{model.name}.merge.lock"), timeout=3600)
        with lock:  # another session may be merging the same model: wait, then look again
            source = model.adapter_source()
            if source is None or not (force or merge_needed(model)):
                return False
            self._report("merging", started, f"merging {source} into {model.merged_dir}")
            log_path = self.settings.paths.logs_dir / "merge" / f"{model.name}.log"
            run_merge(model, self.merge_python, log_path)
            self._report("merging", started, f"merged into {model.merged_dir}")
            return True

    async def ensure_finetuned(self, name: str, port: int) -> ServiceHandle:
        """Serve the finetuned model ``name``: merge if needed (or serve the adapter), then
        join its service or launch it."""
        self._bind_loop()
        started = time.monotonic()
        model = self.store.get(name)
        adapter = model.adapter_source()
        if self.settings.vllm.serve_adapter and adapter is not None:
            if model.base_model is None:
                raise BackendError(
                    ErrorKind.CONFIG,
                    f"{model.path / 'finetune_meta.json'} names no base model",
                    'serveAdapter needs the base model: set "model" in finetune_meta.json',
                )
            base = resolve_base(model, model.base_model)
            fingerprint = await asyncio.to_thread(adapter_fingerprint, adapter)
            return await self._ensure(name, name, base, port, started, adapter, fingerprint)
        if await asyncio.to_thread(merge_needed, model):  # hashes the adapter: off the loop
            await asyncio.to_thread(self.merge_if_needed, model)
        record = read_merge_record(model.merged_dir) or {}
        version = str(record["fingerprint"]) if "fingerprint" in record else None
        merged = str(model.merged_dir)
        return await self._ensure(name, name, merged, port, started, None, version)

    async def ensure_base(self, model: str, port: int) -> ServiceHandle:
        """Serve a base model (a path or a hub id in the local cache) under its own name."""
        self._bind_loop()
        return await self._ensure(service_name(model), model, model, port, time.monotonic(), None)

    async def _ensure(
        self,
        name: str,
        served: str,
        model_path: str,
        port: int,
        started: float,
        adapter: Path | None,
        version: str | None = None,
    ) -> ServiceHandle:
        handle = await asyncio.to_thread(
            self._join_or_launch, name, served, model_path, port, adapter, version
        )
        if handle.entry is None:
            self._report(
                "ready", started, f"using the server on {handle.base_url} (started by hand)"
            )
            return handle
        self.held.add(name)
        entry = handle.entry
        if entry.holders != [self.holder]:
            self._report("starting", started, f"joining the running service on port {entry.port}")
            if version is not None and entry.version != version:
                self._report(
                    "starting", started,
                    f"the running service serves an older version of {name}; it is restarted "
                    "once no session uses it (or now: sage services stop " + name + ")",
                )  # fmt: skip
        elif entry.port != port:
            self._report("starting", started, f"port {port} is taken; using {entry.port}")
        entry = await self._wait_ready(entry, started)
        self._report("ready", started, f"{served} is served on port {entry.port}")
        return ServiceHandle(name, entry.served_model_name, entry.port, entry.api_key, True, entry)

    def _join_or_launch(
        self,
        name: str,
        served: str,
        model_path: str,
        port: int,
        adapter: Path | None,
        version: str | None,
    ) -> ServiceHandle:
        """Under the registry lock: join the live service of ``name`` or launch a new one."""
        with self.registry.locked():
            entry = self.registry.read(name)
            if entry is not None:
                joined = self._join(entry, version)
                if joined is not None:
                    return joined
            taken = {e.port for e in self.registry.entries()}
            started_by_hand = (
                port not in taken
                and not probe.port_free(port)
                and probe.serves(port, served, self.settings.api_key)
            )
            if started_by_hand:
                return ServiceHandle(name, served, port, self.settings.api_key, False, None)
            chosen = choose_port(port, taken)
            log_path = self.settings.paths.logs_dir / "services" / f"{name}-{chosen}.log"
            api_key = new_api_key()
            entry = ServiceEntry(
                name=name,
                served_model_name=served,
                port=chosen,
                api_key=api_key,
                log_path=str(log_path),
                command=vllm_command(
                    self.vllm_python,
                    model_path,
                    served,
                    chosen,
                    api_key,
                    self.settings.vllm,
                    adapter,
                ),
                started_at=time.time(),
                keep_alive_seconds=self.settings.keep_alive_seconds,
                startup_timeout_seconds=self.settings.vllm.startup_timeout_seconds,
                holders=[self.holder],
                version=version,
                env={"HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1")},
            )
            self.registry.write(entry)
            supervisor = start_supervisor(self.registry.run_dir, name, log_path)
            self._children.append(supervisor)
            entry.supervisor_pid = supervisor.pid
            self.registry.write(entry)
            return ServiceHandle(name, served, chosen, api_key, True, entry)

    def _join(self, entry: ServiceEntry, version: str | None) -> ServiceHandle | None:
        """Hold ``entry`` if it is alive and (when ready) really serves its model; else clean
        it up and return None. A service of an older version nobody else holds is restarted."""
        usable = entry.state in ("starting", "ready") and entry.processes_alive()
        if usable and entry.state == "ready":
            usable = probe.serves(entry.port, entry.served_model_name, entry.api_key)
        others = [h for h in entry.live_holders() if h != self.holder]
        if usable and version is not None and entry.version != version and not others:
            usable = False
        if not usable:
            if entry.pgid is not None:
                stop_group(entry.pgid, 3.0)
            entry.signal_supervisor(9)
            self.registry.remove(entry.name)
            return None
        entry.holders = [*others, self.holder]
        self.registry.write(entry)
        return ServiceHandle(
            entry.name, entry.served_model_name, entry.port, entry.api_key, True, entry
        )

    async def _wait_ready(self, entry: ServiceEntry, started: float) -> ServiceEntry:
        """Wait until the supervisor marks the service ready; fail at once if it failed."""
        log_path = Path(entry.log_path)
        launched = time.monotonic()
        while True:
            current = self.registry.read(entry.name)
            if current is None:
                raise service_failed(
                    f"the service {entry.name} went away while starting", log_path, None
                )
            if current.state == "ready":
                return current
            if current.state == "failed" or (
                time.monotonic() - launched > LAUNCH_GRACE_SECONDS and not current.processes_alive()
            ):
                reason = current.message or "the service stopped while starting"
                raise service_failed(f"{entry.name}: {reason}", log_path, current.exit_code)
            last = next((line for line in reversed(log_tail(log_path, 5)) if line.strip()), "")
            self._report("starting", started, last[:200])
            await asyncio.sleep(WAIT_POLL_SECONDS)

    # --- releasing, listing, stopping -------------------------------------------------------

    def release_sync(self) -> None:
        """Give up this session's holds; a service whose supervisor is gone is stopped here."""
        with self.registry.locked():
            for name in sorted(self.held):
                entry = self.registry.read(name)
                if entry is None:
                    continue
                entry.holders = [h for h in entry.live_holders() if h != self.holder]
                if not entry.holders and not entry.supervisor_alive():
                    if entry.pgid is not None:
                        stop_group(entry.pgid)
                    self.registry.remove(name)
                else:
                    self.registry.write(entry)
        self.held.clear()
        for child in self._children:
            child.poll()

    async def release(self) -> None:
        """Give up this session's holds (the supervisor stops a service nobody holds)."""
        if self.held:
            await asyncio.to_thread(self.release_sync)

    def services(self) -> list[ServiceEntry]:
        """Live registry entries."""
        return self.registry.live_entries()

    def stop(self, name: str, wait: float = 20.0) -> bool:
        """Stop service ``name`` now, whoever holds it; False if there is no such service."""
        with self.registry.locked():
            entry = self.registry.read(name)
            if entry is None:
                return False
            if not entry.signal_supervisor(15):
                if entry.pgid is not None:
                    stop_group(entry.pgid)
                self.registry.remove(name)
                return True
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and self.registry.read(name) is not None:
            time.sleep(0.1)
        return True
