"""The documents that editor context and code actions name: their text, and their ranges.

A document's text is the editor's synced copy (``didOpen``/``didChange``, unsaved edits
included) when it is open, else, for a ``file:`` URI, the file on disk. Ranges arrive in the
position encoding negotiated at ``initialize`` (utf-16 for VS Code, utf-8 for Neovim 0.11+) and
are converted here, at the boundary, with pygls' position codec.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from cattrs.errors import ClassValidationError
from lsprotocol import types
from lsprotocol.converters import get_converter
from pygls.uris import to_fs_path

from sage_lsp import protocol
from sage_lsp.chat.editor_context import Excerpt, problem

if TYPE_CHECKING:
    from sage_lsp.server.app import SageServer


@dataclass(frozen=True)
class Document:
    """A document's text as the model should see it."""

    uri: str
    """Its URI as the client sent it."""
    text: str
    """Its text (the synced copy when open)."""
    path: str
    """Its path relative to the workspace folder holding it (absolute outside every folder;
    the URI when it is no file)."""
    language: str
    """The editor's language id when open, else the file's suffix."""
    version: int | None
    """The synced copy's version (``None`` when read from disk)."""

    @property
    def lines(self) -> list[str]:
        """Its lines with their line ends (one empty line for an empty document)."""
        return self.text.splitlines(keepends=True) or [""]


@dataclass(frozen=True)
class Span:
    """A range of a document in code points (what Python strings index)."""

    start: tuple[int, int]
    """Line and character of the start, from 0."""
    end: tuple[int, int]
    """Line and character of the end (excluded), from 0."""


def read(server: SageServer, uri: str, where: str) -> Document:
    """The document at ``uri``; -32602 (naming ``where``) for a file that cannot be read or a
    URI that is neither open nor a ``file:`` URI."""
    workspace = server.workspace
    opened = workspace.text_documents.get(unquote(uri))
    path = to_fs_path(uri) if uri.startswith("file:") else None
    shown = _relative(server, path) if path else uri
    if opened is not None:
        language = opened.language_id or PurePath(shown).suffix.lstrip(".")
        return Document(uri, opened.source, shown, language, opened.version)
    if path is None:
        raise protocol.InvalidParams(
            f"{where}: {uri} is not open in the editor, and only file: URIs are read from disk"
        )
    try:
        text = Path(path).read_bytes().decode("utf-8", errors="replace")
    except FileNotFoundError:
        raise protocol.InvalidParams(f"{where}: no such file: {path}") from None
    except OSError as exc:
        raise protocol.InvalidParams(f"{where}: cannot read {path}: {exc.strerror}") from None
    return Document(uri, text, shown, PurePath(path).suffix.lstrip("."), None)


def _relative(server: SageServer, path: str) -> str:
    """``path`` relative to the workspace folder that holds it, else as it is."""
    workspace = server.workspace
    roots = [folder.uri for folder in workspace.folders.values()] + [workspace.root_uri or ""]
    target = PurePath(path)
    for root in roots:
        folder = to_fs_path(root) if root.startswith("file:") else None
        if folder and target.is_relative_to(folder):
            return target.relative_to(folder).as_posix()
    return path


def lsp_range(raw: dict[str, Any], where: str) -> types.Range:
    """An LSP Range as sent; -32602 naming ``where`` when it is not one."""
    try:
        found = get_converter().structure(raw, types.Range)
    except (ClassValidationError, KeyError, TypeError, ValueError):
        found = None
    if (
        not isinstance(found, types.Range)
        or min(found.start.line, found.start.character, found.end.line, found.end.character) < 0
    ):
        raise protocol.InvalidParams(
            f"{where} must be an LSP Range ({{start: {{line, character}}, end: ...}})"
        )
    if (found.end.line, found.end.character) < (found.start.line, found.start.character):
        raise protocol.InvalidParams(f"{where} ends before it starts")
    return found


def span(server: SageServer, document: Document, found: types.Range) -> Span:
    """``found`` (in the negotiated encoding) in code points of ``document``."""
    codec = server.workspace.position_codec
    lines = document.lines
    start = codec.position_from_client_units(lines, types.Position(**_pos(found.start)))
    end = codec.position_from_client_units(lines, types.Position(**_pos(found.end)))
    return Span((start.line, start.character), (end.line, end.character))


def _pos(position: types.Position) -> dict[str, int]:
    """A copy's fields (the codec changes a position past the line's end in place)."""
    return {"line": position.line, "character": position.character}


def excerpt(server: SageServer, ref: protocol.ContextRef, where: str) -> Excerpt:
    """The lines ``ref`` names (every line its range touches; the whole document without a
    range; a range ending at the start of a line leaves that line out), labelled, with the
    diagnostics sent with it."""
    document = read(server, ref.uri, f"{where}.uri")
    lines = [line.rstrip("\r\n") for line in document.lines]
    first, last = 0, len(lines) - 1
    if ref.range is not None:
        where_range = f"{where}.range"
        found = span(server, document, lsp_range(ref.range, where_range))
        first = min(found.start[0], last)
        end_line, end_char = found.end
        last = min(end_line - 1 if end_char == 0 and end_line > first else end_line, last)
    problems = tuple(problem(d) for d in diagnostics(ref.diagnostics or [], f"{where}.diagnostics"))
    return Excerpt(
        document.path, first + 1, tuple(lines[first : last + 1]), document.language, problems
    )


def diagnostics(raw: list[dict[str, Any]], where: str) -> list[dict[str, Any]]:
    """The LSP Diagnostics as sent, each checked (a range and a message); -32602 naming the
    first that is not one."""
    for n, item in enumerate(raw):
        lsp_range(item.get("range") or {}, f"{where}[{n}].range")
        if not isinstance(item.get("message"), str):
            raise protocol.InvalidParams(f"{where}[{n}].message must be a string")
    return raw
