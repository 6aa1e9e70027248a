"""The backend manager: ensure a model service runs (merge, launch or join), release it, list
and stop services. docs/services.md describes the whole life of a service."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock

from sage_lsp import protocol
from sage_lsp.config import Settings
from sage_lsp.core.errors import BackendError, ErrorKind, ServiceFailure
from sage_lsp.processes import create_time
from sage_lsp.services import adapters, cpus, logfile, probe
from sage_lsp.services.adapters import Adapter
from sage_lsp.services.launcher import (
    LoraLaunch,
    choose_port,
    new_api_key,
    start_supervisor,
    vllm_command,
)
from sage_lsp.services.merge import (
    merge_lock,
    merge_needed,
    read_merge_record,
    resolve_base,
    run_merge,
)
from sage_lsp.services.registry import Holder, Registry, ServiceEntry
from sage_lsp.services.store import FinetunedModel, ModelStore
from sage_lsp.services.supervisor import LOADING_GRACE_SECONDS, READY_GRACE_SECONDS

WAIT_POLL_SECONDS = 0.25
WAIT_MARGIN_SECONDS = 30.0
"""How long past a service's startup timeout a session still waits for it to be ready."""
TAKEOVERS = 2
"""How often one wait adopts or relaunches a service whose supervisor died, before failing."""
SLOW_PROBE_SECONDS = (2.0, 10.0, 30.0, 60.0)
"""Bounds of successive ``/v1/models`` checks of a running service: a check that times out is
asked again with the next bound (a slow service is not a dead one)."""


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
    """How to reach a running service (always one sage-lsp launched: no other gets its key)."""

    name: str
    """The service name."""
    served_model_name: str
    """The model name to send in requests."""
    port: int
    """The port it listens on, on 127.0.0.1."""
    api_key: str
    """The service's key."""
    entry: ServiceEntry
    """The registry entry."""

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/v1``."""
        return f"http://{probe.HOST}:{self.port}/v1"


def held_service(entry: ServiceEntry, served: str | None = None) -> protocol.HeldService:
    """A registry entry as the protocol reports it (without its API key); ``served``: the name
    requests use, when not the entry's (an adapter of a LoRA service)."""
    return protocol.HeldService(
        name=entry.name,
        served_model_name=served or entry.served_model_name,
        port=entry.port,
        pid=entry.pid,
        owned=True,  # sage-lsp manages only services it launched (docs/services.md)
        holders=len(entry.live_holders()),
        log_path=entry.log_path,
        started_at=entry.started_at,
    )


def service_failed(message: str, entry: ServiceEntry, exit_code: int | None) -> ServiceFailure:
    """A -32003 error with the tail of the service's log (its key masked)."""
    log_path, key = Path(entry.log_path), entry.api_key
    return ServiceFailure(
        ErrorKind.SERVICE_FAILED,
        logfile.mask(message, key),
        f"see {log_path}",
        logfile.failure_details(log_path, logfile.tail(log_path, secret=key), exit_code),
    )


def absolute_model(model: str) -> str:
    """``model`` as an absolute path if it names a path that exists (relative to the current
    folder), else as given (a hub id)."""
    path = Path(model).expanduser()
    return str(path.resolve()) if path.exists() else model


def service_name(model: str) -> str:
    """A registry-safe name for a base model id such as ``Qwen/Qwen2.5-Coder-1.5B``."""
    return re.sub(r"[^A-Za-z0-9._-]+", "--", model).strip("-.") or "model"


LORA_PREFIX = "lora--"
"""Names a base model's LoRA service (adapter mode) apart from the same base served plainly."""
LORA_NAME_CHARS = 120
"""The longest LoRA service name (a long base path keeps its end and gains a hash)."""


