"""Editor context laid out for the model, the budget, and a fix read back from an answer (the
quick tier; through the server: tests/lsp/test_editor_context.py and test_code_actions.py)."""

from __future__ import annotations

import pytest

from sage_lsp import protocol
from sage_lsp.backends.base import ChatRequest
from sage_lsp.backends.mock import mock_answer
from sage_lsp.chat.editor_context import (
    Excerpt,
    fenced_code,
    problem,
    reindented,
    with_context,
    within_budget,
)
from sage_lsp.core.types import Message


def numbered_file(name: str, count: int, width: int = 20) -> Excerpt:
    return Excerpt(name, 1, tuple(f"{n:0{width}d}" for n in range(count)), "py")


def test_a_block_is_labelled_numbered_and_lists_its_diagnostics() -> None:
    diagnostic = {
        "range": {"start": {"line": 9, "character": 0}, "end": {"line": 9, "character": 1}},
        "severity": 2,
        "code": 7,
        "message": "unused",
    }
    excerpt = Excerpt("src/a.py", 9, ("x = 1", "y = ```"), "python", (problem(diagnostic),))
    assert with_context("Why?", [excerpt]) == (
        "src/a.py:9-10\n"
        "````python\n"  # longer than any fence in the code
        " 9 | x = 1\n"
        "10 | y = ```\n"
        "````\n"
        "Diagnostics in src/a.py:\n"
        "- warning, line 10: unused (7)\n\n"
        "Why?"
    )
    assert with_context("Why?", []) == "Why?"


def test_under_the_budget_nothing_changes() -> None:
    excerpts = [numbered_file("a.py", 10), numbered_file("b.py", 5)]
    assert within_budget(excerpts, 1000) == excerpts


def test_over_the_budget_the_largest_are_cut_to_one_size_and_the_small_stay_whole() -> None:
    small, middle, large = (numbered_file(n, c) for n, c in (("s", 2), ("m", 40), ("l", 400)))
    fitted = within_budget([large, small, middle], 300)
    assert fitted[1] == small and not fitted[1].truncated
    assert fitted[0].truncated and fitted[2].truncated
    sizes = [len(e.render()) for e in fitted]
    assert sum(sizes) <= 300 * 4
    assert abs(sizes[0] - sizes[2]) < 60  # cut to the same size, give or take a line and the note
    assert fitted[0].label == "l:1-400" and fitted[0].left_out == 400 - len(fitted[0].lines)
    assert fitted[0].render().splitlines()[-1].startswith(f"(lines {len(fitted[0].lines) + 1}-400")


def test_a_block_is_never_dropped_whole_even_one_long_line() -> None:
    (fitted,) = within_budget([Excerpt("min.js", 1, ("x" * 10_000,), "js")], 100)
    assert fitted.truncated and len(fitted.lines) == 1 and fitted.lines[0].endswith("…")
    assert len(fitted.render()) <= 400
    many = within_budget([numbered_file(f"f{n}.py", 200) for n in range(30)], 100)
    assert all(len(e.lines) >= 1 and e.truncated for e in many)


@pytest.mark.parametrize(
    ("answer", "code"),
    [
        ("Sure:\n```python\n    return a + b\n```\nDone.", "return a + b"),
        ("1. Change it:\n   ```\n   3 | if x:\n   4 |     y()\n   ```", "if x:\n    y()"),
        ("```\n3 | a\nb\n```", "3 | a\nb"),  # numbers only on some lines: kept
        ("~~~\nfirst\n~~~\n```\nsecond\n```", "first"),
        ("No code here.", None),
    ],
)
def test_the_first_fenced_block_of_an_answer(answer: str, code: str | None) -> None:
    assert fenced_code(answer) == code


@pytest.mark.parametrize(
    ("before", "line_end", "text"),
    [
        ("", True, "    if x:\n        y()\n"),  # whole lines
        ("    ", False, "if x:\n        y()"),  # from after the indentation
        ("    z = 1; ", False, "if x:\n        y()"),  # from inside the line
    ],
)
def test_a_replacement_takes_the_ranges_indentation(before: str, line_end: bool, text: str) -> None:
    assert reindented("if x:\n    y()\n", "    ", before, line_end) == text


def test_blank_lines_of_a_replacement_get_no_indentation() -> None:
    assert reindented("a\n\nb", "\t", "", True) == "\ta\n\n\tb\n"


def test_the_mock_answers_a_fix_request_with_its_lines_and_a_comment() -> None:
    excerpt = Excerpt("calc.py", 3, ("    s = s - p", "    return s"), "python")
    question = f"Fix the code of {excerpt.label}.\n\n{excerpt.render()}\n\nFix it."
    answer = mock_answer(ChatRequest((Message("user", question),)))
    assert answer == "```python\n    # fixed by the mock backend\n    s = s - p\n    return s\n```"
    assert fenced_code(answer) == "# fixed by the mock backend\ns = s - p\nreturn s"
    lua = Excerpt("m.lua", 1, ("x()",), "lua").render()
    assert "-- fixed" in mock_answer(
        ChatRequest((Message("user", f"Fix the code of m.lua:1.\n\n{lua}"),))
    )


@pytest.mark.parametrize(
    ("context", "error"),
    [
        ({}, "context must be an array, not dict"),
        ([{"range": {}}], "context[0].uri is required"),
        (
            [{"uri": "u", "diagnostics": [1]}],
            "context[0].diagnostics[0] must be an object, not int",
        ),
        ([{"uri": "u", "range": []}], "context[0].range must be an object, not list"),
    ],
)
def test_context_params_are_checked_naming_the_field(context: object, error: str) -> None:
    with pytest.raises(protocol.InvalidParams, match=error.replace("[", r"\[")):
        protocol.from_wire(protocol.ChatParams, {"message": "q", "context": context})
