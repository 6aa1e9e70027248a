"""Handlers of ``sage/index/list`` and ``sage/index/ingest``."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from lsprotocol import types

from sage_lsp import protocol
from sage_lsp.rag.index import DocIndex, RetrievalError, list_indexes
from sage_lsp.rag.retrieve import embedder_for
from sage_lsp.server.routes import Request

log = logging.getLogger(__name__)


def index_info(index: DocIndex) -> protocol.IndexInfo:
    """An index as the protocol reports it."""
    documents, chunks = index.counts()
    manifest = index.manifest()
    source, updated = manifest.get("source_dir"), manifest.get("updated_at")
    return protocol.IndexInfo(
        name=index.name,
        num_documents=documents,
        num_chunks=chunks,
        source_dir=str(source) if source else None,
        updated_at=str(updated) if updated else None,
        path=str(index.db_path),
    )


async def index_list(request: Request[protocol.Empty]) -> protocol.IndexListResult:
    """Every index under ``$SAGE_HOME/cache/chat`` (damaged ones are left out)."""
    infos = []
    for index in list_indexes(request.session.settings.sage_home):
        try:
            infos.append(index_info(index))
        except RetrievalError:
            continue
    return protocol.IndexListResult(infos)


async def ingest(request: Request[protocol.IngestParams]) -> protocol.IngestResult:
    """Build or update an index in a worker thread, reporting progress on the given token."""
    p, settings = request.params, request.session.settings
    index = DocIndex(settings.sage_home, p.index, embedder_for(settings))
    progress = request.server.work_done_progress
    token = p.work_done_token
    loop = asyncio.get_running_loop()

    def report(done: int, total: int, name: str) -> None:
        if token is not None:
            value = types.WorkDoneProgressReport(
                message=f"{done}/{total} {name}", percentage=int(100 * done / max(total, 1))
            )
            loop.call_soon_threadsafe(progress.report, token, value)

    if token is not None:
        progress.begin(token, types.WorkDoneProgressBegin(title=f"Ingesting {p.index}"))
    try:
        report_ = await asyncio.to_thread(
            index.ingest, Path(p.source), p.chunk_size, p.chunk_overlap, None, report,
            settings.ingest_max_file_mb,
        )  # fmt: skip
    finally:
        if token is not None:
            loop.call_soon(progress.end, token, types.WorkDoneProgressEnd(message="done"))
    for warning in report_.warnings:
        log.warning("ingest %s: %s", p.index, warning)
    return protocol.IngestResult(
        index=index_info(index),
        added=report_.added,
        updated=report_.updated,
        removed=report_.removed,
        unchanged=report_.unchanged,
        skipped=report_.skipped,
        seconds=round(report_.seconds, 3),
        warnings=report_.warnings,
    )