def lora_service_name(base: str) -> str:
    """The registry name of ``base``'s LoRA service: ``lora--`` and :func:`service_name`."""
    name = LORA_PREFIX + service_name(base)
    if len(name) <= LORA_NAME_CHARS:
        return name
    digest = hashlib.sha256(base.encode()).hexdigest()[:8]
    return f"{LORA_PREFIX}{digest}-{service_name(base)[-(LORA_NAME_CHARS - 16) :].lstrip('-.')}"


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
        """What this session holds: service names, and for adapters the adapter's name."""
        self._adapter_services: dict[str, str] = {}
        """Adapters held (in :attr:`held`) -> the LoRA service each is served by."""
        self._gates: dict[str, adapters.Gate] = {}
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

    def merge_if_needed(
        self, model: FinetunedModel, *, force: bool = False, stop: threading.Event | None = None
    ) -> bool:
        """Merge the model's adapter unless the merge is up to date (blocking). One merge of a
        model runs at a time across sessions: while another one runs this waits for it, then
        looks again. Setting ``stop`` ends the wait or the merge (its process group is
        killed). Returns whether it merged."""
        started = time.monotonic()
        lock_path = self.registry.run_dir / f"{model.name}.merge.lock"

        def waiting() -> None:
            self._report("merging", started, f"waiting for another merge of {model.name}")

        with merge_lock(lock_path, model.name, stop, waiting):
            source = model.adapter_source()
            if source is None or not (force or merge_needed(model)):
                return False
        # the child takes the lock over; should another merge slip in first, it waits for that
        # one and then finds the merge up to date
        self._report("merging", started, f"merging {source} into {model.merged_dir}")
        log_path = self.settings.paths.logs_dir / "merge" / f"{model.name}.log"
        merged = run_merge(
            model, self.merge_python, log_path, lock_path=lock_path, force=force, stop=stop
        )
        done = f"merged into {model.merged_dir}" if merged else "merged by another session"
        self._report("merging", started, done)
        return merged

    async def ensure_finetuned(self, name: str, port: int) -> ServiceHandle:
        """Serve the finetuned model ``name``: merge if needed, then join its service or launch
        it; in adapter mode, serve its adapter on its base's LoRA service."""
        self._bind_loop()
        started = time.monotonic()
        model = self.store.get(name)
        if self.settings.vllm.serve_adapter:
            adapter = await asyncio.to_thread(adapters.read_adapter, model)
            if adapter is not None:
                return await self._ensure_adapter(model, adapter, port, started)
        if await asyncio.to_thread(merge_needed, model):  # hashes the adapter: off the loop
            stop = threading.Event()
            try:
                await asyncio.to_thread(self.merge_if_needed, model, stop=stop)
            except asyncio.CancelledError:  # the session ends: stop the merge, do not wait
                stop.set()
                raise
        record = read_merge_record(model.merged_dir) or {}
        version = str(record["fingerprint"]) if "fingerprint" in record else None
        merged = str(model.merged_dir)
        return await self._ensure(name, name, merged, port, started, None, version)

    async def _ensure_adapter(
        self, model: FinetunedModel, adapter: Adapter, port: int, started: float
    ) -> ServiceHandle:
        """Adapter mode: join or launch the base's LoRA service (this session holds it for the
        adapter), then have it load the adapter unless it has this version of it already."""
        adapters.check_base(adapter, model.path)
        service = lora_service_name(adapter.base)
        rank = self.settings.vllm.max_lora_rank
        if rank is None:
            models = await asyncio.to_thread(self.store.list)
            largest = max(adapter.rank, adapters.store_rank(models, adapter.base))
            rank = adapters.fitting_rank(largest)
        adapters.check_rank(adapter, rank, service)
        path = await asyncio.to_thread(adapters.versioned_path, self.registry.run_dir, adapter)
        lora = LoraLaunch(adapter.name, path, rank, self.settings.vllm.max_loras)
        handle = await self._ensure(
            service, service, adapter.base, port, started, lora, adapter.fingerprint, adapter.name
        )
        try:
            entry = await self._load(handle.entry, adapter, path)
        except BaseException:
            await asyncio.to_thread(self.release_one, adapter.name)
            raise
        self._report("ready", started, f"{adapter.name} is served by {service}")
        return ServiceHandle(service, adapter.name, entry.port, entry.api_key, entry)

    async def _load(self, entry: ServiceEntry, adapter: Adapter, path: Path) -> ServiceEntry:
        """Have the LoRA service of ``entry`` serve this version of ``adapter``: loaded at
        runtime once this process's requests on it ended (the gate) and, across sessions,
        under the service's load lock once vLLM reports none in flight."""
        if entry.adapters.get(adapter.name) == adapter.fingerprint:
            return entry
        adapters.check_rank(adapter, entry.max_lora_rank or 0, entry.name)
        async with self.gate(entry.name).exclusive():
            return await asyncio.to_thread(self._load_locked, entry.name, adapter, path)

    def _load_locked(self, service: str, adapter: Adapter, path: Path) -> ServiceEntry:
        lock = FileLock(str(self.registry.run_dir / f"{service}.lora.lock"))
        with lock.acquire(timeout=adapters.IDLE_WAIT_SECONDS + adapters.ADMIN_TIMEOUT_SECONDS):
            entry = self.registry.read(service)
            if entry is None:
                raise BackendError(ErrorKind.CONNECTION, f"the LoRA service {service} went away")
            if entry.adapters.get(adapter.name) == adapter.fingerprint:
                return entry  # another session loaded it meanwhile
            if not adapters.wait_idle(entry.port, adapters.IDLE_WAIT_SECONDS):
                raise adapters.busy(adapter, service, adapters.IDLE_WAIT_SECONDS)
            adapters.load(entry.port, entry.api_key, adapter, path, service)
            with self.registry.locked():
                entry = self.registry.read(service) or entry
                entry.adapters[adapter.name] = adapter.fingerprint
                self.registry.write(entry)
            return entry

    def gate(self, service: str) -> adapters.Gate:
        """This process's gate of ``service``: requests shared, adapter loads exclusive."""
        return self._gates.setdefault(service, adapters.Gate())

    @contextlib.asynccontextmanager
    async def in_use(self, handle: ServiceHandle) -> AsyncIterator[None]:
        """Hold the gate of ``handle``'s service for one request: an adapter load waits until
        it ends, and a request waits behind a pending load."""
        async with self.gate(handle.name).shared():
            yield

    def parent(self, name: str) -> str | None:
        """In adapter mode, the LoRA service that serves finetuned model ``name`` (its base's),
        else None."""
        if not self.settings.vllm.serve_adapter:
            return None
        model = self.store.get(name)
        if model.adapter_source() is None or model.base_model is None:
            return None
        return lora_service_name(resolve_base(model, model.base_model))

    async def ensure_base(self, model: str, port: int) -> ServiceHandle:
        """Serve a base model (a path or a hub id in the local cache) under its own name. A path
        is made absolute first: it names the service, so two projects' ``./model`` are two."""
        self._bind_loop()
        model = absolute_model(model)
        return await self._ensure(service_name(model), model, model, port, time.monotonic(), None)

    async def _ensure(
        self,
        name: str,
        served: str,
        model_path: str,
        port: int,
        started: float,
        lora: LoraLaunch | None,
        version: str | None = None,
        hold: str | None = None,
    ) -> ServiceHandle:
        """Join or launch service ``name`` and wait until it is ready. ``hold``: the adapter
        this session holds the (LoRA) service for, and ``version`` its fingerprint."""
        rejoin = functools.partial(
            self._join_or_launch, name, served, model_path, port, lora, version
        )
        entry, slow = await asyncio.to_thread(rejoin)
        self.held.add(hold or name)
        if hold is not None:
            self._adapter_services[hold] = name
        if entry.holders != [self.holder]:
            self._report("starting", started, f"joining the running service on port {entry.port}")
            if lora is None and version is not None and entry.version != version:
                self._report(
                    "starting", started,
                    f"the running service serves an older version of {name}; it is restarted "
                    "once no session uses it (or now: sage services stop " + name + ")",
                )  # fmt: skip
        elif entry.port != port:
            self._report("starting", started, f"port {port} is taken; using {entry.port}")
        if slow:
            await self._wait_answering(entry, started)
        entry = await self._wait_ready(entry, started, rejoin)
        bound = await asyncio.to_thread(cpus.bound_cpus, entry.pid, entry.pid_create_time)
        cpus.keep_off(bound)  # a CPU vLLM's worker spins there: a session would wait seconds
        self._report("ready", started, f"{served} is served on port {entry.port}")
        return ServiceHandle(name, entry.served_model_name, entry.port, entry.api_key, entry)

    def _join_or_launch(
        self,
        name: str,
        served: str,
        model_path: str,
        port: int,
        lora: LoraLaunch | None,
        version: str | None,
    ) -> tuple[ServiceEntry, bool]:
        """Under the registry lock: join the live service of ``name`` or launch a new one.

        Returns the entry and whether the joined service was slow to answer. A port taken by a
        program we did not launch is never asked anything (it gets no key, no prompt): the
        next free port is used.
        """
        with self.registry.locked():
            entry = self.registry.read(name)
            if entry is not None:
                joined = self._join(entry, None if lora else version)
                if joined is not None:
                    return joined
            chosen = choose_port(port, {e.port for e in self.registry.entries()})
            log_path = self.settings.paths.logs_dir / "services" / f"{name}-{chosen}.log"
            entry = ServiceEntry(
                name=name,
                served_model_name=served,
                port=chosen,
                api_key=new_api_key(),
                log_path=str(log_path),
                command=vllm_command(
                    self.vllm_python, model_path, served, chosen, self.settings.vllm, lora
                ),
                started_at=time.time(),
                keep_alive_seconds=self.settings.keep_alive_seconds,
                startup_timeout_seconds=self.settings.vllm.startup_timeout_seconds,
                holders=[self.holder],
                version=None if lora else version,
                env={"HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1")},
            )
            if lora is not None:
                entry.env.update(adapters.RUNTIME_LORA_ENV)
                entry.base_model, entry.max_lora_rank = model_path, lora.max_rank
                entry.adapters = {lora.adapter: version or ""}
            # the supervisor waits for the lock we hold, so it reads the entry written below
            self._start_supervisor(entry)
            self.registry.write(entry)
            return entry, False

    def _start_supervisor(self, entry: ServiceEntry, *, adopt: bool = False) -> None:
        """Start the supervisor of ``entry`` and record it (pid and create time) in ``entry``."""
        supervisor = start_supervisor(
            self.registry.run_dir, entry.name, Path(entry.log_path), adopt=adopt
        )
        self._children.append(supervisor)
        entry.supervisor_pid = supervisor.pid
        entry.supervisor_create_time = create_time(supervisor.pid)

    def _join(self, entry: ServiceEntry, version: str | None) -> tuple[ServiceEntry, bool] | None:
        """Hold ``entry`` if its service is usable; else clean it up and return None.

        A ready service (or one whose supervisor is gone) must answer ``/v1/models`` with its
        model; one that does not answer in time is slow, not dead: it is held, and checked again
        outside the lock. A service whose supervisor is gone and that still serves is adopted by
        a new supervisor. A service of an older version nobody else holds is restarted.
        """
        usable = entry.state in ("starting", "ready") and entry.processes_alive()
        orphan = usable and not entry.supervisor_alive()
        answer = probe.Answer.SERVES
        if usable and (orphan or entry.state == "ready"):
            answer = probe.check(entry.port, entry.served_model_name, entry.api_key)
            usable = answer in (probe.Answer.SERVES, probe.Answer.SLOW)
        others = [h for h in entry.live_holders() if h != self.holder]
        if usable and version is not None and entry.version != version and not others:
            usable = False
        if not usable:
            self._discard(entry)
            return None
        if orphan:
            self._start_supervisor(entry, adopt=True)
        entry.holders = [*others, self.holder]
        self.registry.write(entry)
        return entry, answer is probe.Answer.SLOW

    def _discard(self, entry: ServiceEntry) -> None:
        """Stop what is left of an unusable service (only processes that are still its own) and
        forget it."""
        entry.signal_supervisor(signal.SIGKILL)
        entry.stop_group(LOADING_GRACE_SECONDS)
        self.registry.remove(entry.name)

    async def _wait_answering(self, entry: ServiceEntry, started: float) -> None:
        """A joined service did not answer ``/v1/models`` in time: ask again with longer bounds,
        saying so, until it answers. Never stops it (other sessions may be using it)."""
        waited = SLOW_PROBE_SECONDS[0]
        for bound in SLOW_PROBE_SECONDS[1:]:
            self._report(
                "starting", started,
                f"the service on port {entry.port} is slow to answer (nothing in {waited:g} s); "
                f"asking again, waiting up to {bound:g} s",
            )  # fmt: skip
            answer = await asyncio.to_thread(
                probe.check, entry.port, entry.served_model_name, entry.api_key, bound
            )
            if answer is probe.Answer.SERVES:
                return
            if answer is not probe.Answer.SLOW:
                raise service_failed(
                    f"{entry.name}: the service on port {entry.port} stopped answering", entry, None
                )
            waited = bound
        raise service_failed(
            f"{entry.name}: the service on port {entry.port} did not answer within {waited:g} s; "
            "it is left running for the sessions using it",
            entry,
            None,
        )

    async def _wait_ready(
        self,
        entry: ServiceEntry,
        started: float,
        rejoin: Callable[[], tuple[ServiceEntry, bool]],
    ) -> ServiceEntry:
        """Wait until the supervisor marks the service ready; fail at once if it failed.

        A service whose supervisor is gone is taken over through ``rejoin`` (adopted while it
        serves, else stopped and launched again). No wait outlasts the entry's startup timeout
        plus :data:`WAIT_MARGIN_SECONDS`.
        """
        takeovers = 0
        while True:
            current = self.registry.read(entry.name)
            if current is None:
                raise service_failed(
                    f"the service {entry.name} went away while starting", entry, None
                )
            entry = current
            alive = entry.supervisor_alive()
            if entry.state == "ready" and alive:
                return entry
            if entry.state == "failed":
                reason = entry.message or "the service stopped while starting"
                raise service_failed(f"{entry.name}: {reason}", entry, entry.exit_code)
            if not alive:
                if takeovers == TAKEOVERS:
                    raise service_failed(f"{entry.name}: its supervisor keeps dying", entry, None)
                takeovers += 1
                self._report(
                    "starting", started, f"the supervisor of {entry.name} is gone; taking over"
                )
                entry, slow = await asyncio.to_thread(rejoin)
                if slow:
                    await self._wait_answering(entry, started)
                continue
            limit = entry.startup_timeout_seconds + WAIT_MARGIN_SECONDS
            if time.time() - entry.started_at > limit:
                raise service_failed(f"{entry.name}: not ready after {limit:g} s", entry, None)
            tail = logfile.tail(Path(entry.log_path), 5, secret=entry.api_key)
            last = next((line for line in reversed(tail) if line.strip()), "")
            self._report("starting", started, last[:200])
            await asyncio.sleep(WAIT_POLL_SECONDS)

    # --- releasing, listing, stopping -------------------------------------------------------

    def _drop_hold(self, name: str) -> ServiceEntry | None:
        """Under the registry lock: give up this session's hold on ``name``. Returns its entry
        when nobody holds it any more and its supervisor lives; a service whose supervisor is
        gone is stopped here. Releasing an adapter releases its LoRA service once no other
        adapter of it is held by this session."""
        self.held.discard(name)
        service = self._adapter_services.pop(name, name)
        if service in self._adapter_services.values():
            return None
        entry = self.registry.read(service)
        if entry is None:
            return None
        entry.holders = [h for h in entry.live_holders() if h != self.holder]
        if not entry.holders and not entry.supervisor_alive():
            entry.stop_group(READY_GRACE_SECONDS)
            self.registry.remove(service)
            return None
        self.registry.write(entry)
        return None if entry.holders else entry

    def release_sync(self) -> None:
        """Give up this session's holds; a service whose supervisor is gone is stopped here."""
        with self.registry.locked():
            for name in sorted(self.held):
                self._drop_hold(name)
        self.held.clear()
        for child in self._children:
            child.poll()

    def release_one(self, name: str, *, stop: bool = False, wait: float = 20.0) -> bool:
        """Give up this session's hold on service ``name`` alone (or on adapter ``name``: its
        LoRA service stays held while this session holds another adapter of it). With
        ``stop``, a service that nobody else holds is stopped now (its supervisor is told under
        the registry lock, so no session joins it in between) and this waits up to ``wait`` s
        for it to end; without, its supervisor stops it after ``keep_alive_seconds``. Returns
        whether it was stopped."""
        with self.registry.locked():
            unheld = self._drop_hold(name)
            if unheld is None or not stop or not unheld.signal_supervisor(signal.SIGTERM):
                return False
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and self.registry.read(unheld.name) is not None:
            time.sleep(0.1)
        return True

    async def release(self) -> None:
        """Give up this session's holds (the supervisor stops a service nobody holds)."""
        if self.held:
            await asyncio.to_thread(self.release_sync)

    def services(self) -> list[ServiceEntry]:
        """Live registry entries."""
        return self.registry.live_entries()

    def stop(self, name: str, wait: float = 20.0) -> bool:
        """Stop service ``name`` now, whoever holds it; False if there is no such service (an
        entry whose processes are gone, or whose pids now belong to other programs, is only
        forgotten: nothing is signalled)."""
        with self.registry.locked():
            entry = self.registry.read(name)
            if entry is None:
                return False
            if not entry.signal_supervisor(signal.SIGTERM):
                running = entry.group_alive()
                entry.stop_group(READY_GRACE_SECONDS)
                self.registry.remove(name)
                return running
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and self.registry.read(name) is not None:
            time.sleep(0.1)
        return True
