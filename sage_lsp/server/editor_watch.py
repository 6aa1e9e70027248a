"""Notice when the editor process (``processId`` from ``initialize``) goes away."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable

from sage_lsp.processes import is_alive

log = logging.getLogger(__name__)

POLL_SECONDS = 0.5
"""Polling interval where a pidfd is not available."""


def is_gone(pid: int) -> bool:
    """True if ``pid`` does not exist or is a zombie (dead, not yet reaped by its parent)."""
    return not is_alive(pid)


class ProcessWatch:
    """Calls ``on_gone`` once when ``pid`` ends; set up at once, so no exit is missed.

    On Linux a pidfd wakes the event loop the moment the process ends (a zombie counts as
    ended); elsewhere the process is polled. A process that is already gone when the watch
    starts is not watched: the client sent a pid from another namespace, or a stale one.
    """

    def __init__(self, pid: int, on_gone: Callable[[], None]) -> None:
        self.pid = pid
        self._on_gone = on_gone
        self._loop = asyncio.get_running_loop()
        self._fd: int | None = None
        self._poller: asyncio.Task[None] | None = None
        if is_gone(pid):
            log.warning("editor process %s is not running; not watching it", pid)
            return
        try:
            self._fd = os.pidfd_open(pid)
        except (AttributeError, OSError):
            self._poller = self._loop.create_task(self._poll())
        else:
            self._loop.add_reader(self._fd, self._ended)

    async def _poll(self) -> None:
        while not is_gone(self.pid):
            await asyncio.sleep(POLL_SECONDS)
        self._ended()

    def _ended(self) -> None:
        self.cancel()
        log.info("editor process %s has ended", self.pid)
        self._on_gone()

    def cancel(self) -> None:
        """Stop watching."""
        if self._fd is not None:
            self._loop.remove_reader(self._fd)
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None
        if self._poller is not None and self._poller is not asyncio.current_task():
            self._poller.cancel()
