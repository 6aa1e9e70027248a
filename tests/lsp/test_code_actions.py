"""The code actions "Sage: explain" and "Sage: fix", and ``sage.fix`` through
``workspace/applyEdit``, applied by the test's client to its own copy of the document."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pytest_lsp import LanguageClient

from sage_lsp import protocol
from tests.lsp.conftest import as_dict
from tests.lsp.editor_session import NEOVIM, VSCODE, editor, editor_of, lines_range, opened
from tests.lsp.test_chat_openai import use_server
from tests.support.openai_server import OpenAIServer, Reply

__all__ = ["editor"]
pytestmark = pytest.mark.slow  # a server process each: in `make test`, not `make test-fast`

CODE = "def total(prices):\n    s = 0\n    for p in prices:\n        s = s - p\n    return s\n"
DIAGNOSTIC = {
    "range": {"start": {"line": 3, "character": 8}, "end": {"line": 3, "character": 17}},
    "severity": 2,
    "source": "lint",
    "message": "subtracts instead of adding",
}


async def actions(
    client: LanguageClient,
    uri: str,
    chosen: dict[str, Any],
    diagnostics: list[dict[str, Any]] | None = None,
    only: list[str] | None = None,
) -> list[dict[str, Any]] | None:
    params = {
        "textDocument": {"uri": uri},
        "range": chosen,
        "context": {"diagnostics": diagnostics or [], **({"only": only} if only else {})},
    }
    converter = client.protocol._converter
    typed = converter.structure(params, types.CodeActionParams)
    found = await client.protocol.send_request_async(types.TEXT_DOCUMENT_CODE_ACTION, typed)
    if found is None:
        return None
    return [converter.unstructure(action) for action in found]


async def fix(client: LanguageClient, args: dict[str, Any], msg_id: str | None = None) -> Any:
    params = types.ExecuteCommandParams(command=protocol.COMMAND_FIX, arguments=[args])
    return as_dict(
        await client.protocol.send_request_async(
            types.WORKSPACE_EXECUTE_COMMAND, params, msg_id=msg_id
        )
    )


async def test_both_actions_on_a_selection_and_only_sage_fix_is_the_servers(
    editor: LanguageClient,
) -> None:
    commands = editor.init_result.capabilities.execute_command_provider  # type: ignore[attr-defined]
    assert list(commands.commands) == [protocol.COMMAND_FIX]
    uri = editor_of(editor).open("calc.py", CODE)
    chosen = lines_range(1, 4)
    found = await actions(editor, uri, chosen)
    assert found == [
        {
            "title": "Sage: explain",
            "kind": "refactor",
            "command": {
                "title": "Sage: explain",
                "command": "sage.explain",
                "arguments": [{"uri": uri, "range": chosen}],
            },
        },
        {
            "title": "Sage: fix",
            "kind": "refactor.rewrite",
            "command": {
                "title": "Sage: fix",
                "command": "sage.fix",
                "arguments": [{"uri": uri, "range": chosen}],
            },
        },
    ]


async def test_no_action_at_a_bare_cursor_and_quick_fixes_on_a_diagnostic(
    editor: LanguageClient,
) -> None:
    uri = editor_of(editor).open("calc.py", CODE)
    cursor = {"start": {"line": 3, "character": 9}, "end": {"line": 3, "character": 9}}
    assert await actions(editor, uri, cursor) is None
    found = await actions(editor, uri, cursor, [DIAGNOSTIC])
    assert found is not None
    assert [(a["title"], a["kind"]) for a in found] == [
        ("Sage: explain", "quickfix"),
        ("Sage: fix", "quickfix"),
    ]
    whole_line = lines_range(3, 4)  # the lines the diagnostic covers
    for action in found:
        assert action["diagnostics"] == [DIAGNOSTIC]
        assert action["command"]["arguments"] == [
            {"uri": uri, "range": whole_line, "diagnostics": [DIAGNOSTIC]}
        ]
    assert await actions(editor, uri, lines_range(1, 4), only=["source"]) is None


@pytest.mark.parametrize("editor", [VSCODE, NEOVIM], indirect=True)
async def test_the_mock_fix_replaces_exactly_the_range_reindented(editor: LanguageClient) -> None:
    ed, uri = await opened(editor, CODE)
    result = await fix(
        editor, {"uri": uri, "range": lines_range(2, 4), "diagnostics": [DIAGNOSTIC]}
    )
    expected = "    # fixed by the mock backend\n    for p in prices:\n        s = s - p\n"
    assert result == {"applied": True, "text": expected}
    assert ed.texts[uri] == CODE.replace("    for p in prices:\n        s = s - p\n", expected)
    (edit,) = ed.edits
    if ed.encoding == "utf-16":  # VS Code takes versioned edits: tied to the synced version
        assert edit["documentChanges"][0].text_document.version == 1
    else:  # Neovim 0.11's capabilities in pytest-lsp do not say it does
        assert list(edit["changes"]) == [uri]


@pytest.mark.parametrize("editor", [VSCODE, NEOVIM], indirect=True)
async def test_a_range_inside_a_line_counts_columns_in_the_negotiated_encoding(
    editor: LanguageClient, openai_server: OpenAIServer
) -> None:
    ed, uri = await opened(editor, 'if ok:\n    label = "café ☕ 🐍"; n = 1 +  2\n', openai_server)
    line = '    label = "café ☕ 🐍"; '
    chosen = {"start": ed.position(uri, 1, line), "end": ed.position(uri, 1, line + "n = 1 +  2")}
    openai_server.reply = Reply(tokens=["Here:\n```python\n", "n = 1 + 2\n", "```\nDone."])
    result = await fix(editor, {"uri": uri, "range": chosen, "instruction": "spacing"})
    question = openai_server.requests[-1]["messages"][-1]["content"]
    assert question == (
        "Fix the code of calc.py:2.\n\ncalc.py:2\n```python\n2 | n = 1 +  2\n```\n\nspacing"
    )
    assert result == {"applied": True, "text": "n = 1 + 2"}
    assert ed.texts[uri] == 'if ok:\n    label = "café ☕ 🐍"; n = 1 + 2\n'


async def test_an_answer_is_reindented_to_the_range_and_numbers_copied_are_removed(
    editor: LanguageClient, openai_server: OpenAIServer
) -> None:
    ed, uri = await opened(editor, CODE, openai_server)
    answer = "```\n3 | for p in prices:\n4 |     s = s + p\n```"
    openai_server.reply = Reply(tokens=[answer])
    result = await fix(editor, {"uri": uri, "range": lines_range(2, 4)})
    assert result["text"] == "    for p in prices:\n        s = s + p\n"
    assert ed.texts[uri] == CODE.replace("s - p", "s + p")
    assert "Fix the problems listed." in openai_server.requests[-1]["messages"][-1]["content"]


async def test_a_fix_keeps_the_documents_crlf_line_ends(editor: LanguageClient) -> None:
    crlf = CODE.replace("\n", "\r\n")
    ed, uri = await opened(editor, crlf)
    result = await fix(editor, {"uri": uri, "range": lines_range(3, 4)})
    assert result["text"] == "        # fixed by the mock backend\r\n        s = s - p\r\n"
    assert ed.texts[uri] == crlf.replace("        s = s - p", result["text"][:-2], 1)


async def test_a_refused_edit_is_applied_false_and_changes_nothing(editor: LanguageClient) -> None:
    ed, uri = await opened(editor, CODE)
    ed.apply = False
    result = await fix(editor, {"uri": uri, "range": lines_range(3, 4)})
    assert result["applied"] is False and "fixed by the mock backend" in result["text"]
    assert ed.texts[uri] == CODE


async def test_cancel_closes_the_stream_to_the_model(
    editor: LanguageClient, openai_server: OpenAIServer
) -> None:
    ed, uri = await opened(editor, CODE, openai_server)
    openai_server.reply = Reply(tokens=[f"w{n} " for n in range(2000)], delay=0.02)
    pending = asyncio.ensure_future(fix(editor, {"uri": uri, "range": lines_range(3, 4)}, "fix-1"))
    for _ in range(500):
        if openai_server.streams and openai_server.streams[-1].chunks_sent >= 3:
            break
        await asyncio.sleep(0.01)
    cancelled_at = time.monotonic()
    editor.cancel_request(types.CancelParams(id="fix-1"))
    with pytest.raises(JsonRpcException) as caught:
        await asyncio.wait_for(pending, 5)
    assert caught.value.code == protocol.REQUEST_CANCELLED
    stream = openai_server.streams[-1]
    assert await asyncio.to_thread(stream.done.wait, 2)
    assert stream.client_gone_at is not None and stream.client_gone_at - cancelled_at < 0.2
    assert ed.edits == [] and ed.texts[uri] == CODE


@pytest.mark.parametrize(
    ("args", "code", "error"),
    [
        ({"uri": "OPEN"}, protocol.INVALID_PARAMS, "arguments[0].range is required"),
        (
            {"uri": "OPEN", "range": lines_range(1, 1)},
            protocol.INVALID_PARAMS,
            "invalid params for sage.fix: arguments[0].range is empty",
        ),
        (
            {"uri": "file:///nowhere/gone.py", "range": lines_range(0, 1)},
            protocol.INVALID_PARAMS,
            "arguments[0].uri: no such file",
        ),
        (
            {"uri": "OPEN", "range": lines_range(0, 1), "instruction": "NO FENCE"},
            protocol.BACKEND_UNAVAILABLE,
            "no fenced code block",
        ),
    ],
)
async def test_bad_arguments_and_an_answer_without_code_are_clear_errors(
    editor: LanguageClient, openai_server: OpenAIServer, args: dict[str, Any], code: int, error: str
) -> None:
    await use_server(editor, openai_server)
    openai_server.reply = Reply(tokens=["I would rather not."])
    if args["uri"] == "OPEN":
        args = {**args, "uri": editor_of(editor).open("calc.py", CODE)}
    with pytest.raises(JsonRpcException) as caught:
        await fix(editor, args)
    assert caught.value.code == code and error in caught.value.message
