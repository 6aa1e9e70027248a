"""``sage pipeline build``: a SAGE pipeline plan from a description, with the chat backend."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from sage_lsp.cli.failures import EXIT_FAILURE, Debug, fail
from sage_lsp.config import BACKENDS, load_settings
from sage_lsp.paths import users_umask

if TYPE_CHECKING:
    from sage_lsp.pipeline.builder import BuildResult

pipeline_app = typer.Typer(help="SAGE pipelines: build a plan from a description.",
                           no_args_is_help=True)  # fmt: skip


@pipeline_app.command("build")
def build(
    goal: Annotated[str, typer.Option("--goal", help="What the pipeline should do.")],
    name: Annotated[str | None, typer.Option(help="The pipeline's name.")] = None,
    output: Annotated[
        Path | None, typer.Option(help="Write the YAML here (default: print it).")
    ] = None,
    backend: Annotated[
        str | None, typer.Option(help=f"Backend: {' | '.join(BACKENDS)} (default mock).")
    ] = None,
    model: Annotated[str | None, typer.Option(help="Model name to ask for.")] = None,
    base_url: Annotated[str | None, typer.Option(help="OpenAI-compatible endpoint.")] = None,
    api_key: Annotated[str | None, typer.Option(help="API key.")] = None,
    finetune_model: Annotated[str | None, typer.Option(help="Finetuned model name.")] = None,
    finetune_port: Annotated[int | None, typer.Option(help="Port for its server.")] = None,
    debug: Debug = False,
) -> None:
    """Ask the model for a plan, check it, feed the problems back (up to 6 tries), write YAML."""
    # Imported when the command runs: `sage lsp` needs none of it.
    from sage_lsp.cli.progress import ProgressPrinter
    from sage_lsp.pipeline.builder import build_pipeline
    from sage_lsp.pipeline.catalog import load_catalog
    from sage_lsp.services.factory import create_backend

    settings = load_settings(
        {"backend": backend, "model": model, "base_url": base_url, "api_key": api_key,
         "finetune_model": finetune_model, "finetune_port": finetune_port}
    )  # fmt: skip
    chosen = create_backend(settings, ProgressPrinter())

    async def run() -> BuildResult:
        try:
            return await build_pipeline(
                chosen, goal, load_catalog(settings.sage_home), name, settings.max_tokens
            )
        finally:
            await chosen.aclose()

    result = asyncio.run(run())
    if not result.valid:
        raise fail(
            f"no valid plan after {result.attempts} attempts: " + "; ".join(result.errors),
            EXIT_FAILURE,
            debug,
        )
    if output is None:
        print(result.yaml, end="")
    else:
        with users_umask():  # the user's file, outside $SAGE_HOME: their umask, not ours
            output.parent.mkdir(parents=True, exist_ok=True)
            output.write_text(result.yaml, encoding="utf-8")
        print(f"wrote {output} ({result.name}, {result.attempts} attempt(s))")
