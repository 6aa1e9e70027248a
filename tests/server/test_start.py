"""The server's modules are imported with the garbage collector paused, and it resumes after."""

from __future__ import annotations

import gc

from sage_lsp.server.start import collector_paused


def test_the_collector_is_off_while_importing_and_on_again_after() -> None:
    assert gc.isenabled()
    with collector_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.unfreeze()


def test_a_collector_that_was_off_stays_off() -> None:
    gc.disable()
    try:
        with collector_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
        gc.unfreeze()


def test_what_the_imports_made_is_frozen_out_of_later_collections() -> None:
    before = gc.get_freeze_count()
    with collector_paused():
        made = [[n] for n in range(1000)]
    assert gc.get_freeze_count() >= before + len(made)
    gc.unfreeze()
