"""Handler of ``sage/buildPipeline``."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from pygls.exceptions import JsonRpcException
from pygls.uris import to_fs_path

from sage_lsp import protocol
from sage_lsp.backends.base import BackendError
from sage_lsp.chat.conversation import Turn
from sage_lsp.pipeline.builder import build_pipeline
from sage_lsp.pipeline.catalog import load_catalog
from sage_lsp.server.errors import invalid_params, rpc_error

if TYPE_CHECKING:
    from sage_lsp.server.app import SageServer


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


class BuildHandlers:
    """The pipeline-building method of one server."""

    def __init__(self, server: SageServer) -> None:
        self.server = server

    def register(self) -> None:
        """Register the handler with the server."""
        self.server.route(protocol.BUILD_PIPELINE, self.build)

    async def build(self, params: Any) -> dict[str, Any]:
        """Build a plan with the session's backend; -32004 with the last errors if none is valid."""
        try:
            p = protocol.from_wire(protocol.BuildPipelineParams, params)
            if not p.description.strip():
                raise protocol.InvalidParams("description must not be empty")
            _check_target(p.target_uri)
        except protocol.InvalidParams as exc:
            raise invalid_params(exc, protocol.BUILD_PIPELINE) from None
        await self.server.configured()
        session = self.server.session
        catalog = load_catalog(session.settings.sage_home)
        try:
            backend = await session.backend()
            result = await build_pipeline(
                backend, p.description, catalog, p.name, session.settings.max_tokens
            )
        except BackendError as exc:
            session.report(exc)
            raise rpc_error(exc) from None
        if not result.valid:
            raise JsonRpcException(
                message=f"no valid plan after {result.attempts} attempts: "
                + "; ".join(result.errors),
                code=protocol.PIPELINE_FAILED,
                data={"errors": result.errors, "attempts": result.attempts, "yaml": result.yaml},
            )
        if p.chat_id is not None:
            turn = Turn(f"/pipeline {p.description}", result.yaml, complete=True)
            session.conversation(p.chat_id).turns.append(turn)
        wire: dict[str, Any] = protocol.to_wire(
            protocol.BuildPipelineResult(
                name=result.name,
                yaml=result.yaml,
                valid=True,
                errors=result.warnings,
                attempts=result.attempts,
                edit=create_file_edit(p.target_uri, result.yaml) if p.target_uri else None,
            )
        )
        return wire
