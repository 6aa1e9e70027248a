"""Service logs: private (0600), size-capped, and never showing the service's API key.

vLLM and its supervisor write the log through file descriptors opened with ``O_APPEND``, so the
log can be capped while they run by copying it to ``.1`` and truncating it (each write lands at
the end of the file, wherever that is now). Standard library only: the supervisor imports it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

LOG_MAX_BYTES = 10_000_000
"""A log over this size is moved to ``<log>.1`` (older ones to ``.2``, ...) and started anew."""
LOG_BACKUPS = 2
"""How many moved-away logs are kept."""
MASK = "***"
"""What a secret is replaced with in log lines and tails."""
LOG_TAIL_LINES = 40
"""How many of its last log lines a failed service or merge reports (``logTail``)."""
TAIL_BYTES = 64 * 1024
"""How much of a log's end :func:`read_lines` reads when not told where to start."""


def open_log(path: Path) -> BinaryIO:
    """Open ``path`` for appending, readable by its owner only (also if it existed before)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.fchmod(fd, 0o600)
    return os.fdopen(fd, "ab")


def backup(path: Path, number: int) -> Path:
    """The ``number``-th moved-away copy of ``path`` (``name.log.1`` is the newest)."""
    return path.with_name(f"{path.name}.{number}")


def cap(path: Path, max_bytes: int = LOG_MAX_BYTES) -> bool:
    """If ``path`` is over ``max_bytes``, copy it to ``.1`` (shifting older copies) and truncate
    it; safe while writers append to it. Returns whether it did."""
    try:
        if path.stat().st_size <= max_bytes:
            return False
    except FileNotFoundError:
        return False
    for number in range(LOG_BACKUPS, 1, -1):
        with contextlib.suppress(FileNotFoundError):
            os.replace(backup(path, number - 1), backup(path, number))
    fd = os.open(backup(path, 1), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with path.open("rb") as source, os.fdopen(fd, "wb") as copy:
        shutil.copyfileobj(source, copy)
    os.truncate(path, 0)
    return True


def mask(text: str, secret: str | None) -> str:
    """``text`` with every occurrence of ``secret`` replaced by ``***``."""
    return text.replace(secret, MASK) if secret else text


def read_lines(path: Path, *, offset: int | None = None, secret: str | None = None) -> list[str]:
    """The lines written to ``path`` from byte ``offset`` on (one run's part), or without it
    those of its last :data:`TAIL_BYTES`, ``secret`` masked; none when it cannot be read."""
    try:
        with path.open("rb") as log:
            if offset is None:
                log.seek(0, os.SEEK_END)
                offset = max(0, log.tell() - TAIL_BYTES)
            log.seek(offset)
            text = log.read().decode("utf-8", "replace")
    except OSError:
        return []
    return mask(text, secret).splitlines()


def tail(path: Path, lines: int = LOG_TAIL_LINES, *, secret: str | None = None) -> list[str]:
    """The last ``lines`` lines of ``path``, ``secret`` (the service's key) masked."""
    return read_lines(path, secret=secret)[-lines:]


def failure_details(path: Path, tail: Sequence[str], exit_code: int | None) -> dict[str, object]:
    """What editors are told of a failed service or merge (the data of JSON-RPC error -32003):
    its log (``logPath``), the last lines of it (``logTail``) and its exit status
    (``exitCode``; negative: killed by that signal; ``None``: unknown or never ran)."""
    return {"logPath": str(path), "logTail": list(tail), "exitCode": exit_code}
