"""Unit tests of the pipeline-file text functions: ranges, completion contexts, hover."""

from __future__ import annotations

import pytest

from sage_lsp.pipeline.catalog import Operator
from sage_lsp.pipeline.document import (
    Completions,
    Span,
    complete,
    diagnose,
    hover,
    is_pipeline_file,
    split_lines,
)

CATALOG = {
    "a.Source": Operator("a.Source", "source", "Reads things.", params={"path": "Where."}),
    "a.Map": Operator("a.Map", "stage", "Maps things.", "map", {"depth": "How deep."}),
    "a.Sink": Operator("a.Sink", "sink", "Writes things."),
    "a.Tool": Operator("a.Tool", "service", "Helps."),
}

PLAN = """\
pipeline:
  name: demo
  type: local
source:
  class: a.Source
stages:
  - id: one
    kind: map
    class: a.Map
sink:
  class: a.Sink
"""


def spans(text: str) -> list[tuple[Span, str, str]]:
    return [(f.span, f.severity, f.message) for f in diagnose(text, set(CATALOG))]


def labels(found: Completions | None) -> list[str]:
    assert found is not None
    return [s.label for s in found.items]


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("file:///w/rag.sage.yaml", True),
        ("file:///w/rag.SAGE.yml", True),
        ("file:///w/pipelines/rag.yaml", True),
        ("file:///w/pipelines/sub/rag.yml", True),
        ("file:///w/my%20pipelines/rag.yaml", False),
        ("file:///w/pipelines.yaml", False),
        ("file:///w/config/rag.yaml", False),
        ("file:///w/pipelines/readme.md", False),
        ("untitled:Untitled-1", False),
    ],
)
def test_which_files_are_pipeline_files(uri: str, expected: bool) -> None:
    assert is_pipeline_file(uri) is expected


def test_a_good_plan_has_no_findings() -> None:
    assert spans(PLAN) == []


def test_unknown_and_missing_keys() -> None:
    text = PLAN.replace("  type: local\n", "  kind: local\n").replace("    kind: map\n", "")
    assert spans(text) == [
        (
            Span(2, 2, 2, 6),
            "error",
            "pipeline.kind: unknown key (allowed: name, description, version, type)",
        ),
        (Span(0, 0, 0, 8), "error", "pipeline.type: is required"),
        # a list item has no key: its first key stands for it
        (Span(6, 4, 6, 6), "error", "stages[0].kind: is required"),
    ]


def test_a_missing_top_level_part_marks_the_first_key() -> None:
    text = PLAN.split("sink:")[0]
    assert spans(text) == [(Span(0, 0, 0, 8), "error", "sink: is required")]


def test_bad_values_mark_the_value() -> None:
    text = PLAN.replace("type: local", "type: cluster").replace("kind: map", "kind: 'mapp'")
    assert spans(text) == [
        (Span(2, 8, 2, 15), "error", "pipeline.type: 'cluster' is not one of local, remote"),
        (
            Span(7, 10, 7, 16),
            "error",
            "stages[0].kind: 'mapp' is not one of map, batch, service, flatmap, filter, keyby",
        ),
    ]


def test_an_empty_value_or_a_block_collection_marks_its_key() -> None:
    text = PLAN.replace("  class: a.Source", "  class:").replace(
        "stages:\n", "stages:\n  first:\n    - x\n"
    )
    text = "\n".join(line for line in text.splitlines() if not line.startswith("  - id: one"))
    found = spans(text.split("    kind: map")[0] + "sink:\n  class: a.Sink\n")
    assert found == [
        (
            Span(4, 2, 4, 7),
            "error",
            "source.class: must be a non-empty string (a dotted class path)",
        ),
        (Span(5, 0, 5, 6), "error", "stages: must be a list, not a mapping"),
    ]


def test_duplicate_ids_and_uncatalogued_classes() -> None:
    text = PLAN + "  - id: one\n    kind: filter\n    class: my.Filter\n"
    text = text.replace("sink:\n  class: a.Sink\n", "") + "sink:\n  class: a.Sink\n"
    assert spans(text) == [
        (
            Span(11, 11, 11, 20),
            "warning",
            "stages[1].class: 'my.Filter' is not in the operator catalog",
        ),
        (Span(9, 8, 9, 11), "error", "stages[1].id: duplicate id 'one' (also stages[0])"),
    ]


def test_a_list_item_that_is_not_a_mapping_marks_the_item() -> None:
    text = PLAN.replace("sink:", "  - just text\nsink:")
    assert (Span(9, 4, 9, 13), "error", "stages[1]: must be a mapping, not a string") in spans(text)


def test_columns_are_code_points() -> None:
    text = PLAN.replace("type: local", "type: 🚀x")
    assert spans(text)[0][0] == Span(2, 8, 2, 10)  # the server converts to the client's units


def test_yaml_syntax_errors_are_one_error_at_the_mark() -> None:
    assert spans("pipeline:\n  name: a: b\n") == [
        (Span(1, 9, 1, 12), "error", "YAML syntax error: mapping values are not allowed here")
    ]
    assert spans("a: 1\n---\nb: 2\n")[0][2] == (
        "YAML syntax error: expected a single document in the stream, but found another document"
    )
    assert spans("pipeline:\n\tname: x\n")[0][0].start_line == 1


