"""The first thing ``sage-lsp``, ``python -m sage_lsp`` and ``sage lsp`` run: the server's
modules are imported with the cyclic garbage collector paused.

Importing lsprotocol builds some 550 classes; the collections that the allocations trigger on
the way cost 65-100 ms of CPU before the ``initialize`` answer (measured by bench/startup.py, see
docs/benchmarks.md). Nothing imported is garbage, so the collector is paused while importing,
and what the imports made is frozen (:func:`gc.freeze`): later collections skip it.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector for the block, then freeze what it made and resume
    (it stays off if it was off)."""
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if was_on:
            gc.enable()


def serve(argv: list[str] | None = None) -> None:
    """Import the server with the collector paused, then run it (:mod:`sage_lsp.server.main`)."""
    with collector_paused():
        from sage_lsp.server.main import main

    main(argv)
