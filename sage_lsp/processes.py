"""Processes: is one alive (a zombie is not), signalling one, and stopping a whole process group.

Pids are reused: a pid (or process group id) recorded before a crash or a reboot may belong to
another program now. Every pid sage-lsp may signal is recorded with its create time, and every
signal goes through :func:`signal_process` or :func:`stop_group`, which check it first: a
mismatch means the process we meant is gone, and nothing is signalled.

A create time is counted from the boot (Linux: ``/proc/PID/stat``), not from the epoch: the
epoch's version moves whenever the clock is set (NTP, a virtual machine resumed), and a process
would then seem to be another one.
"""

from __future__ import annotations

import os
import signal
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import psutil

CREATE_TIME_TOLERANCE = 0.01
"""Seconds two readings of one process's create time may differ by."""
EPOCH_TIMES = 1e8
"""A recorded create time above this is counted from the epoch (an older sage-lsp wrote it)."""


def is_alive(pid: int, create_time: float | None = None) -> bool:
    """Whether ``pid`` runs: it exists, is not a zombie and (if given) started at
    ``create_time`` (so that a reused pid does not count)."""
    import psutil  # not at start-up: the language server must answer ``initialize`` quickly

    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        return create_time is None or _started_at(process, create_time)
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True


def create_time(pid: int) -> float:
    """When ``pid`` started: seconds since the boot where ``/proc`` tells it (unmoved by
    clock changes), else since the epoch. Raises ``psutil.NoSuchProcess`` for no such pid."""
    import psutil

    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            fields = stat.read().rpartition(b")")[2].split()
    except FileNotFoundError:
        if os.path.isdir("/proc/self"):
            raise psutil.NoSuchProcess(pid) from None
        return float(psutil.Process(pid).create_time())  # no /proc: as the epoch counts it
    return int(fields[19]) / os.sysconf("SC_CLK_TCK")  # starttime, the 22nd field


def _started_at(process: psutil.Process, recorded: float) -> bool:
    """Whether ``process`` started at ``recorded`` (a create time as :func:`create_time` gives
    it, or from the epoch as an older sage-lsp recorded it)."""
    now = process.create_time() if recorded > EPOCH_TIMES else create_time(process.pid)
    return abs(now - recorded) < CREATE_TIME_TOLERANCE


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
        return _started_at(psutil.Process(pgid), leader_create_time)
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
