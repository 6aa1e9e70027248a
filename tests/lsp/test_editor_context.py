"""``sage/chat`` with editor context: what the model is shown, through the real server to a
recording OpenAI-compatible server (the prompt the model got is asserted on)."""

from __future__ import annotations

from typing import Any

import pytest
from pygls.exceptions import JsonRpcException
from pytest_lsp import LanguageClient

from sage_lsp import protocol
from tests.lsp.conftest import request
from tests.lsp.editor_session import editor, editor_of, lines_range, opened
from tests.lsp.test_chat_openai import use_server
from tests.support.openai_server import OpenAIServer

__all__ = ["editor"]
pytestmark = pytest.mark.slow  # a server process each: in `make test`, not `make test-fast`

SAVED = "def add(a, b):\n    return a - b\n\n\nprint(add(1, 2))\n"
EDITED = "# café ☕ 🐍 naïve\ndef add(a, b):\n    return a + b  # ✓ fixed\n\nprint(add(1, 2))\n"


def prompt_of(server: OpenAIServer, index: int = -1) -> list[dict[str, Any]]:
    """The messages of a chat request the model server got."""
    messages: list[dict[str, Any]] = server.requests[index]["messages"]
    return messages


async def test_unsaved_edits_reach_the_model_and_follow_ups_still_see_them(
    editor: LanguageClient, openai_server: OpenAIServer
) -> None:
    ed, uri = await opened(editor, SAVED, openai_server)
    (ed.root / "calc.py").write_text(SAVED)
    ed.change(uri, EDITED)  # never saved
    chosen = lines_range(1, 3)
    result = await request(
        editor,
        protocol.CHAT,
        {"message": "What does this do?", "context": [{"uri": uri, "range": chosen}]},
    )
    question = prompt_of(openai_server)[-1]["content"]
    assert question == (
        "calc.py:2-3\n"
        "```python\n"
        "2 | def add(a, b):\n"
        "3 |     return a + b  # ✓ fixed\n"
        "```\n\n"
        "What does this do?"
    )
    assert result["context"] == [{"uri": uri, "range": chosen, "truncated": False}]
    await request(editor, protocol.CHAT, {"message": "And then?", "chatId": result["chatId"]})
    follow_up = prompt_of(openai_server)
    assert follow_up[1]["content"] == question and follow_up[-1]["content"] == "And then?"


async def test_a_file_that_is_not_open_is_read_from_disk(
    editor: LanguageClient, openai_server: OpenAIServer
) -> None:
    await use_server(editor, openai_server)
    ed = editor_of(editor)
    (ed.root / "pkg").mkdir()
    (ed.root / "pkg" / "util.lua").write_text("local M = {}\n\nreturn M\n")
    uri = ed.uri("pkg/util.lua")
    result = await request(editor, protocol.CHAT, {"message": "Explain", "context": [{"uri": uri}]})
    question = prompt_of(openai_server)[-1]["content"]
    assert question.startswith(
        "pkg/util.lua:1-3\n```lua\n1 | local M = {}\n2 | \n3 | return M\n```"
    )
    assert result["context"] == [{"uri": uri, "truncated": False}]


async def test_a_range_shows_every_line_it_touches(
    editor: LanguageClient, openai_server: OpenAIServer
) -> None:
    """Whole lines, numbered; a range that ends at the start of a line leaves that line out.
    (Columns in the negotiated encoding matter to sage.fix: tests/lsp/test_code_actions.py.)"""
    ed, uri = await opened(editor, EDITED, openai_server)
    chosen = {"start": ed.position(uri, 0, "# café"), "end": ed.position(uri, 2, "    return")}
    await request(
        editor, protocol.CHAT, {"message": "Q", "context": [{"uri": uri, "range": chosen}]}
    )
    assert prompt_of(openai_server)[-1]["content"].startswith(
        "calc.py:1-3\n```python\n1 | # café ☕ 🐍 naïve\n2 | def add(a, b):\n3 |     return"
    )
    context = [{"uri": uri, "range": lines_range(1, 2)}]
    await request(editor, protocol.CHAT, {"message": "Q", "context": context})
    assert prompt_of(openai_server)[-1]["content"].startswith("calc.py:2\n```python\n2 | def add")


