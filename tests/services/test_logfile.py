"""Reading service and merge logs back: one run's part, the tail, the key masked (fast tier)."""

from __future__ import annotations

import signal
from pathlib import Path

from sage_lsp.services import logfile


def test_read_lines_from_an_offset_gives_one_runs_part(tmp_path: Path) -> None:
    log = tmp_path / "merge.log"
    log.write_text("an earlier run\n", encoding="utf-8")
    offset = log.stat().st_size
    with log.open("a", encoding="utf-8") as handle:
        handle.write("=== merge m\nmerge failed: boom\n")
    assert logfile.read_lines(log, offset=offset) == ["=== merge m", "merge failed: boom"]
    assert logfile.read_lines(log)[0] == "an earlier run"


def test_tail_is_the_last_lines_with_the_key_masked(tmp_path: Path) -> None:
    log = tmp_path / "service.log"
    log.write_text("".join(f"line {n} key-123\n" for n in range(100)), encoding="utf-8")
    assert logfile.tail(log, secret="key-123") == [
        f"line {n} ***" for n in range(100 - logfile.LOG_TAIL_LINES, 100)
    ]
    assert logfile.tail(log, 2) == ["line 98 key-123", "line 99 key-123"]


def test_only_the_end_of_a_large_log_is_read(tmp_path: Path) -> None:
    log = tmp_path / "service.log"
    log.write_bytes(b"first\n" + b"x" * (2 * logfile.TAIL_BYTES) + b"\nlast\n")
    lines = logfile.read_lines(log)
    assert "first" not in lines and lines[-1] == "last"
    assert sum(len(line) + 1 for line in lines) <= logfile.TAIL_BYTES


def test_a_log_that_cannot_be_read_has_no_lines(tmp_path: Path) -> None:
    assert logfile.read_lines(tmp_path / "missing.log") == []
    assert logfile.tail(tmp_path / "missing.log") == []


def test_failure_details_are_the_data_of_error_32003(tmp_path: Path) -> None:
    log = tmp_path / "merge.log"
    assert logfile.failure_details(log, ("a", "b"), -signal.SIGKILL) == {
        "logPath": str(log),
        "logTail": ["a", "b"],
        "exitCode": -signal.SIGKILL,
    }
