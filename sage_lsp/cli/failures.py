"""How the ``sage`` command line ends on a failure: one line on stderr and an exit code.

Every command runs inside :class:`SageGroup`, which turns the error family
(:class:`~sage_lsp.core.errors.SageError`) and Ctrl-C into that line and code, in this one
place.
"""

from __future__ import annotations

import sys
import traceback
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from sage_lsp.core.errors import ErrorKind, SageError

EXIT_FAILURE = 1
"""The backend or the model failed."""
EXIT_USAGE = 2
"""A setting or an argument is wrong."""
EXIT_INTERRUPTED = 130
"""The user pressed Ctrl-C."""

_DEBUG = "sage.debug"
"""Where ``--debug`` is noted in the click context's ``meta`` (shared by every sub-context)."""


def _note_debug(ctx: typer.Context, value: bool) -> bool:
    if value:
        ctx.meta[_DEBUG] = True
    return value


Debug = Annotated[
    bool, typer.Option("--debug", help="Show tracebacks of failures.", callback=_note_debug)
]
"""The ``--debug`` option of a command: failures print their traceback too."""


def fail(message: str, code: int, debug: bool) -> typer.Exit:
    """Print ``error: message`` on stderr (and the traceback with --debug); the Exit to raise."""
    if debug:
        traceback.print_exc()
    print(f"error: {message}", file=sys.stderr)
    return typer.Exit(code)


def exit_code(exc: SageError) -> int:
    """2 when something the user gave is wrong (a setting, an argument, a name, an index, the
    backend's configuration), 1 for every other failure."""
    return EXIT_USAGE if exc.kind in (ErrorKind.CONFIG, ErrorKind.INVALID) else EXIT_FAILURE


class SageGroup(TyperGroup):
    """The root command group: ends a failing command with its line and exit code."""

    def invoke(self, ctx: typer.Context) -> Any:  # type: ignore[override]
        """Run the command; a :class:`SageError` or Ctrl-C becomes ``error: ...`` and a code."""
        try:
            return super().invoke(ctx)
        except SageError as exc:
            raise fail(str(exc), exit_code(exc), ctx.meta.get(_DEBUG, False)) from None
        except KeyboardInterrupt:  # a merge child is stopped and its temporary folder removed
            raise fail("stopped", EXIT_INTERRUPTED, ctx.meta.get(_DEBUG, False)) from None
