"""Pipeline files end to end through pytest-lsp against the real server process: diagnostics
with exact ranges, completion and hover."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from lsprotocol import types
from pytest_lsp import LanguageClient

BAD = """\
pipeline:
  name: demo
  colour: blue
source:
  class: sage.libs.io_utils.source.FileSource
stages:
  - id: retrieve
    kind: mapp
    class: sage.libs.rag.retriever.ChromaRetriever
  - id: retrieve
    kind: map
    class: my.own.Operator
sink:
  class: sage.libs.io_utils.sink.TerminalSink
"""

GOOD = """\
pipeline:
  name: demo
  type: local
source:
  class: sage.libs.io_utils.source.FileSource
stages:
  - id: retrieve
    kind: map
    class: sage.libs.rag.retriever.ChromaRetriever
sink:
  class: sage.libs.io_utils.sink.TerminalSink
"""


def rng(line: int, start: int, end: int) -> types.Range:
    return types.Range(types.Position(line, start), types.Position(line, end))


def open_doc(client: LanguageClient, uri: str, text: str) -> None:
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            types.TextDocumentItem(uri=uri, language_id="yaml", version=1, text=text)
        )
    )


def change_doc(client: LanguageClient, uri: str, text: str, version: int = 2) -> None:
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
            content_changes=[types.TextDocumentContentChangeWholeDocument(text=text)],
        )
    )


async def published(client: LanguageClient) -> None:
    """Wait for the next publishDiagnostics; a server that sends none fails the test in 30 s."""
    await asyncio.wait_for(
        client.wait_for_notification(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS), 30
    )


async def diagnostics_after(client: LanguageClient, uri: str) -> list[tuple[Any, ...]]:
    await published(client)
    return [(d.range, d.severity, d.source, d.message) for d in client.diagnostics.get(uri, [])]


async def complete(client: LanguageClient, uri: str, line: int, char: int) -> list[str]:
    result = await client.text_document_completion_async(
        types.CompletionParams(types.TextDocumentIdentifier(uri), types.Position(line, char))
    )
    assert isinstance(result, types.CompletionList)
    return [item.label for item in result.items]


async def test_diagnostics_have_exact_ranges_and_clear_when_fixed(
    client: LanguageClient, tmp_path: Path
) -> None:
    uri = (tmp_path / "rag.sage.yaml").as_uri()
    open_doc(client, uri, BAD)
    error, warning = types.DiagnosticSeverity.Error, types.DiagnosticSeverity.Warning
    got = await diagnostics_after(client, uri)
    assert sorted(got, key=lambda d: (d[0].start.line, d[0].start.character)) == [
        (rng(0, 0, 8), error, "sage", "pipeline.type: is required"),
        (
            rng(2, 2, 8),
            error,
            "sage",
            "pipeline.colour: unknown key (allowed: name, description, version, type)",
        ),
        (
            rng(7, 10, 14),
            error,
            "sage",
            "stages[0].kind: 'mapp' is not one of map, batch, service, flatmap, filter, keyby",
        ),
        (rng(9, 8, 16), error, "sage", "stages[1].id: duplicate id 'retrieve' (also stages[0])"),
        (
            rng(11, 11, 26),
            warning,
            "sage",
            "stages[1].class: 'my.own.Operator' is not in the operator catalog",
        ),
    ]

    change_doc(client, uri, GOOD)
    assert await diagnostics_after(client, uri) == []

    change_doc(client, uri, "pipeline:\n  name: a: b\n", version=3)
    assert await diagnostics_after(client, uri) == [
        (rng(1, 9, 12), error, "sage", "YAML syntax error: mapping values are not allowed here")
    ]

    client.text_document_did_close(
        types.DidCloseTextDocumentParams(types.TextDocumentIdentifier(uri))
    )
    assert await diagnostics_after(client, uri) == []


async def test_yaml_under_a_pipelines_folder_is_checked_and_other_yaml_is_not(
    client: LanguageClient, tmp_path: Path
) -> None:
    checked = (tmp_path / "pipelines" / "qa.yml").as_uri()
    open_doc(client, checked, "pipeline: [\n")
    assert await diagnostics_after(client, checked) == [
        (
            rng(1, 0, 0),
            types.DiagnosticSeverity.Error,
            "sage",
            "YAML syntax error: expected the node content, but found '<stream end>'",
        )
    ]

    plain = (tmp_path / "config" / "settings.yaml").as_uri()
    open_doc(client, plain, BAD)
    hover = await client.text_document_hover_async(
        types.HoverParams(types.TextDocumentIdentifier(plain), types.Position(4, 12))
    )
    assert hover is None  # the round trip also shows the didOpen was handled
    assert plain not in client.diagnostics
    completion = await client.text_document_completion_async(
        types.CompletionParams(types.TextDocumentIdentifier(plain), types.Position(0, 0))
    )
    assert completion is None


async def test_completion_offers_keys_kinds_and_classes(
    client: LanguageClient, tmp_path: Path
) -> None:
    uri = (tmp_path / "p.sage.yml").as_uri()
    text = "pipeline:\n  name: demo\n  \nstages:\n  - id: retrieve\n    kind: \n    class: \n\n"
    open_doc(client, uri, text)
    await published(client)

    assert await complete(client, uri, 7, 0) == [
        "source",
        "sink",
        "services",
        "monitors",
        "notes",
        "environment",
    ]
    assert await complete(client, uri, 2, 2) == ["description", "version", "type"]
    assert await complete(client, uri, 5, 10) == [
        "map",
        "batch",
        "service",
        "flatmap",
        "filter",
        "keyby",
    ]
    classes = await complete(client, uri, 6, 11)
    assert "sage.libs.rag.retriever.ChromaRetriever" in classes
    assert "sage.libs.io_utils.source.FileSource" not in classes  # a source, not a stage

    result = await client.text_document_completion_async(
        types.CompletionParams(types.TextDocumentIdentifier(uri), types.Position(5, 10))
    )
    assert isinstance(result, types.CompletionList)
    assert result.items[0].text_edit == types.TextEdit(rng(5, 10, 10), "map")
    init: types.InitializeResult = client.init_result  # type: ignore[attr-defined]
    options = init.capabilities.completion_provider
    assert options is not None and list(options.trigger_characters or []) == [":", " "]


async def test_hover_shows_an_operators_description_and_parameters(
    client: LanguageClient, tmp_path: Path
) -> None:
    uri = (tmp_path / "pipelines" / "rag.yaml").as_uri()
    open_doc(client, uri, GOOD)
    await published(client)
    hover = await client.text_document_hover_async(
        types.HoverParams(types.TextDocumentIdentifier(uri), types.Position(8, 30))
    )
    assert hover is not None and isinstance(hover.contents, types.MarkupContent)
    assert hover.contents.kind == types.MarkupKind.Markdown
    text = hover.contents.value
    assert "**sage.libs.rag.retriever.ChromaRetriever** (stage, map)" in text
    assert "Retrieves the top-k passages" in text
    assert "- `collection_name`: Chroma collection to search." in text
    assert hover.range == rng(8, 11, 50)

    kind = await client.text_document_hover_async(
        types.HoverParams(types.TextDocumentIdentifier(uri), types.Position(7, 11))
    )
    assert kind is not None and isinstance(kind.contents, types.MarkupContent)
    assert kind.contents.value.startswith("**map** stage:")

    blank = await client.text_document_hover_async(
        types.HoverParams(types.TextDocumentIdentifier(uri), types.Position(1, 4))
    )
    assert blank is None


async def test_a_user_catalog_adds_classes(
    client: LanguageClient, tmp_path: Path, sage_home: Path
) -> None:
    (sage_home / "pipeline_operators.yaml").write_text(
        "my.own.Operator:\n"
        "  role: stage\n"
        "  kind: map\n"
        "  description: Our own step.\n"
        "  params:\n"
        "    depth: How deep.\n",
        encoding="utf-8",
    )
    uri = (tmp_path / "mine.sage.yaml").as_uri()
    text = GOOD.replace("sage.libs.rag.retriever.ChromaRetriever", "my.own.Operator")
    open_doc(client, uri, text)
    assert await diagnostics_after(client, uri) == []
    assert "my.own.Operator" in await complete(client, uri, 8, 11)
    hover = await client.text_document_hover_async(
        types.HoverParams(types.TextDocumentIdentifier(uri), types.Position(8, 14))
    )
    assert hover is not None and isinstance(hover.contents, types.MarkupContent)
    assert "Our own step." in hover.contents.value and "`depth`" in hover.contents.value
