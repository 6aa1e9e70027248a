"""Language features for pipeline files: diagnostics, completion and hover.

Pipeline files are ``*.sage.yaml``/``*.sage.yml`` anywhere and ``*.yaml``/``*.yml`` under a
``pipelines`` folder; other documents get nothing from these handlers.

:mod:`sage_lsp.pipeline.document` counts columns in code points; positions are converted here,
at the boundary, from and to the encoding negotiated at ``initialize`` (utf-8, utf-16 or
utf-32: the first the client offers, utf-16 when it offers none) with pygls' position codec.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TypeVar

from lsprotocol import types
from pygls.workspace import PositionCodec

from sage_lsp.pipeline import document
from sage_lsp.pipeline.catalog import Operator, load_catalog

if TYPE_CHECKING:
    from sage_lsp.server.app import SageServer

log = logging.getLogger(__name__)

F = TypeVar("F")

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


def catalog(server: SageServer) -> dict[str, Operator]:
    """The operator catalog of the session's ``$SAGE_HOME``."""
    return load_catalog(server.session.settings.sage_home)


# --- diagnostics -----------------------------------------------------------------------------


def did_open(server: SageServer, params: types.DidOpenTextDocumentParams) -> None:
    """Check a pipeline file as it is opened."""
    publish(server, params.text_document.uri)


def did_change(server: SageServer, params: types.DidChangeTextDocumentParams) -> None:
    """Check a pipeline file again after each change."""
    publish(server, params.text_document.uri)


def did_close(server: SageServer, params: types.DidCloseTextDocumentParams) -> None:
    """Clear a closed pipeline file's diagnostics."""
    uri = params.text_document.uri
    if document.is_pipeline_file(uri):
        _send(server, uri, [])


def publish(server: SageServer, uri: str) -> None:
    """Publish the diagnostics of the pipeline file at ``uri`` (nothing for other files)."""
    if not document.is_pipeline_file(uri):
        return
    text = _text(server, uri)
    findings = document.diagnose(text.source, set(catalog(server)))
    _send(
        server,
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


def _send(server: SageServer, uri: str, diagnostics: list[types.Diagnostic]) -> None:
    server.text_document_publish_diagnostics(
        types.PublishDiagnosticsParams(uri=uri, diagnostics=diagnostics)
    )


# --- completion and hover --------------------------------------------------------------------


def _text(server: SageServer, uri: str) -> _Text:
    """The synced text of the document at ``uri``."""
    workspace = server.workspace
    return _Text(workspace.get_text_document(uri).source, workspace.position_codec)


def _at_cursor(
    server: SageServer,
    params: types.CompletionParams | types.HoverParams,
    find: Callable[[str, int, int, dict[str, Operator]], F | None],
) -> tuple[_Text, F] | None:
    """What ``find`` (:func:`document.complete` or :func:`document.hover`) finds at the cursor
    of a pipeline file, with the file's text; None elsewhere or when it finds nothing."""
    uri = params.text_document.uri
    if not document.is_pipeline_file(uri):
        return None
    text = _text(server, uri)
    at = params.position
    found = find(text.source, at.line, text.column(at), catalog(server))
    return None if found is None else (text, found)


def completion(server: SageServer, params: types.CompletionParams) -> types.CompletionList | None:
    """Keys, stage kinds, pipeline types or operator classes at the cursor."""
    at_cursor = _at_cursor(server, params, document.complete)
    if at_cursor is None:
        return None
    text, found = at_cursor
    replace = text.range(found.replace)
    item = server.client_capabilities.text_document
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


def hover(server: SageServer, params: types.HoverParams) -> types.Hover | None:
    """An operator's description and parameters, or what a stage kind does."""
    at_cursor = _at_cursor(server, params, document.hover)
    if at_cursor is None:
        return None
    text, found = at_cursor
    caps = server.client_capabilities.text_document
    formats = caps.hover.content_format if caps and caps.hover else None
    return types.Hover(contents=_markup(found.markdown, formats), range=text.range(found.span))
