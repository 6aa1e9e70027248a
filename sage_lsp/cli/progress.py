"""Progress of a model service's preparation in the terminal (on stderr)."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from sage_lsp.services.manager import Progress

QUIET_SECONDS = 5.0
"""Without a terminal, a line at most this often (and at each change of phase)."""


class ProgressPrinter:
    """Shows elapsed time, phase and the last log line: one updating line on a terminal,
    occasional lines otherwise."""

    def __init__(self, out: TextIO | None = None) -> None:
        self.out = out or sys.stderr
        self.tty = self.out.isatty()
        self._phase = ""
        self._last = 0.0

    def __call__(self, progress: Progress) -> None:
        """Show one progress report."""
        line = f"[{progress.phase} {progress.elapsed:4.0f} s] {progress.detail}"
        if self.tty:
            width = 120
            self.out.write("\r" + line[:width].ljust(width))
            if progress.phase == "ready":
                self.out.write("\n")
        elif progress.phase != self._phase or time.monotonic() - self._last >= QUIET_SECONDS:
            self.out.write(line + "\n")
            self._last = time.monotonic()
        self._phase = progress.phase
        self.out.flush()
