"""``sage services``: the model services sage-lsp runs (list, stop)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Annotated

import typer

from sage_lsp.cli.failures import EXIT_FAILURE, EXIT_USAGE, fail
from sage_lsp.cli.table import print_table
from sage_lsp.config import load_settings

if TYPE_CHECKING:
    from sage_lsp.services.manager import ServiceManager

services_app = typer.Typer(help="Model services started by sage-lsp: list, stop.")


def _manager() -> ServiceManager:
    from sage_lsp.services.manager import ServiceManager  # on use: `sage lsp` starts without it

    return ServiceManager(load_settings())


@services_app.callback(invoke_without_command=True)
def services(ctx: typer.Context) -> None:
    """List the services (the same as ``sage services list``)."""
    if ctx.invoked_subcommand is None:
        services_list()


@services_app.command("list")
def services_list() -> None:
    """Every live service: name (a LoRA service's adapters in parentheses), port, state, holders,
    pid, age, log."""
    entries = _manager().services()
    if not entries:
        print("no services running")
        return
    header = ("NAME", "PORT", "STATE", "HOLDERS", "PID", "AGE", "LOG")
    rows = [
        (
            e.name + (f" ({', '.join(sorted(e.adapters))})" if e.adapters else ""),
            str(e.port),
            e.state,
            str(len(e.live_holders())),
            str(e.pid or "-"),
            f"{time.time() - e.started_at:.0f}s",
            e.log_path,
        )
        for e in entries
    ]
    print_table(header, rows)


@services_app.command("stop")
def services_stop(
    name: Annotated[str | None, typer.Argument(help="The service to stop.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Stop every service.")] = False,
) -> None:
    """Stop a service (or all of them) now, whoever holds it."""
    manager = _manager()
    if all_ == (name is not None):
        raise fail("give a service NAME or --all", EXIT_USAGE, False)
    names = [e.name for e in manager.services()] if all_ else [name or ""]
    for target in names:
        if manager.stop(target):
            print(f"stopped {target}")
        else:
            raise fail(
                f"no service named {target!r} (see `sage services list`)", EXIT_FAILURE, False
            )
    if all_ and not names:
        print("no services running")
