"""The service registry: ``$SAGE_HOME/run/services/<name>.json``, one file per model service.

Every change happens under one file lock (``run/registry.lock``), so two sessions starting the
same model at once see each other and cause one launch. Entry files are written atomically with
mode 0600, since they hold the service's API key. Entries whose processes are gone are removed
when they are read.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from filelock import FileLock

from sage_lsp.processes import group_alive, is_alive

ServiceState = Literal["starting", "ready", "failed", "stopping"]


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
    api_key: str
    """Random per service; required by its ``/v1`` endpoints."""
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
    """vLLM's process group (its own session): stopped as a whole."""
    supervisor_pid: int | None = None
    """The supervisor process that launched vLLM and stops it."""
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

    def live_holders(self) -> list[Holder]:
        """Holders whose processes still run."""
        return [h for h in self.holders if h.alive()]

    def supervisor_alive(self) -> bool:
        """Whether the service's supervisor process still runs."""
        return self.supervisor_pid is not None and is_alive(self.supervisor_pid)

    def signal_supervisor(self, sig: int) -> bool:
        """Send ``sig`` to the supervisor; False if it is not running."""
        pid = self.supervisor_pid
        if pid is None or not is_alive(pid):
            return False
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return False
        return True

    def processes_alive(self) -> bool:
        """Whether the supervisor or anything of vLLM's group still runs."""
        return self.supervisor_alive() or (self.pgid is not None and group_alive(self.pgid))

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
        self.services_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        final = self._path(entry.name)
        temporary = final.with_suffix(f".tmp-{os.getpid()}")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(entry.to_json())
        os.replace(temporary, final)

    def remove(self, name: str) -> None:
        """Forget ``name``."""
        with contextlib.suppress(FileNotFoundError):
            self._path(name).unlink()

    def live_entries(self) -> list[ServiceEntry]:
        """:meth:`entries`, read under the registry lock."""
        with self.locked():
            return self.entries()

    def entries(self) -> list[ServiceEntry]:
        """Every live entry; entries whose processes are all gone are removed on the way."""
        live: list[ServiceEntry] = []
        if not self.services_dir.is_dir():
            return live
        for path in sorted(self.services_dir.glob("*.json")):
            entry = self.read(path.stem)
            if entry is None:
                continue
            if entry.processes_alive():
                live.append(entry)
            elif time.time() - entry.started_at > 5 or entry.state == "failed":
                # the grace period covers a launch that has not started its supervisor yet
                self.remove(entry.name)
        return live