def test_a_plan_that_is_not_a_mapping() -> None:
    assert spans("") == [(Span(0, 0, 0, 0), "error", "a plan must be a mapping, not empty")]
    assert spans("- a\n") == [(Span(0, 0, 1, 0), "error", "a plan must be a mapping, not a list")]


def test_windows_line_breaks() -> None:
    assert split_lines("a\r\nb\rc\n") == ["a", "b", "c", ""]
    assert spans(PLAN.replace("type: local", "type: x").replace("\n", "\r\n"))[0][0] == Span(
        2, 8, 2, 9
    )


def test_top_level_keys_not_yet_present() -> None:
    found = complete("pipeline:\n  name: x\nso\n", 2, 2, CATALOG)
    assert found is not None
    assert labels(found) == [
        "source",
        "stages",
        "sink",
        "services",
        "monitors",
        "notes",
        "environment",
    ]
    assert found.replace == Span(2, 0, 2, 2)
    assert found.items[0].insert_suffix == ": "


def test_keys_of_a_stage_item() -> None:
    text = "stages:\n  - id: a\n    \n    class: x\n  - id: b\nsink:\n"
    assert labels(complete(text, 2, 4, CATALOG)) == ["kind", "params", "summary"]
    text = "stages:\n  - id: a\n    kind: map\n  - \n"
    assert labels(complete(text, 3, 4, CATALOG)) == ["id", "kind", "class", "params", "summary"]
    # an indentless list
    text = "stages:\n- id: a\n  kind: map\n  cl\n"
    assert labels(complete(text, 3, 4, CATALOG)) == ["class", "params", "summary"]


def test_keys_of_other_parts() -> None:
    assert labels(complete("environment:\n  host: x\n  \n", 2, 2, CATALOG)) == ["config", "port"]
    assert labels(complete("services:\n  - \n", 1, 4, CATALOG)) == ["name", "class", "params"]
    assert labels(complete("sink:\n  \n", 1, 2, CATALOG)) == ["class", "params"]


def test_no_keys_inside_free_form_parts() -> None:
    assert complete("stages:\n  - id: a\n    params:\n      \n", 3, 6, CATALOG) is None
    assert complete("notes:\n  \n", 1, 2, CATALOG) is None
    assert complete("pipeline:\n  name: some", 1, 12, CATALOG) is None


def test_completing_over_an_existing_key_keeps_its_colon() -> None:
    found = complete("pipeline:\n  nme: x\n", 1, 3, CATALOG)
    assert found is not None and found.replace == Span(1, 2, 1, 5)
    assert found.items[0].insert_suffix == ""


def test_values() -> None:
    text = (
        "pipeline:\n  type: \nsource:\n  kind: \n  class: \nstages:\n  - kind: ma\n    class: a.\n"
    )
    assert labels(complete(text, 1, 8, CATALOG)) == ["local", "remote"]
    assert complete(text, 3, 8, CATALOG) is None  # a source's kind is free
    assert labels(complete(text, 4, 9, CATALOG)) == ["a.Source"]
    kinds = complete(text, 6, 11, CATALOG)
    assert labels(kinds)[:2] == ["map", "batch"] and kinds is not None
    assert kinds.replace == Span(6, 10, 6, 12)
    classes = complete(text, 7, 13, CATALOG)
    assert labels(classes) == ["a.Map"] and classes is not None
    assert classes.replace == Span(7, 11, 7, 13)
    assert "How deep." in classes.items[0].documentation
    assert labels(complete("sink:\n  class: \n", 1, 9, CATALOG)) == ["a.Sink"]
    assert labels(complete("services:\n  - class: \n", 1, 11, CATALOG)) == ["a.Tool"]


def test_hover_on_a_class_and_a_kind() -> None:
    found = hover(PLAN, 8, 12, CATALOG)
    assert found is not None and found.span == Span(8, 11, 8, 16)
    assert found.markdown == (
        "**a.Map** (stage, map)\n\nMaps things.\n\nParameters:\n- `depth`: How deep."
    )
    kind = hover(PLAN, 7, 4, CATALOG)
    assert kind is not None and kind.markdown.startswith("**map** stage: one output record")
    unknown = hover(PLAN.replace("a.Map", "b.Other"), 8, 12, CATALOG)
    assert unknown is not None and unknown.markdown == "**b.Other** is not in the operator catalog."
    assert hover(PLAN, 1, 4, CATALOG) is None
    assert hover(PLAN, 8, 1, CATALOG) is None
    assert hover(PLAN, 99, 0, CATALOG) is None


def test_nothing_raises_on_half_typed_text() -> None:
    text = PLAN + "services:\n  - name: t\n    class: a.Tool\nenvironment: {port: 1}\n"
    for end in range(len(text) + 1):
        part = text[:end]
        lines = part.split("\n")
        diagnose(part, set(CATALOG))
        complete(part, len(lines) - 1, len(lines[-1]), CATALOG)
        hover(part, len(lines) - 1, len(lines[-1]), CATALOG)
        for cut in ("- ", ":", "  "):
            diagnose(part.replace(cut, "", 1) + text[end:], set(CATALOG))
