"""The supervisor: one small process per service that launches vLLM, watches it and stops it.

Started by the first session that needs the service (``python -m sage_lsp.services.supervisor
RUN_DIR NAME``), in a session of its own, so that it outlives any holder, also one killed with
SIGKILL. It launches the command of the registry entry in a new process group, with the API key
in ``VLLM_API_KEY`` (never on the command line), marks the entry ``ready`` once ``/health``
answers and ``/v1/models`` lists the served name, and stops the whole group (SIGTERM, then
SIGKILL) once no live holder is left for ``keep_alive_seconds``, when it is told to stop
(SIGTERM), when the start fails or times out, or when the supervisor itself fails (any
exception). It then removes the entry and exits.

With ``--adopt`` it takes over a running vLLM whose supervisor died: it watches that process by
pid and create time (it is not its child) and does everything else the same way. Standard
library, filelock and psutil only: it stays small.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from sage_lsp.paths import private_umask
from sage_lsp.processes import create_time, is_alive, stop_group
from sage_lsp.services import cpus, logfile, probe
from sage_lsp.services.registry import Registry, ServiceEntry

POLL_SECONDS = 0.5
"""How often holders and readiness are checked."""
READY_GRACE_SECONDS = 10.0
"""SIGTERM to SIGKILL for a ready server (it exits in about 2 s)."""
LOADING_GRACE_SECONDS = 3.0
"""SIGTERM to SIGKILL for a server still loading, which ignores SIGTERM (see docs/services.md)."""
API_KEY_ENV = "VLLM_API_KEY"
"""vLLM's API server reads its key from this variable when ``--api-key`` is not given."""


@dataclass
class Vllm:
    """The vLLM API server a supervisor watches: its child, or (adopted) a process it knows by
    pid and create time only."""

    pid: int
    """The API server, leader of vLLM's process group."""
    created: float
    """Its create time."""
    popen: subprocess.Popen[bytes] | None = None
    """Set when this supervisor launched it."""

    def running(self) -> bool:
        """Whether the API server still runs."""
        if self.popen is not None:
            return self.popen.poll() is None
        return is_alive(self.pid, self.created)

    def exit_code(self) -> int | None:
        """Its exit code once ended (unknown for an adopted process)."""
        return None if self.popen is None else self.popen.returncode

    def stop(self, grace: float) -> bool:
        """Stop the whole group; True if it had to be killed."""
        killed = stop_group(self.pid, grace, leader_create_time=self.created)
        if self.popen is not None:
            self.popen.wait()
        return killed


