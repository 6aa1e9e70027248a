"""An editor session for editor-context and code-action tests: a real ``python -m sage_lsp``
with a workspace folder, initialized as VS Code (utf-16 positions) or Neovim 0.11 (utf-8), that
opens documents and applies the server's ``workspace/applyEdit`` to its own copies, counting
columns in its encoding independently of the server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Union

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

from tests.lsp.conftest import SERVER, make_client
from tests.lsp.test_chat_openai import use_server
from tests.support.openai_server import OpenAIServer

VSCODE = "visual-studio-code"
NEOVIM = "neovim@v0.11.0"
ENCODINGS = {VSCODE: "utf-16", NEOVIM: "utf-8"}
"""The position encoding each client ends up with (VS Code offers none: utf-16)."""


class Editor:
    """The client's side: its documents, and how it answers ``workspace/applyEdit``."""

    def __init__(self, client: LanguageClient, root: Path, encoding: str) -> None:
        self.client = client
        self.root = root
        self.encoding = encoding
        self.texts: dict[str, str] = {}
        self.versions: dict[str, int] = {}
        self.apply = True
        """The answer to the next ``workspace/applyEdit`` (False: refused, unchanged)."""
        self.edits: list[dict[str, Any]] = []
        """Every WorkspaceEdit received."""

    def uri(self, name: str) -> str:
        """The ``file:`` URI of ``name`` in the workspace folder."""
        return (self.root / name).as_uri()

    def open(self, name: str, text: str, language: str = "python") -> str:
        """``didOpen`` the document ``name`` with ``text`` (not written to disk); its URI."""
        uri = self.uri(name)
        self.texts[uri], self.versions[uri] = text, 1
        self.client.text_document_did_open(
            types.DidOpenTextDocumentParams(
                text_document=types.TextDocumentItem(
                    uri=uri, language_id=language, version=1, text=text
                )
            )
        )
        return uri

    def change(self, uri: str, text: str) -> None:
        """``didChange`` the whole text (an unsaved edit)."""
        self.versions[uri] += 1
        self.texts[uri] = text
        self.client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(
                    uri=uri, version=self.versions[uri]
                ),
                content_changes=[types.TextDocumentContentChangeWholeDocument(text=text)],
            )
        )

    def position(self, uri: str, line: int, before: str) -> dict[str, int]:
        """The position after ``before`` (the start of line ``line``), in this encoding."""
        assert self.texts[uri].split("\n")[line].startswith(before)
        return {"line": line, "character": units(before, self.encoding)}

    def on_apply_edit(
        self, params: types.ApplyWorkspaceEditParams
    ) -> types.ApplyWorkspaceEditResult:
        """Apply (or refuse) a WorkspaceEdit to the client's copies."""
        edit = params.edit
        self.edits.append({"changes": edit.changes, "documentChanges": edit.document_changes})
        if not self.apply:
            return types.ApplyWorkspaceEditResult(applied=False, failure_reason="refused in test")
        pairs: list[tuple[str, list[types.TextEdit]]] = list((edit.changes or {}).items())
        for change in edit.document_changes or []:
            assert isinstance(change, types.TextDocumentEdit)
            assert change.text_document.version == self.versions[change.text_document.uri]
            pairs.append((change.text_document.uri, list(change.edits)))  # type: ignore[arg-type]
        for uri, edits in pairs:
            assert len(edits) == 1, "one TextEdit"
            text, (text_edit,) = self.texts[uri], edits
            start = self.offset(text, text_edit.range.start)
            end = self.offset(text, text_edit.range.end)
            self.change(uri, text[:start] + text_edit.new_text + text[end:])
        return types.ApplyWorkspaceEditResult(applied=True)

    def offset(self, text: str, position: types.Position) -> int:
        """The string index of ``position`` (counted in this encoding's code units)."""
        lines = text.split("\n")
        head = sum(len(line) + 1 for line in lines[: position.line])
        line = lines[position.line] if position.line < len(lines) else ""
        codec = "utf-16-le" if self.encoding == "utf-16" else "utf-8"
        unit = 2 if self.encoding == "utf-16" else 1
        return head + len(line.encode(codec)[: position.character * unit].decode(codec))


def units(text: str, encoding: str) -> int:
    """``text``'s length in code units of ``encoding`` (utf-16 or utf-8)."""
    return len(text.encode("utf-16-le")) // 2 if encoding == "utf-16" else len(text.encode())


def make_editor_client() -> LanguageClient:
    client = make_client()
    converter = client.protocol._converter

    def command_or_action(raw: Any, _: type) -> types.Command | types.CodeAction:
        # lsprotocol takes any item with a "command" key for a Command; a CodeAction's is an
        # object (a Command's a string), as VS Code and Neovim tell them apart
        kind = types.Command if isinstance(raw.get("command"), str) else types.CodeAction
        found: types.Command | types.CodeAction = converter.structure(raw, kind)
        return found

    converter.register_structure_hook(
        Union[types.Command, types.CodeAction],  # noqa: UP007 - the type lsprotocol registers
        command_or_action,
    )

    @client.feature(types.WORKSPACE_APPLY_EDIT)
    def apply_edit(params: types.ApplyWorkspaceEditParams) -> types.ApplyWorkspaceEditResult:
        return client.editor.on_apply_edit(params)  # type: ignore[attr-defined, no-any-return]

    return client


EDITOR_CONFIG = ClientServerConfig(server_command=SERVER, client_factory=make_editor_client)


@pytest_lsp.fixture(config=EDITOR_CONFIG)
async def editor(lsp_client: LanguageClient, request: pytest.FixtureRequest) -> AsyncIterator[None]:
    """A mock-backend session with the workspace folder ``tmp_path``; VS Code's capabilities,
    or Neovim 0.11's with ``@pytest.mark.parametrize("editor", [NEOVIM], indirect=True)``."""
    name = getattr(request, "param", VSCODE)
    root: Path = request.getfixturevalue("tmp_path") / "work"
    root.mkdir()
    lsp_client.editor = Editor(lsp_client, root, ENCODINGS[name])  # type: ignore[attr-defined]
    lsp_client.set_configuration({"backend": "mock"}, section="sage")
    lsp_client.init_result = await lsp_client.initialize_session(  # type: ignore[attr-defined]
        types.InitializeParams(
            capabilities=client_capabilities(name),
            initialization_options={"backend": "mock"},
            workspace_folders=[types.WorkspaceFolder(uri=root.as_uri(), name="work")],
            root_uri=root.as_uri(),
        )
    )
    yield
    await lsp_client.shutdown_session()


def editor_of(client: LanguageClient) -> Editor:
    """The client's :class:`Editor`."""
    return client.editor  # type: ignore[attr-defined, no-any-return]


def lines_range(start: int, end: int) -> dict[str, Any]:
    """Lines ``start``..``end`` (0-based, ``end`` excluded) as an LSP Range."""
    return {"start": {"line": start, "character": 0}, "end": {"line": end, "character": 0}}


async def opened(
    client: LanguageClient, text: str, model: OpenAIServer | None = None, name: str = "calc.py"
) -> tuple[Editor, str]:
    """The client's :class:`Editor` with ``name`` opened holding ``text``, and its URI; the
    session answers through ``model`` when it is given (else the mock)."""
    if model is not None:
        await use_server(client, model)
    ed = editor_of(client)
    return ed, ed.open(name, text)
