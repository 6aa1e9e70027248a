"""The gateway's recent requests, for the dashboard: a ring of the last ones (model, status,
time to first token, tokens, tokens/s) and per-model series of the last minutes."""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import asdict, dataclass
from typing import Any

RING_SIZE = 200
"""How many requests the ring keeps."""
STEP_SECONDS = 5
"""The width of one point of the series."""
SERIES_POINTS = 60
"""How many points a series has: the last 5 minutes."""


@dataclass(frozen=True)
class RequestRecord:
    """One finished request, as the dashboard lists it."""

    model: str
    status: int
    at: float
    """When it ended (seconds since the epoch)."""
    duration: float
    """Seconds from its arrival to its end."""
    ttft: float | None
    """Seconds to its first streamed chunk (or to the whole answer); None without an answer."""
    tokens: int
    tokens_per_second: float | None
    """Tokens over the time from the first token to the end (for an answer that came whole,
    over the whole request); None without tokens."""


def throughput(tokens: int, duration: float, ttft: float | None) -> float | None:
    """Tokens per second of an answer (see :attr:`RequestRecord.tokens_per_second`)."""
    if not tokens or ttft is None:
        return None
    generating = duration - ttft
    seconds = generating if generating > 0.001 else duration
    return tokens / seconds if seconds > 0 else None


class RecentRequests:
    """The last :data:`RING_SIZE` requests, and per model the requests and tokens of each
    :data:`STEP_SECONDS` of the last :data:`SERIES_POINTS` steps. Requests end in the event
    loop while the dashboard reads from a worker thread: a lock keeps them apart."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ring: deque[RequestRecord] = deque(maxlen=RING_SIZE)
        self._steps: dict[str, dict[int, list[int]]] = {}
        """model -> step number (seconds since the epoch // STEP_SECONDS) -> [requests, tokens]"""

    def add(self, record: RequestRecord) -> None:
        """Keep ``record`` and count it in its model's step (the one it ended in)."""
        step = int(record.at // STEP_SECONDS)
        with self._lock:
            self._ring.append(record)
            counts = self._steps.setdefault(record.model, {}).setdefault(step, [0, 0])
            counts[0] += 1
            counts[1] += record.tokens
            self._forget(step - SERIES_POINTS)

    def _forget(self, before: int) -> None:
        """Drop the steps before step ``before``, and the models left with none."""
        for model in list(self._steps):
            steps = self._steps[model]
            for step in [s for s in steps if s < before]:
                del steps[step]
            if not steps:
                del self._steps[model]

    def latest(self) -> list[dict[str, Any]]:
        """The kept requests, newest first, as JSON objects."""
        with self._lock:
            records = list(self._ring)
        return [asdict(record) for record in reversed(records)]

    def series(self, now: float) -> dict[str, Any]:
        """Per model, requests/s and tokens/s of each step of the last minutes up to ``now``
        (oldest first; ``end``: the end of the last step, seconds since the epoch)."""
        last = int(now // STEP_SECONDS)
        first = last - SERIES_POINTS + 1
        with self._lock:
            kept = {
                model: [list(steps.get(step, [0, 0])) for step in range(first, last + 1)]
                for model, steps in self._steps.items()
            }
        models: dict[str, dict[str, list[float]]] = {}
        for model, counts in sorted(kept.items()):
            if not any(requests for requests, _ in counts):
                continue
            models[model] = {
                "requests": [requests / STEP_SECONDS for requests, _ in counts],
                "tokens": [tokens / STEP_SECONDS for _, tokens in counts],
            }
        end = (last + 1) * STEP_SECONDS
        return {"step": STEP_SECONDS, "points": SERIES_POINTS, "end": end, "models": models}
