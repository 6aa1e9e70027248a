"""Handler of ``sage/buildPipeline``."""

from __future__ import annotations

import os
from typing import Any

from pygls.exceptions import JsonRpcException
from pygls.uris import to_fs_path

from sage_lsp import protocol
from sage_lsp.chat.conversation import Turn
from sage_lsp.core.errors import BackendError
from sage_lsp.pipeline.builder import build_pipeline
from sage_lsp.pipeline.catalog import load_catalog
from sage_lsp.server.routes import Request


def create_file_edit(uri: str, text: str) -> dict[str, Any]:
    """A WorkspaceEdit that creates ``uri`` with ``text``; applying it fails if ``uri`` exists."""
    return {
        "documentChanges": [
            {
                "kind": "create",
                "uri": uri,
                "options": {"overwrite": False, "ignoreIfExists": False},
            },
            {
                "textDocument": {"uri": uri, "version": None},
                "edits": [
                    {
                        "range": {
                            "start": {"line": 0, "character": 0},
                            "end": {"line": 0, "character": 0},
                        },
                        "newText": text,
                    }
                ],
            },
        ]
    }


def _check_target(uri: str | None) -> None:
    """Refuse a ``targetUri`` whose file already exists: the plan never replaces a file."""
    path = to_fs_path(uri) if uri is not None and uri.startswith("file:") else None
    if path is not None and os.path.lexists(path):
        raise protocol.InvalidParams(f"targetUri: {path} already exists; choose a new file")


async def build(request: Request[protocol.BuildPipelineParams]) -> protocol.BuildPipelineResult:
    """Build a plan with the session's backend; -32004 with the last errors if none is valid."""
    p, session = request.params, request.session
    if not p.description.strip():
        raise protocol.InvalidParams("description must not be empty")
    _check_target(p.target_uri)
    await request.server.configured()
    catalog = load_catalog(session.settings.sage_home)
    try:
        backend = await session.backend()
        result = await build_pipeline(
            backend, p.description, catalog, p.name, session.settings.max_tokens
        )
    except BackendError as exc:
        session.report(exc)
        raise
    if not result.valid:
        raise JsonRpcException(
            message=f"no valid plan after {result.attempts} attempts: " + "; ".join(result.errors),
            code=protocol.PIPELINE_FAILED,
            data={"errors": result.errors, "attempts": result.attempts, "yaml": result.yaml},
        )
    if p.chat_id is not None:
        turn = Turn(f"/pipeline {p.description}", result.yaml, complete=True)
        session.conversation(p.chat_id).turns.append(turn)
    return protocol.BuildPipelineResult(
        name=result.name,
        yaml=result.yaml,
        valid=True,
        errors=result.warnings,
        attempts=result.attempts,
        edit=create_file_edit(p.target_uri, result.yaml) if p.target_uri else None,
    )