class Supervisor:
    """Runs one service from launch (or adoption) to stop."""

    def __init__(self, run_dir: Path, name: str, *, adopt: bool = False) -> None:
        self.registry = Registry(run_dir)
        self.name = name
        self.adopting = adopt
        self.stop_requested = False
        self.log: BinaryIO | None = None
        self.log_path: Path | None = None
        self.secret: str | None = None
        self.vllm: Vllm | None = None

    def say(self, message: str) -> None:
        """Write one line of the supervisor's own into the service log (the key masked)."""
        if self.log is not None:
            stamp = time.strftime("%H:%M:%S")
            line = logfile.mask(f"[sage supervisor {stamp}] {message}\n", self.secret)
            self.log.write(line.encode())
            self.log.flush()

    def update(self, **changes: object) -> ServiceEntry | None:
        """Change the entry under the lock; None if it was removed."""
        with self.registry.locked():
            entry = self.registry.read(self.name)
            if entry is not None and changes:
                for key, value in changes.items():
                    setattr(entry, key, value)
                self.registry.write(entry)
            return entry

    def drop_dead_holders(self) -> ServiceEntry | None:
        """Remove holders whose process is gone, reading and writing under one hold of the lock
        (a session joining meanwhile is kept); None if the entry was removed."""
        with self.registry.locked():
            entry = self.registry.read(self.name)
            if entry is None:
                return None
            live = entry.live_holders()
            if len(live) != len(entry.holders):
                entry.holders = live
                self.registry.write(entry)
            return entry

    def launch(self, entry: ServiceEntry) -> Vllm:
        """Start vLLM in its own process group, its key in the environment, output to the log."""
        assert self.log is not None
        self.say(f"launching: {shlex.join(entry.command)}")
        process = subprocess.Popen(
            entry.command,
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, **entry.env, API_KEY_ENV: entry.api_key},
        )
        vllm = Vllm(process.pid, create_time(process.pid), process)
        self.update(pid=vllm.pid, pgid=vllm.pid, pid_create_time=vllm.created)
        return vllm

    def adopt(self, entry: ServiceEntry) -> Vllm | None:
        """Take over the running vLLM of ``entry``; None if nothing of it is left."""
        if entry.pid is None or entry.pid_create_time is None or not entry.group_alive():
            return None
        self.say(f"adopting vLLM (pid {entry.pid}): its supervisor is gone")
        me = os.getpid()
        self.update(supervisor_pid=me, supervisor_create_time=create_time(me))
        return Vllm(entry.pid, entry.pid_create_time)

    def stop(self, entry: ServiceEntry, reason: str, *, failed: bool = False) -> None:
        """Stop vLLM's whole group, then remove (or, on failure, mark) the entry."""
        assert self.vllm is not None
        self.say(f"stopping: {reason}")
        ready = entry.state == "ready"
        self.update(state="stopping", message=reason)
        killed = self.vllm.stop(READY_GRACE_SECONDS if ready else LOADING_GRACE_SECONDS)
        code = self.vllm.exit_code()
        self.say(f"stopped (exit code {code}{', killed' if killed else ''})")
        if failed:
            self.update(state="failed", exit_code=code, message=reason)
        else:
            self.remove()

    def remove(self) -> None:
        """Delete the entry."""
        with self.registry.locked():
            self.registry.remove(self.name)

    def abandon(self, error: BaseException) -> None:
        """The supervisor itself failed: stop vLLM's group and mark the entry failed, as far as
        the fault allows (the next session cleans up the rest)."""
        reason = f"the supervisor failed: {error!r}"
        with contextlib.suppress(Exception):
            self.say(f"{reason}; stopping vLLM")
        if self.vllm is not None:
            self.vllm.stop(LOADING_GRACE_SECONDS)
        with contextlib.suppress(Exception):
            self.update(state="failed", message=reason)

    def run(self) -> int:
        """Launch (or adopt) and supervise until the service ends; return the exit code."""
        entry = self.update()
        if entry is None:
            return 1
        self.secret = entry.api_key
        self.log_path = Path(entry.log_path)
        self.log = logfile.open_log(self.log_path)  # open for the process' life
        for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
            signal.signal(signum, self._request_stop)
        try:
            self.vllm = self.adopt(entry) if self.adopting else self.launch(entry)
            if self.vllm is None:
                self.say("nothing left to adopt")
                self.remove()
                return 1
            self.supervise(entry)
        except BaseException as error:
            self.abandon(error)
            raise
        return 0

    def supervise(self, entry: ServiceEntry) -> None:
        """Watch vLLM, the holders and readiness until the service ends."""
        assert self.vllm is not None and self.log_path is not None
        # the start counts from the launch, also for an adopted service
        started = time.monotonic() - max(0.0, time.time() - entry.started_at)
        idle_since: float | None = None
        while True:
            if not self.vllm.running():
                self.vllm_exited()
                return
            current = self.drop_dead_holders()
            if current is None:
                self.say("the registry entry was removed")
                self.vllm.stop(READY_GRACE_SECONDS)
                return
            entry = current
            if self.stop_requested:
                self.stop(entry, "asked to stop")
                return
            if entry.state == "starting" and not self.check_ready(entry, started):
                return
            if entry.holders:
                idle_since = None
            else:
                idle_since = idle_since or time.monotonic()
                if time.monotonic() - idle_since >= entry.keep_alive_seconds:
                    self.stop(entry, "no session uses it any more")
                    return
            if logfile.cap(self.log_path):
                self.say(f"log capped: the earlier part is in {logfile.backup(self.log_path, 1)}")
            time.sleep(POLL_SECONDS)

    def check_ready(self, entry: ServiceEntry, started: float) -> bool:
        """Mark the entry ready once vLLM serves the model; stop it (and return False) when the
        startup timeout has passed."""
        if probe.healthy(entry.port) and probe.serves(
            entry.port, entry.served_model_name, entry.api_key
        ):
            self.say(f"ready after {time.monotonic() - started:.1f} s")
            self.update(state="ready", message=None)
        elif time.monotonic() - started > entry.startup_timeout_seconds:
            self.stop(
                entry,
                f"not ready after {entry.startup_timeout_seconds:g} s (vllm.startupTimeoutSeconds)",
                failed=True,
            )
            return False
        return True

    def vllm_exited(self) -> None:
        """vLLM ended on its own: kill what is left of its group; fail a start (for the waiting
        sessions), else remove the entry."""
        assert self.vllm is not None
        code = self.vllm.exit_code()
        reason = "vLLM exited" + (f" with code {code}" if code is not None else "")
        self.say(reason)
        self.vllm.stop(0.0)
        entry = self.update()
        if entry is not None and entry.state == "starting":
            self.update(state="failed", exit_code=code, message=reason)
        else:
            self.remove()

    def _request_stop(self, signum: int, frame: object) -> None:
        self.stop_requested = True


def main(argv: list[str] | None = None) -> None:
    """``python -m sage_lsp.services.supervisor RUN_DIR NAME [--adopt]``."""
    private_umask()  # what it and vLLM create is the user's only (folders 0700, files 0600)
    cpus.restore()  # vLLM gets every core the session had, not only those it kept to
    args = sys.argv[1:] if argv is None else argv
    sys.exit(Supervisor(Path(args[0]), args[1], adopt="--adopt" in args[2:]).run())


if __name__ == "__main__":
    main()
