"""Processes: is one alive (a zombie is not), and stopping a whole process group."""

from __future__ import annotations

import os
import signal
import time


def is_alive(pid: int, create_time: float | None = None) -> bool:
    """Whether ``pid`` runs: it exists, is not a zombie and (if given) started at
    ``create_time`` (so that a reused pid does not count)."""
    import psutil  # not at start-up: the language server must answer ``initialize`` quickly

    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        return create_time is None or abs(process.create_time() - create_time) < 0.01
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True


def create_time(pid: int) -> float:
    """When ``pid`` started (seconds since the epoch)."""
    import psutil

    return float(psutil.Process(pid).create_time())


def group_alive(pgid: int) -> bool:
    """Whether any live (non-zombie) process is left in process group ``pgid``."""
    import psutil

    for process in psutil.process_iter(["pid", "status"]):
        try:
            if (
                os.getpgid(process.info["pid"]) == pgid
                and process.info["status"] != psutil.STATUS_ZOMBIE
            ):
                return True
        except (ProcessLookupError, PermissionError):
            continue
    return False


def stop_group(pgid: int, grace: float = 10.0, poll: float = 0.1) -> bool:
    """SIGTERM the process group, then SIGKILL it if anything is left after ``grace`` seconds.

    Returns True when the group was still there and had to be killed.
    """
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not group_alive(pgid):
            return False
        time.sleep(poll)
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        return False
    return True
