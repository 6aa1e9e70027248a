"""The service registry: ``$SAGE_HOME/run/services/<name>.json``, one file per model service.

Every change happens under one file lock (``run/registry.lock``), so two sessions starting the
same model at once see each other and cause one launch. Entry files are written atomically with
mode 0600, since they hold the service's API key. Entries whose processes are gone are removed
when they are read. Every pid an entry may signal (the supervisor, vLLM's group leader) is
stored with its create time and checked before a signal (see :mod:`sage_lsp.processes`).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from filelock import FileLock

from sage_lsp.paths import write_private_text
from sage_lsp.processes import group_alive, is_alive, signal_process, stop_group

ServiceState = Literal["starting", "ready", "failed", "stopping"]
ORPHAN_GRACE_SECONDS = 3.0
"""SIGTERM to SIGKILL for the group of a service whose supervisor and holders are gone."""


@dataclass
class Holder:
    """A session (REPL or language server) that uses a service."""

    pid: int
    """The session's process."""
    create_time: float
    """When that process started, so a reused pid does not count as the holder."""
    session: str
    """Identifies the session within its process."""

    def alive(self) -> bool:
        """Whether the holder's process still runs."""
        return is_alive(self.pid, self.create_time)


@dataclass
class ServiceEntry:
    """One model service: how to reach it, who started it, who uses it."""

    name: str
    """The service name: the finetuned model's name (or the base model's, sanitised)."""
    served_model_name: str
    """The name vLLM serves the model under (``--served-model-name``)."""
    port: int
    """Its port on 127.0.0.1."""
    api_key: str = field(repr=False)
    """Random per service; required by its ``/v1`` endpoints (kept out of the entry's repr)."""
    log_path: str
    """Where vLLM's and the supervisor's output goes."""
    command: list[str]
    """The vLLM command line."""
    started_at: float
    """When the launch began (seconds since the epoch)."""
    keep_alive_seconds: float = 0.0
    """How long the service outlives its last holder."""
    startup_timeout_seconds: float = 900.0
    """How long vLLM may take to serve the model."""
    state: ServiceState = "starting"
    """``starting``, ``ready``, ``failed`` or ``stopping``."""
    pid: int | None = None
    """vLLM's API server process."""
    pgid: int | None = None
    """vLLM's process group (its own session, so its id is ``pid``): stopped as a whole."""
    pid_create_time: float | None = None
    """When ``pid`` started: the group is ours only while its leader (if any) started then."""
    supervisor_pid: int | None = None
    """The supervisor process that launched (or adopted) vLLM and stops it."""
    supervisor_create_time: float | None = None
    """When ``supervisor_pid`` started, so a reused pid is never taken for the supervisor."""
    exit_code: int | None = None
    """vLLM's exit code, when it ended."""
    message: str | None = None
    """Why it failed, or what it is doing."""
    holders: list[Holder] = field(default_factory=list)
    """Sessions using the service."""
    env: dict[str, str] = field(default_factory=dict)
    """Extra environment for vLLM."""
    version: str | None = None
    """Fingerprint of what it serves (the merge's or the adapter's), to notice a newer one."""
    base_model: str | None = None
    """For a base model's LoRA service (adapter mode): the base it serves; else None."""
    max_lora_rank: int | None = None
    """For a LoRA service: its ``--max-lora-rank`` (no adapter of a larger ``r`` fits)."""
    adapters: dict[str, str] = field(default_factory=dict)
    """For a LoRA service: the adapters vLLM has loaded, name -> fingerprint."""

    def live_holders(self) -> list[Holder]:
        """Holders whose processes still run."""
        return [h for h in self.holders if h.alive()]

    def supervisor_alive(self) -> bool:
        """Whether the service's supervisor process still runs (a pid without a create time
        cannot be checked, so it counts as gone)."""
        pid, created = self.supervisor_pid, self.supervisor_create_time
        return pid is not None and created is not None and is_alive(pid, created)

    def signal_supervisor(self, sig: int) -> bool:
        """Send ``sig`` to the supervisor; False if it is not running."""
        pid, created = self.supervisor_pid, self.supervisor_create_time
        return pid is not None and created is not None and signal_process(pid, created, sig)

    def group_alive(self) -> bool:
        """Whether anything of vLLM's process group still runs, and the group is still ours."""
        pgid, created = self.pgid, self.pid_create_time
        return pgid is not None and created is not None and group_alive(pgid, created)

    def stop_group(self, grace: float) -> None:
        """Stop vLLM's process group (SIGTERM, SIGKILL after ``grace`` s) if it is still ours."""
        if self.pgid is not None and self.pid_create_time is not None:
            stop_group(self.pgid, grace, leader_create_time=self.pid_create_time)

    def processes_alive(self) -> bool:
        """Whether the supervisor or anything of vLLM's group still runs."""
        return self.supervisor_alive() or self.group_alive()

    def to_json(self) -> str:
        """The entry file's text."""
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> ServiceEntry:
        """Read an entry file's text."""
        data = json.loads(text)
        data["holders"] = [Holder(**h) for h in data.get("holders", [])]
        return cls(**data)


class Registry:
    """The registry under one ``run`` folder."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.services_dir = run_dir / "services"
        self._lock = FileLock(str(run_dir / "registry.lock"), timeout=60)

    @contextlib.contextmanager
    def locked(self) -> Iterator[Registry]:
        """Hold the registry lock (re-entrant within a process)."""
        self.services_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        with self._lock:
            yield self

    def _path(self, name: str) -> Path:
        return self.services_dir / f"{name}.json"

    def read(self, name: str) -> ServiceEntry | None:
        """The entry of ``name`` as stored, or None (unreadable files count as absent)."""
        try:
            return ServiceEntry.from_json(self._path(name).read_text(encoding="utf-8"))
        except (OSError, ValueError, TypeError, KeyError):
            return None

    def write(self, entry: ServiceEntry) -> None:
        """Store ``entry`` atomically, readable by its owner only."""
        write_private_text(self._path(entry.name), entry.to_json())

    def remove(self, name: str) -> None:
        """Forget ``name``."""
        with contextlib.suppress(FileNotFoundError):
            self._path(name).unlink()

    def live_entries(self) -> list[ServiceEntry]:
        """:meth:`entries`, read under the registry lock."""
        with self.locked():
            return self.entries()

    def entries(self) -> list[ServiceEntry]:
        """Every live entry: its supervisor runs, or its vLLM does for a live holder (a session
        joining it adopts it). Other entries are removed on the way; the group of one whose
        supervisor is gone and that nobody holds is stopped first, so nothing is left."""
        live: list[ServiceEntry] = []
        if not self.services_dir.is_dir():
            return live
        for path in sorted(self.services_dir.glob("*.json")):
            entry = self.read(path.stem)
            if entry is None:
                continue
            if entry.supervisor_alive() or (entry.live_holders() and entry.group_alive()):
                live.append(entry)
            else:
                entry.stop_group(ORPHAN_GRACE_SECONDS)
                self.remove(entry.name)
        return live
