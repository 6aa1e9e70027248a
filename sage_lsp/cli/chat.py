"""``sage chat``: the REPL and one-shot answers, and ``sage chat ingest`` / ``sage chat show``
for the retrieval indexes."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from sage_lsp.cli.failures import Debug
from sage_lsp.config import BACKENDS, DEFAULT_INDEX, load_settings

# Each command imports what it runs (chat, retrieval) when it runs: `sage lsp` needs none of it.

chat_app = typer.Typer(help="Chat with a model; ingest and show retrieval indexes.")


@chat_app.callback(invoke_without_command=True)
def chat(
    ctx: typer.Context,
    backend: Annotated[
        str | None, typer.Option(help=f"Backend: {' | '.join(BACKENDS)} (default mock).")
    ] = None,
    model: Annotated[str | None, typer.Option(help="Model name to ask for.")] = None,
    base_url: Annotated[
        str | None, typer.Option(help="OpenAI-compatible endpoint, e.g. http://HOST:8000/v1.")
    ] = None,
    api_key: Annotated[
        str | None, typer.Option(help="API key (default from SAGE_CHAT_API_KEY).")
    ] = None,
    finetune_model: Annotated[
        str | None, typer.Option(help="Finetuned model name (default sage_code_expert).")
    ] = None,
    finetune_port: Annotated[
        int | None, typer.Option(help="Port for the finetuned model's server (default 8000).")
    ] = None,
    index: Annotated[
        str | None,
        typer.Option("--index", "-i", help="Retrieval index (default docs-public; none: off)."),
    ] = None,
    top_k: Annotated[
        int | None, typer.Option("--top-k", "-k", help="Passages per question (1..20).")
    ] = None,
    ask: Annotated[
        str | None, typer.Option("--ask", "-q", help="Answer this one question and exit.")
    ] = None,
    no_stream: Annotated[
        bool, typer.Option("--no-stream", help="Print the answer when it is complete.")
    ] = False,
    no_markdown: Annotated[
        bool,
        typer.Option("--no-markdown", help="Print answers as plain text, not rendered Markdown."),
    ] = False,
    debug: Debug = False,
) -> None:
    """Chat with a model: a REPL, or one answer with --ask or a question on stdin."""
    if ctx.invoked_subcommand is not None:
        return
    from sage_lsp.cli.runner import run_chat

    overrides = {
        "backend": backend,
        "model": model,
        "base_url": base_url,
        "api_key": api_key,
        "finetune_model": finetune_model,
        "finetune_port": finetune_port,
        "index": index,
        "top_k": top_k,
    }
    run_chat(overrides, ask, not no_stream, debug, markdown=not no_markdown)


@chat_app.command("ingest")
def ingest(
    source: Annotated[Path, typer.Option(help="Folder of .md .markdown .mdx .rst .txt files.")],
    index: Annotated[str, typer.Option(help="Index name.")] = DEFAULT_INDEX,
    chunk_size: Annotated[int, typer.Option(help="Characters per chunk.")] = 800,
    chunk_overlap: Annotated[int, typer.Option(help="Characters shared by neighbours.")] = 160,
    max_files: Annotated[int | None, typer.Option(help="Read at most this many files.")] = None,
) -> None:
    """Build or update an index from a folder of docs (only changed files are read again)."""
    from rich.progress import Progress

    from sage_lsp.rag.index import DocIndex
    from sage_lsp.rag.retrieve import embedder_for

    settings = load_settings()
    target = DocIndex(settings.sage_home, index, embedder_for(settings))
    with Progress(transient=True) as bar:
        task = bar.add_task("ingesting", total=None)

        def show(done: int, total: int, name: str) -> None:
            bar.update(task, completed=done, total=total, description=name[-40:])

        report = target.ingest(
            source, chunk_size, chunk_overlap, max_files, show, settings.ingest_max_file_mb
        )
    for warning in report.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    documents, chunks = target.counts()
    r = report
    print(
        f"{target.name}: {r.added} added, {r.updated} updated, {r.removed} removed, "
        f"{r.unchanged} unchanged, {r.skipped} skipped (binary) in {r.seconds:.1f} s — "
        f"{documents} documents, {chunks} chunks in {target.db_path}"
    )


@chat_app.command("show")
def show(
    index: Annotated[str, typer.Option(help="Index name.")] = DEFAULT_INDEX,
) -> None:
    """Print an index's manifest."""
    from sage_lsp.rag.retrieve import open_index

    target = open_index(load_settings(), index)
    target.counts()
    print(json.dumps(target.manifest(), indent=2, ensure_ascii=False))
