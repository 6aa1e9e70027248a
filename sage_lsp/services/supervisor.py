"""The supervisor: one small process per service that launches vLLM, watches it and stops it.

Started by the first session that needs the service (``python -m sage_lsp.services.supervisor
RUN_DIR NAME``), in a session of its own, so that it outlives any holder, also one killed with
SIGKILL. It launches the command of the registry entry in a new process group, marks the entry
``ready`` once ``/health`` answers and ``/v1/models`` lists the served name, and stops the
whole group (SIGTERM, then SIGKILL) once no live holder is left for ``keep_alive_seconds``,
when it is told to stop (SIGTERM), or when the start fails or times out. It then removes the
entry and exits. Standard library, filelock and psutil only: it stays small.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import BinaryIO

from sage_lsp.paths import private_umask
from sage_lsp.processes import stop_group
from sage_lsp.services import probe
from sage_lsp.services.registry import Registry, ServiceEntry

POLL_SECONDS = 0.5
"""How often holders and readiness are checked."""
READY_GRACE_SECONDS = 10.0
"""SIGTERM to SIGKILL for a ready server (it exits in about 2 s)."""
LOADING_GRACE_SECONDS = 3.0
"""SIGTERM to SIGKILL for a server still loading, which ignores SIGTERM (see docs/services.md)."""


class Supervisor:
    """Runs one service from launch to stop."""

    def __init__(self, run_dir: Path, name: str) -> None:
        self.registry = Registry(run_dir)
        self.name = name
        self.stop_requested = False
        self.log: BinaryIO | None = None
        self.process: subprocess.Popen[bytes] | None = None

    def say(self, message: str) -> None:
        """Write one line of the supervisor's own into the service log."""
        if self.log is not None:
            stamp = time.strftime("%H:%M:%S")
            self.log.write(f"[sage supervisor {stamp}] {message}\n".encode())
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

    def launch(self, entry: ServiceEntry) -> None:
        """Start vLLM in its own process group, output to the log."""
        assert self.log is not None
        shown = [("***" if arg == entry.api_key else arg) for arg in entry.command]
        self.say(f"launching: {shlex.join(shown)}")
        self.process = subprocess.Popen(
            entry.command,
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, **entry.env},
        )
        self.update(pid=self.process.pid, pgid=self.process.pid, supervisor_pid=os.getpid())

    def stop(self, entry: ServiceEntry, reason: str, failed: bool = False) -> None:
        """Stop vLLM's whole group, then remove (or, on failure, mark) the entry."""
        assert self.process is not None
        self.say(f"stopping: {reason}")
        ready = entry.state == "ready"
        self.update(state="stopping", message=reason)
        killed = stop_group(
            self.process.pid, READY_GRACE_SECONDS if ready else LOADING_GRACE_SECONDS
        )
        code = self.process.wait()
        self.say(f"stopped (exit code {code}{', killed' if killed else ''})")
        if failed:
            self.update(state="failed", exit_code=code, message=reason)
        else:
            with self.registry.locked():
                self.registry.remove(self.name)

    def run(self) -> int:
        """Launch and supervise until the service ends; return the supervisor's exit code."""
        entry = self.update()
        if entry is None:
            return 1
        self.log = Path(entry.log_path).open("ab")  # noqa: SIM115 - open for the process' life
        for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
            signal.signal(signum, self._request_stop)
        self.launch(entry)
        assert self.process is not None
        started = time.monotonic()
        idle_since: float | None = None
        while True:
            code = self.process.poll()
            entry = self.update()
            if code is not None:
                reason = f"vLLM exited with code {code}"
                self.say(reason)
                stop_group(self.process.pid, 0.0)
                if entry is not None and entry.state == "starting":
                    self.update(state="failed", exit_code=code, message=reason)  # for waiters
                else:
                    with self.registry.locked():
                        self.registry.remove(self.name)
                return 0
            if entry is None:
                self.say("the registry entry was removed")
                stop_group(self.process.pid, READY_GRACE_SECONDS)
                self.process.wait()
                return 0
            if self.stop_requested:
                self.stop(entry, "asked to stop")
                return 0
            live = entry.live_holders()
            if len(live) != len(entry.holders):
                entry = self.update(holders=live) or entry
            if entry.state == "starting":
                if probe.healthy(entry.port) and probe.serves(
                    entry.port, entry.served_model_name, entry.api_key
                ):
                    self.say(f"ready after {time.monotonic() - started:.1f} s")
                    entry = self.update(state="ready", message=None) or entry
                elif time.monotonic() - started > entry.startup_timeout_seconds:
                    self.stop(
                        entry,
                        f"not ready after {entry.startup_timeout_seconds:g} s "
                        "(vllm.startupTimeoutSeconds)",
                        failed=True,
                    )
                    return 0
            if live:
                idle_since = None
            else:
                idle_since = idle_since or time.monotonic()
                if time.monotonic() - idle_since >= entry.keep_alive_seconds:
                    self.stop(entry, "no session uses it any more")
                    return 0
            time.sleep(POLL_SECONDS)

    def _request_stop(self, signum: int, frame: object) -> None:
        self.stop_requested = True


def main(argv: list[str] | None = None) -> None:
    """``python -m sage_lsp.services.supervisor RUN_DIR NAME``."""
    private_umask()  # what it and vLLM create is the user's only (folders 0700, files 0600)
    args = sys.argv[1:] if argv is None else argv
    sys.exit(Supervisor(Path(args[0]), args[1]).run())


if __name__ == "__main__":
    main()
