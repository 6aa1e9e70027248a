"""Relay an answer's deltas to the editor as ``sage/chatChunk`` notifications.

Each delta goes out at once while the client keeps up. When the client falls behind (the
output backlog passes a high-water mark), deltas are joined into one pending chunk instead of
queueing a notification each, and that chunk is sent as soon as the backlog drains: memory stays
bounded and no text is lost or reordered.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from sage_lsp import protocol

HIGH_WATER = 64 * 1024
"""Output backlog (bytes) above which deltas are coalesced."""
RETRY_SECONDS = 0.005
"""How soon a pending chunk is tried again while the client is behind."""


class ChunkRelay:
    """Sends one turn's deltas in order, coalescing them while the client is behind."""

    def __init__(
        self,
        notify: Callable[[str, object], None],
        backlog: Callable[[], int],
        chat_id: str,
        turn: int,
    ) -> None:
        self._notify = notify
        self._backlog = backlog
        self.chat_id = chat_id
        self.turn = turn
        self.sent = 0
        """Chunks sent so far (the next chunk's ``index``)."""
        self._pending: list[str] = []
        self._timer: asyncio.TimerHandle | None = None

    def push(self, delta: str) -> None:
        """Send ``delta`` now, or keep it with the pending text if the client is behind."""
        self._pending.append(delta)
        if self._backlog() <= HIGH_WATER:
            self.flush()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(RETRY_SECONDS, self._retry)

    def _retry(self) -> None:
        self._timer = None
        if not self._pending:
            return
        if self._backlog() <= HIGH_WATER:
            self.flush()
        else:
            self._timer = asyncio.get_running_loop().call_later(RETRY_SECONDS, self._retry)

    def flush(self) -> None:
        """Send whatever is pending as one chunk, whatever the backlog."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._pending:
            return
        delta = "".join(self._pending)
        self._pending.clear()
        chunk = protocol.ChatChunk(self.chat_id, self.turn, self.sent, delta)
        self._notify(protocol.CHAT_CHUNK, protocol.to_wire(chunk))
        self.sent += 1
