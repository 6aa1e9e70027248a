"""Pipeline-file positions follow the position encoding negotiated at initialize: utf-8 for
Neovim 0.11 (its first choice), utf-32 for Emacs, utf-16 for VS Code (which offers none)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import LanguageClient, client_capabilities

from tests.lsp.conftest import CONFIG
from tests.pipeline.test_pipeline_lsp import diagnostics_after, open_doc, rng

pytestmark = pytest.mark.slow

TEXT = """\
pipeline:
  name: démo
  type: 😀x
source:
  class: 数据源.Reader
stages:
  - id: one
    kind: map
    class: sage.libs.rag.retriever.ChromaRetriever
sink:
  class: sage.libs.io_utils.sink.TerminalSink
"""

CLIENTS = {
    "neovim@v0.11.0": "utf-8",
    "emacs@v29.1": "utf-32",
    "visual-studio-code@v1.65.2": "utf-16",
}


def units(text: str, encoding: str) -> int:
    """The length of ``text`` in the code units of ``encoding``."""
    if encoding == "utf-32":
        return len(text)
    return len(text.encode("utf-16-le" if encoding == "utf-16" else "utf-8")) // (
        2 if encoding == "utf-16" else 1
    )


@pytest_lsp.fixture(config=CONFIG, params=list(CLIENTS))
async def editor(lsp_client: LanguageClient, request: pytest.FixtureRequest) -> AsyncIterator[None]:
    """A session initialized with a real editor's capabilities, which must negotiate the
    encoding that editor prefers."""
    result = await lsp_client.initialize_session(
        types.InitializeParams(
            capabilities=client_capabilities(request.param),
            initialization_options={"backend": "mock"},
        )
    )
    assert result.capabilities.position_encoding == CLIENTS[request.param]
    lsp_client.encoding = CLIENTS[request.param]  # type: ignore[attr-defined]
    yield
    await lsp_client.shutdown_session()


async def test_diagnostics_completion_and_hover_after_non_ascii_text(
    editor: LanguageClient, tmp_path: Path
) -> None:
    encoding: str = editor.encoding  # type: ignore[attr-defined]
    uri = (tmp_path / "p.sage.yaml").as_uri()
    open_doc(editor, uri, TEXT)
    got = {message: found for found, _, _, message in await diagnostics_after(editor, uri)}
    after_type = units("  type: 😀x", encoding)
    assert got["pipeline.type: '😀x' is not one of local, remote"] == rng(2, 8, after_type)
    after_class = units("  class: 数据源.Reader", encoding)
    assert got["source.class: '数据源.Reader' is not in the operator catalog"] == rng(
        4, 9, after_class
    )

    at_word = types.Position(4, units("  class: 数据源.Re", encoding))
    hover = await editor.text_document_hover_async(
        types.HoverParams(types.TextDocumentIdentifier(uri), at_word)
    )
    assert hover is not None and hover.range == rng(4, 9, after_class)
    assert isinstance(hover.contents, types.MarkupContent)
    assert "**数据源.Reader** is not in the operator catalog" in hover.contents.value

    completion = await editor.text_document_completion_async(
        types.CompletionParams(types.TextDocumentIdentifier(uri), at_word)
    )
    assert isinstance(completion, types.CompletionList) and completion.items
    edit = completion.items[0].text_edit
    assert isinstance(edit, types.TextEdit) and edit.range == rng(4, 9, after_class)
