"""``textDocument/inlineCompletion`` on the mock backend, through the in-process server: the
capability, the item the editors show as ghost text, unsaved edits and the setting that turns
it off."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.server.conftest import InProcessServer

URI = "file:///w/calc.py"


def open_document(server: InProcessServer, text: str, uri: str = URI) -> None:
    """Open ``uri`` with ``text`` (never saved: the file does not exist)."""
    item = {"uri": uri, "languageId": "python", "version": 1, "text": text}
    server.notify("textDocument/didOpen", {"textDocument": item})


async def inline(server: InProcessServer, line: int, character: int) -> dict[str, Any]:
    """The response to an inline completion at ``line``/``character``."""
    return await server.request(
        "textDocument/inlineCompletion",
        {
            "textDocument": {"uri": URI},
            "position": {"line": line, "character": character},
            "context": {"triggerKind": 2},
        },
    )


async def test_the_capability_is_advertised(fresh: InProcessServer) -> None:
    result = await fresh.initialize({"backend": "mock"})
    assert result["capabilities"]["inlineCompletionProvider"] == {}


async def test_the_mock_completes_at_the_cursor(server: InProcessServer) -> None:
    open_document(server, "import math\n\ndef area(r):\n    return \n")
    response = await inline(server, 3, 11)
    assert response["result"] == {"items": [{"insertText": "sage_mock_completion(line=4)"}]}


async def test_unsaved_edits_are_what_the_model_sees(server: InProcessServer) -> None:
    open_document(server, "x = 1\n")
    change = {
        "range": {"start": {"line": 0, "character": 0}, "end": {"line": 0, "character": 0}},
        "text": "a = 0\nb = 0\n",
    }
    server.notify(
        "textDocument/didChange",
        {"textDocument": {"uri": URI, "version": 2}, "contentChanges": [change]},
    )
    response = await inline(server, 2, 4)
    assert response["result"]["items"] == [{"insertText": "sage_mock_completion(line=3)"}]


async def test_the_setting_turns_it_off(fresh: InProcessServer) -> None:
    await fresh.initialize({"backend": "mock", "completion": {"enabled": False}})
    open_document(fresh, "x = 1\n")
    response = await inline(fresh, 0, 5)
    assert response["result"] == {"items": []}


async def test_a_document_not_open_is_read_from_disk(
    server: InProcessServer, tmp_path: Path
) -> None:
    path = tmp_path / "on_disk.py"
    path.write_text("a = 1\nb = \n")
    params = {
        "textDocument": {"uri": path.as_uri()},
        "position": {"line": 1, "character": 4},
        "context": {"triggerKind": 1},
    }
    response = await server.request("textDocument/inlineCompletion", params)
    assert response["result"]["items"] == [{"insertText": "sage_mock_completion(line=2)"}]
    missing = {**params, "textDocument": {"uri": (tmp_path / "gone.py").as_uri()}}
    response = await server.request("textDocument/inlineCompletion", missing)
    assert response["error"]["code"] == -32602
    assert "gone.py" in response["error"]["message"]