async def test_diagnostics_are_listed_under_the_code(
    editor: LanguageClient, openai_server: OpenAIServer
) -> None:
    _, uri = await opened(editor, SAVED, openai_server)
    diagnostic = {
        "range": {"start": {"line": 1, "character": 11}, "end": {"line": 1, "character": 16}},
        "severity": 1,
        "source": "mypy",
        "code": "operator",
        "message": "Unsupported operand\n  types",
    }
    hint = {**diagnostic, "severity": 4, "source": None, "code": None, "message": "a - b?"}
    context = [{"uri": uri, "range": lines_range(0, 2), "diagnostics": [diagnostic, hint]}]
    await request(editor, protocol.CHAT, {"message": "Why?", "context": context})
    assert prompt_of(openai_server)[-1]["content"] == (
        "calc.py:1-2\n```python\n1 | def add(a, b):\n2 |     return a - b\n```\n"
        "Diagnostics in calc.py:\n"
        "- error, line 2: Unsupported operand types (mypy operator)\n"
        "- hint, line 2: a - b?\n\n"
        "Why?"
    )


async def test_over_the_budget_the_largest_is_shortened_and_none_is_dropped(
    editor: LanguageClient, openai_server: OpenAIServer
) -> None:
    await use_server(editor, openai_server)
    ed = editor_of(editor)
    big = ed.open("big.py", "".join(f"value_{n} = {n}\n" for n in range(400)))
    small = ed.open("small.py", "x = 1\n")
    result = await request(
        editor,
        protocol.CHAT,
        {
            "message": "Summarise",
            "context": [{"uri": big}, {"uri": small}],
            "backend": {"contextTokens": 200},
        },
    )
    assert [c["truncated"] for c in result["context"]] == [True, False]
    question = prompt_of(openai_server)[-1]["content"]
    assert len(question) <= 200 * 4 + len("\n\nSummarise")
    assert question.startswith("big.py:1-400\n```python\n  1 | value_0 = 0\n")
    assert "(lines " in question and "-400 left out to fit the context budget)" in question
    assert "small.py:1\n```python\n1 | x = 1\n```" in question


async def test_the_context_fits_a_small_model_context(
    editor: LanguageClient, openai_server: OpenAIServer
) -> None:
    openai_server.max_model_len = 512
    await use_server(editor, openai_server)
    ed = editor_of(editor)
    uri = ed.open("big.py", "".join(f"value_{n} = {n}  # a comment\n" for n in range(300)))
    result = await request(
        editor,
        protocol.CHAT,
        {"message": "Summarise", "context": [{"uri": uri}], "backend": {"maxTokens": 64}},
    )
    assert result["text"] == "Hello, world!"  # vLLM's 400 for a prompt too long never came
    assert result["trimmed"]["cutChars"] > 0 and result["trimmed"]["promptTokens"] <= 512 - 64
    assert result["context"] == [{"uri": uri, "truncated": True}]
    question = prompt_of(openai_server)[-1]["content"]
    assert question.startswith("big.py:1-300\n```python\n  1 | value_0 = 0  # a comment\n")
    assert question.endswith("Summarise")


@pytest.mark.parametrize(
    ("ref", "error"),
    [
        ({"uri": "file:///nowhere/gone.py"}, "context[0].uri: no such file: /nowhere/gone.py"),
        ({"uri": "untitled:Untitled-1"}, "context[0].uri: untitled:Untitled-1 is not open"),
        ({"range": lines_range(0, 1)}, "context[0].uri is required"),
        ({"uri": "OPEN", "range": {"start": {"line": 0}}}, "context[0].range must be an LSP Range"),
        ({"uri": "OPEN", "range": lines_range(2, 1)}, "context[0].range ends before it starts"),
        (
            {"uri": "OPEN", "diagnostics": [{"message": "m"}]},
            "context[0].diagnostics[0].range must",
        ),
    ],
)
async def test_a_bad_reference_is_invalid_params(
    editor: LanguageClient, ref: dict[str, Any], error: str
) -> None:
    if ref.get("uri") == "OPEN":
        ref = {**ref, "uri": editor_of(editor).open("calc.py", SAVED)}
    with pytest.raises(JsonRpcException) as caught:
        await request(editor, protocol.CHAT, {"message": "Q", "context": [ref]})
    assert caught.value.code == protocol.INVALID_PARAMS
    assert error in caught.value.message
