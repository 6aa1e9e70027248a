"""Language features for pipeline files: diagnostics, completion and hover.

Pipeline files are ``*.sage.yaml``/``*.sage.yml`` anywhere and ``*.yaml``/``*.yml`` under a
``pipelines`` folder; other documents get nothing from these handlers.

:mod:`sage_lsp.pipeline.document` counts columns in code points; positions are converted here,
at the boundary, from and to the encoding negotiated at ``initialize`` (utf-8, utf-16 or
utf-32: the first the client offers, utf-16 when it offers none) with pygls' position codec.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from lsprotocol import types
from pygls.workspace import PositionCodec

from sage_lsp.pipeline import document
from sage_lsp.pipeline.catalog import Operator, load_catalog

if TYPE_CHECKING:
    from sage_lsp.server.app import SageServer

log = logging.getLogger(__name__)

TRIGGER_CHARACTERS = [":", " "]
"""Characters after which the editor asks for completion by itself."""

_SEVERITY = {"error": types.DiagnosticSeverity.Error, "warning": types.DiagnosticSeverity.Warning}
_ITEM_KIND = {
    "key": types.CompletionItemKind.Property,
    "kind": types.CompletionItemKind.EnumMember,
    "type": types.CompletionItemKind.EnumMember,
    "class": types.CompletionItemKind.Class,
}


def _markup(markdown: str, formats: Sequence[types.MarkupKind] | None) -> types.MarkupContent | str:
    """``markdown`` as Markdown when the client lists that format, else as plain text when it
    lists that (the Markdown source reads well enough), else as a bare string, which every
    client takes."""
    for kind in (types.MarkupKind.Markdown, types.MarkupKind.PlainText):
        if formats and kind in formats:
            return types.MarkupContent(kind=kind, value=markdown)
    return markdown


class _Text:
    """A pipeline file's text, its lines, and the client's position encoding."""

    def __init__(self, source: str, codec: PositionCodec) -> None:
        self.source = source
        self.lines = document.split_lines(source)
        self.codec = codec

    def column(self, position: types.Position) -> int:
        """The code-point column of a position the client sent."""
        return self.codec.position_from_client_units(self.lines, position).character

    def range(self, span: document.Span) -> types.Range:
        """``span`` in the client's position encoding."""
        start = types.Position(line=span.start_line, character=span.start_char)
        end = types.Position(line=span.end_line, character=span.end_char)
        return self.codec.range_to_client_units(self.lines, types.Range(start=start, end=end))


class PipelineHandlers:
    """The pipeline-file feature group of one server."""

    def __init__(self, server: SageServer) -> None:
        self.server = server

    def register(self) -> None:
        """Register every handler of the group with the server."""
        self.server.route(types.TEXT_DOCUMENT_DID_OPEN, self.did_open)
        self.server.route(types.TEXT_DOCUMENT_DID_CHANGE, self.did_change)
        self.server.route(types.TEXT_DOCUMENT_DID_CLOSE, self.did_close)
        self.server.route(types.TEXT_DOCUMENT_HOVER, self.hover)
        self.server.route(
            types.TEXT_DOCUMENT_COMPLETION,
            self.completion,
            types.CompletionOptions(trigger_characters=TRIGGER_CHARACTERS),
        )

    # --- the catalog -------------------------------------------------------------------------

    def catalog(self) -> dict[str, Operator]:
        """The operator catalog of the session's ``$SAGE_HOME``."""
        return load_catalog(self.server.session.settings.sage_home)

    # --- diagnostics -------------------------------------------------------------------------

    def did_open(self, params: types.DidOpenTextDocumentParams) -> None:
        """Check a pipeline file as it is opened."""
        self.publish(params.text_document.uri)

    def did_change(self, params: types.DidChangeTextDocumentParams) -> None:
        """Check a pipeline file again after each change."""
        self.publish(params.text_document.uri)

    def did_close(self, params: types.DidCloseTextDocumentParams) -> None:
        """Clear a closed pipeline file's diagnostics."""
        uri = params.text_document.uri
        if document.is_pipeline_file(uri):
            self._send(uri, [])

    def publish(self, uri: str) -> None:
        """Publish the diagnostics of the pipeline file at ``uri`` (nothing for other files)."""
        if not document.is_pipeline_file(uri):
            return
        text = self._text(uri)
        findings = document.diagnose(text.source, set(self.catalog()))
        self._send(
            uri,
            [
                types.Diagnostic(
                    range=text.range(f.span),
                    message=f.message,
                    severity=_SEVERITY.get(f.severity, types.DiagnosticSeverity.Error),
                    source="sage",
                )
                for f in findings
            ],
        )

    def _send(self, uri: str, diagnostics: list[types.Diagnostic]) -> None:
        self.server.text_document_publish_diagnostics(
            types.PublishDiagnosticsParams(uri=uri, diagnostics=diagnostics)
        )

    # --- completion and hover ----------------------------------------------------------------

    def _text(self, uri: str) -> _Text:
        """The synced text of the document at ``uri``."""
        workspace = self.server.workspace
        return _Text(workspace.get_text_document(uri).source, workspace.position_codec)

    def _pipeline_text(self, params: types.CompletionParams | types.HoverParams) -> _Text | None:
        """The text of the document at ``params`` if it is a pipeline file, else None."""
        uri = params.text_document.uri
        return self._text(uri) if document.is_pipeline_file(uri) else None

    def completion(self, params: types.CompletionParams) -> types.CompletionList | None:
        """Keys, stage kinds, pipeline types or operator classes at the cursor."""
        text = self._pipeline_text(params)
        if text is None:
            return None
        line = params.position.line
        found = document.complete(text.source, line, text.column(params.position), self.catalog())
        if found is None:
            return None
        replace = text.range(found.replace)
        item = self.server.client_capabilities.text_document
        item_caps = item and item.completion and item.completion.completion_item
        formats = item_caps.documentation_format if item_caps else None
        items = [
            types.CompletionItem(
                label=s.label,
                kind=_ITEM_KIND.get(s.kind, types.CompletionItemKind.Text),
                detail=s.detail or None,
                documentation=_markup(s.documentation, formats) if s.documentation else None,
                sort_text=f"{i:04d}",
                text_edit=types.TextEdit(range=replace, new_text=s.label + s.insert_suffix),
            )
            for i, s in enumerate(found.items)
        ]
        return types.CompletionList(is_incomplete=False, items=items)

    def hover(self, params: types.HoverParams) -> types.Hover | None:
        """An operator's description and parameters, or what a stage kind does."""
        text = self._pipeline_text(params)
        if text is None:
            return None
        line = params.position.line
        found = document.hover(text.source, line, text.column(params.position), self.catalog())
        if found is None:
            return None
        caps = self.server.client_capabilities.text_document
        formats = caps.hover.content_format if caps and caps.hover else None
        return types.Hover(
            contents=_markup(found.markdown, formats),
            range=text.range(found.span),
        )
