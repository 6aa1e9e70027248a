"""Processes: is one alive (a zombie is not), signalling one, and stopping a whole process group.

Pids are reused: a pid (or process group id) recorded before a crash or a reboot may belong to
another program now. Every pid sage-lsp may signal is recorded with its create time, and every
signal goes through :func:`signal_process` or :func:`stop_group`, which check it first: a
mismatch means the process we meant is gone, and nothing is signalled.
"""

from __future__ import annotations

import os
import signal
import time

CREATE_TIME_TOLERANCE = 0.01
"""Seconds two readings of one process's create time may differ by."""


def is_alive(pid: int, create_time: float | None = None) -> bool:
    """Whether ``pid`` runs: it exists, is not a zombie and (if given) started at
    ``create_time`` (so that a reused pid does not count)."""
    import psutil  # not at start-up: the language server must answer ``initialize`` quickly

    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        return create_time is None or _same_time(process.create_time(), create_time)
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True


def create_time(pid: int) -> float:
    """When ``pid`` started (seconds since the epoch)."""
    import psutil

    return float(psutil.Process(pid).create_time())


def _same_time(a: float, b: float) -> bool:
    return abs(a - b) < CREATE_TIME_TOLERANCE


def is_own_group(pgid: int, leader_create_time: float) -> bool:
    """Whether process group ``pgid`` is still the one whose leader started at
    ``leader_create_time``.

    Linux does not give a new process a pid that is still some group's id, so while any member
    of our group lives the id is ours; once the whole group is gone, a new process may get the
    pid and lead a group of its own. So: the group is ours unless a process with the leader's
    pid exists and started at another time.
    """
    import psutil

    try:
        return _same_time(psutil.Process(pgid).create_time(), leader_create_time)
    except psutil.NoSuchProcess:
        return True
    except psutil.AccessDenied:
        return False


def group_alive(pgid: int, leader_create_time: float | None = None) -> bool:
    """Whether any live (non-zombie) process is left in process group ``pgid`` (with
    ``leader_create_time``: and the group is still ours, see :func:`is_own_group`)."""
    import psutil

    if leader_create_time is not None and not is_own_group(pgid, leader_create_time):
        return False
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


def signal_process(pid: int, created: float, sig: int) -> bool:
    """Send ``sig`` to ``pid`` if it is still the process that started at ``created``; False
    when it is gone (or belongs to someone else: a PermissionError means a stale pid)."""
    if not is_alive(pid, created):
        return False
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _signal_group(pgid: int, leader_create_time: float | None, sig: int) -> bool:
    if leader_create_time is not None and not is_own_group(pgid, leader_create_time):
        return False
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def stop_group(
    pgid: int, grace: float = 10.0, *, poll: float = 0.1, leader_create_time: float | None = None
) -> bool:
    """SIGTERM the process group, then SIGKILL it if anything is left after ``grace`` seconds.

    With ``leader_create_time``, the group is signalled only while it is still ours (see
    :func:`is_own_group`); a group that is not (or whose processes we may not signal) counts as
    gone. Returns True when the group was still there and had to be killed.
    """
    if not _signal_group(pgid, leader_create_time, signal.SIGTERM):
        return False
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not group_alive(pgid, leader_create_time):
            return False
        time.sleep(poll)
    return _signal_group(pgid, leader_create_time, signal.SIGKILL)
