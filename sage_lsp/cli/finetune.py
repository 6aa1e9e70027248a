"""``sage finetune``: chat with, merge and list finetuned models."""

from __future__ import annotations

from typing import Annotated

import typer

from sage_lsp.cli.failures import Debug
from sage_lsp.cli.table import print_table
from sage_lsp.config import Settings, load_settings

# Each command imports what it runs (chat, the manager) when it runs: `sage lsp` needs none of it.

finetune_app = typer.Typer(help="Finetuned models: chat, merge, list.", no_args_is_help=True)


@finetune_app.command("chat")
def finetune_chat(
    name: Annotated[str, typer.Argument(help="The finetuned model.")] = Settings.finetune_model,
    port: Annotated[int | None, typer.Option(help="Port for its vLLM server.")] = None,
    debug: Debug = False,
) -> None:
    """Chat with a finetuned model: ``sage chat --backend finetune --finetune-model NAME``."""
    from sage_lsp.cli.runner import run_chat

    overrides = {"backend": "finetune", "finetune_model": name, "finetune_port": port}
    run_chat(overrides, None, True, debug)


@finetune_app.command("merge")
def finetune_merge(
    name: Annotated[str, typer.Argument(help="The finetuned model.")],
    force: Annotated[bool, typer.Option(help="Merge even if the merge is up to date.")] = False,
    debug: Debug = False,
) -> None:
    """Merge the model's LoRA adapter into its base (lora_weights/, else the last checkpoint)."""
    from sage_lsp.cli.progress import ProgressPrinter
    from sage_lsp.services.manager import ServiceManager

    manager = ServiceManager(load_settings(), ProgressPrinter())
    model = manager.store.get(name)
    source = model.adapter_source()
    if source is None:
        print(f"{name} has no adapter to merge; {model.merged_dir} is used as it is")
    elif manager.merge_if_needed(model, force=force):
        print(f"merged {source} into {model.merged_dir}")
    else:
        print(f"{name} is merged and up to date (from {source})")


@finetune_app.command("list")
def finetune_list() -> None:
    """The finetuned models under $SAGE_HOME/finetune_output, with base and state."""
    from sage_lsp.services.store import ModelStore

    store = ModelStore(load_settings().sage_home)
    models = store.list()
    if not models:
        print(f"no finetuned models in {store.root}")
        return
    rows = [(m.name, m.base_model or "?", m.state, str(m.path)) for m in models]
    print_table(("NAME", "BASE", "STATE", "PATH"), rows)
