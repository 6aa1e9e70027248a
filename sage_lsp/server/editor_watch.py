"""Notice when the editor process (``processId`` from ``initialize``) goes away."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable

import psutil

log = logging.getLogger(__name__)

POLL_SECONDS = 0.5
"""Polling interval where a pidfd is not available."""


def is_gone(pid: int) -> bool:
    """True if ``pid`` does not exist or is a zombie (dead, not yet reaped by its parent)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True
    except psutil.AccessDenied:
        return False


async def watch_process(pid: int, on_gone: Callable[[], None]) -> None:
    """Call ``on_gone`` once ``pid`` has ended.

    On Linux a pidfd wakes the event loop the moment the process ends (a zombie counts as
    ended); elsewhere the process is polled. A process that is not there at the start is not
    watched: the client sent a pid from another namespace, or none of its own.
    """
    if is_gone(pid):
        log.warning("editor process %s is not running; not watching it", pid)
        return
    loop = asyncio.get_running_loop()
    try:
        fd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        while not is_gone(pid):
            await asyncio.sleep(POLL_SECONDS)
    else:
        ended = asyncio.Event()
        loop.add_reader(fd, ended.set)
        try:
            await ended.wait()
        finally:
            loop.remove_reader(fd)
            os.close(fd)
    log.info("editor process %s has ended", pid)
    on_gone()
