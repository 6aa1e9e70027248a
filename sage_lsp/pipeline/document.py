"""Pipeline files as text: diagnostics with exact ranges, completion and hover contexts.

Pure functions over a document's text. Positions are 0-based lines and columns in code points
(Python string indexes, as PyYAML's marks are); the language server converts them to and from
the position encoding it negotiated with the client.
Completion and hover look at the raw text by indentation, since a file being typed is often
not valid YAML.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import unquote, urlparse

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from sage_lsp.pipeline.catalog import Operator
from sage_lsp.pipeline.schema import (
    KEYS,
    PIPELINE_TYPES,
    REQUIRED,
    STAGE_KINDS,
    Problem,
    validate,
)

PIPELINE_SUFFIXES = (".sage.yaml", ".sage.yml")
"""File names ending so are pipeline files wherever they are."""
PIPELINE_FOLDER = "pipelines"
"""YAML files with a folder of this name in their path are pipeline files too."""

KIND_DESCRIPTIONS: dict[str, str] = {
    "map": "one output record for each input record",
    "batch": "reads its input in batches (a source that emits records until it runs out)",
    "service": "calls a registered service for each record",
    "flatmap": "zero or more output records for each input record",
    "filter": "keeps only the records the operator accepts",
    "keyby": "partitions the stream by a key the operator computes",
}
"""What each stage kind does, for hover and completion."""

CLASS_ROLES: dict[str, str] = {
    "source": "source",
    "stages[]": "stage",
    "sink": "sink",
    "services[]": "service",
}
"""The operator role a ``class:`` value has in each part of a plan."""


@dataclass(frozen=True)
class Span:
    """A range in a document: 0-based lines, code-point columns, end exclusive."""

    start_line: int
    start_char: int
    end_line: int
    end_char: int


@dataclass(frozen=True)
class Finding:
    """One diagnostic: where, what, and ``error`` or ``warning``."""

    span: Span
    message: str
    severity: str = "error"


@dataclass(frozen=True)
class Suggestion:
    """One completion item."""

    label: str
    """What is shown and inserted (before ``insert_suffix``)."""
    kind: str
    """``key``, ``kind``, ``type`` or ``class``."""
    detail: str = ""
    """A short line shown next to the label."""
    documentation: str = ""
    """Markdown shown for the selected item."""
    insert_suffix: str = ""
    """Added after the label when inserted (``": "`` after a key)."""


@dataclass(frozen=True)
class Completions:
    """What to offer at a position, and the span of the partly typed word it replaces."""

    replace: Span
    items: list[Suggestion] = field(default_factory=list)


@dataclass(frozen=True)
class HoverInfo:
    """A hover text and the span of the word it describes."""

    span: Span
    markdown: str


# --- files -----------------------------------------------------------------------------------


def is_pipeline_file(uri: str) -> bool:
    """Whether the document at ``uri`` is a pipeline file: ``*.sage.yaml``/``*.sage.yml``
    anywhere, or ``*.yaml``/``*.yml`` with a ``pipelines`` folder in its path."""
    parsed = urlparse(uri)
    path = PurePosixPath(unquote(parsed.path if parsed.scheme else uri).replace("\\", "/"))
    name = path.name.lower()
    if name.endswith(PIPELINE_SUFFIXES):
        return True
    return name.endswith((".yaml", ".yml")) and PIPELINE_FOLDER in path.parts[:-1]


# --- positions -------------------------------------------------------------------------------

_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def split_lines(text: str) -> list[str]:
    """The text's lines without their line breaks (``\\n``, ``\\r\\n`` or ``\\r``)."""
    return _LINE_BREAK.split(text)


def _node_span(node: Node) -> Span:
    start, end = node.start_mark, node.end_mark
    return Span(start.line, start.column, end.line, end.column)


# --- diagnostics -----------------------------------------------------------------------------


def parse(text: str) -> tuple[Node | None, Any]:
    """The node tree (with marks) and the plain data of a one-document YAML text.

    Raises ``yaml.YAMLError`` for text that is not YAML.
    """
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    finally:
        loader.dispose()
    return node, data


def diagnose(text: str, known_classes: set[str] | None = None) -> list[Finding]:
    """Every problem of a pipeline file, each at the range it is about.

    A YAML syntax error is one error at its mark; otherwise :func:`validate`'s problems,
    with operator classes outside ``known_classes`` (when given) as warnings.
    """
    lines = split_lines(text)
    try:
        node, data = parse(text)
    except yaml.YAMLError as exc:
        return [_yaml_error(lines, exc)]
    return [
        Finding(_problem_span(node, p), str(p), p.severity) for p in validate(data, known_classes)
    ]


def _yaml_error(lines: list[str], exc: yaml.YAMLError) -> Finding:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    context = getattr(exc, "context", None)
    if context and not context.startswith("while"):  # "expected a single document in the
        problem = f"{context}, {problem}"  # stream" + ", but found another document"
    message = f"YAML syntax error: {problem}"
    if mark is None:
        return Finding(Span(0, 0, 0, 0), message)
    row, col = mark.line, mark.column
    line = lines[row] if 0 <= row < len(lines) else ""
    end = len(line.rstrip())
    if end <= col:  # at the end of a line: mark one character if there is one
        end = min(col + 1, len(line))
    return Finding(Span(row, col, row, max(end, col)), message)


@dataclass
class _Located:
    key: Node | None
    """The key node of the deepest part found (None at the root and for list items)."""
    value: Node | None
    """The deepest node found."""
    rest: str
    """What of the path was not found."""


def _locate(root: Node | None, path: str) -> _Located:
    """Walk ``path`` (``stages[2].kind``) down the node tree as far as it goes."""
    found = _Located(None, root, path)
    node, rest = root, path
    while rest and node is not None:
        item = re.match(r"\[(\d+)\]", rest)
        if item:
            index = int(item.group(1))
            if not isinstance(node, SequenceNode) or index >= len(node.value):
                break
            node, rest = node.value[index], rest[item.end() :]
            found = _Located(None, node, rest)
            continue
        rest = rest.removeprefix(".")
        if not isinstance(node, MappingNode):
            break
        best: tuple[Node, Node] | None = None
        for key, value in node.value:
            name = key.value if isinstance(key, ScalarNode) else None
            if not isinstance(name, str):
                continue
            matches = rest == name or rest.startswith((name + ".", name + "["))
            if matches and (best is None or len(name) >= len(best[0].value)):
                best = (key, value)
        if best is None:
            break
        node, rest = best[1], rest[len(best[0].value) :]
        found = _Located(best[0], node, rest)
    return found


def _problem_span(root: Node | None, problem: Problem) -> Span:
    if root is None:
        return Span(0, 0, 0, 0)
    found = _locate(root, problem.path)
    value = found.value if found.value is not None else root
    if found.rest:  # a missing key: the parent's key, or the parent mapping's first key
        if found.key is not None:
            return _node_span(found.key)
        if isinstance(value, MappingNode) and value.value:
            return _node_span(value.value[0][0])
        return _node_span(value)
    if problem.message.startswith("unknown key") and found.key is not None:
        return _node_span(found.key)
    if found.key is not None:
        empty = value.start_mark.index == value.end_mark.index
        if empty or (isinstance(value, MappingNode | SequenceNode) and _multiline(value)):
            return _node_span(found.key)
    if isinstance(value, MappingNode) and found.key is None and value.value and _multiline(value):
        return _node_span(value.value[0][0])
    return _node_span(value)


def _multiline(node: Node) -> bool:
    return bool(node.start_mark.line != node.end_mark.line)


# --- the structure of raw text ---------------------------------------------------------------

_LINE = re.compile(r"^(?P<indent> *)(?P<dash>-(?: +|$))?(?P<rest>.*)$")
_KEY = re.compile(r"^(?P<key>[^\s#:'\"][^#:]*?) *:(?: +|$)")


@dataclass(frozen=True)
class _Line:
    dash: int | None
    """The column of a list item's dash, if the line starts one."""
    indent: int
    """The column of the line's content (after any dash)."""
    key: str | None
    """The key the line sets, if any."""
    value: str
    """What follows the key's colon (comment removed), or the whole content."""
    value_start: int
    """The column where :attr:`value` starts."""


def _parse_line(line: str) -> _Line | None:
    """A line's shape; None for blank lines and comments."""
    m = _LINE.match(line)
    if m is None:  # pragma: no cover - the pattern matches every line
        return None
    rest = m.group("rest")
    dash = len(m.group("indent")) if m.group("dash") is not None else None
    indent = m.end("dash") if dash is not None else len(m.group("indent"))
    if not rest.strip() and dash is None:
        return None
    if rest.lstrip().startswith("#"):
        return None if dash is None else _Line(dash, indent, None, "", indent)
    key = _KEY.match(rest)
    if key is None:
        return _Line(dash, indent, None, rest.rstrip(), indent)
    after = rest[key.end() :]
    value = re.sub(r"(^| +)#.*$", "", after).rstrip()
    return _Line(dash, indent, key.group("key").strip(), value, indent + key.end())


def _container(lines: list[str], row: int, here: _Line) -> tuple[list[str], set[str]] | None:
    """The schema path (``["stages[]"]``) of the mapping that the content of ``here`` (the
    line at ``row``) belongs to, and the keys that mapping already has; None if unclear."""
    indent = here.indent
    present: set[str] = set()
    item_dash = here.dash
    parent: tuple[int, _Line] | None = None
    r = row - 1
    while r >= 0:
        info = _parse_line(lines[r])
        r -= 1
        if info is None:
            continue
        if item_dash is None:
            if info.indent == indent:
                if info.key:
                    present.add(info.key)
                if info.dash is not None:
                    item_dash = info.dash
                continue
            if info.indent > indent:
                continue
            if info.dash is not None and info.dash >= indent:  # pragma: no cover - odd indent
                return None
            parent = (r + 1, info)
            break
        # inside a list item: the list's key is above the dash, less indented (or, for an
        # indentless list, at the dash's column without a dash)
        if info.indent < item_dash or (info.indent == item_dash and info.dash is None):
            parent = (r + 1, info)
            break
    present |= _keys_below(lines, row, indent)
    if parent is None:
        return ([], present) if item_dash is None and indent == 0 else None
    prow, pinfo = parent
    if pinfo.key is None or pinfo.value:
        return None
    above = _container(lines, prow, pinfo)
    if above is None:
        return None
    return [*above[0], pinfo.key + ("[]" if item_dash is not None else "")], present


def _keys_below(lines: list[str], row: int, indent: int) -> set[str]:
    keys: set[str] = set()
    for line in lines[row + 1 :]:
        info = _parse_line(line)
        if info is None:
            continue
        if info.indent < indent or (info.dash is not None and info.dash < indent):
            break
        if info.indent == indent and info.dash is None and info.key:
            keys.add(info.key)
    return keys


def _schema(path: list[str]) -> str | None:
    name = ".".join(path)
    return name if name in KEYS else None


# --- completion ------------------------------------------------------------------------------

_TYPING_KEY = re.compile(r"^(?P<indent> *)(?P<dash>- +)?(?P<word>[A-Za-z_]*)$")
_TYPING_VALUE = re.compile(
    r"^(?P<indent> *)(?P<dash>- +)?(?P<key>kind|type|class) *: *(?P<quote>['\"]?)(?P<word>[\w.]*)$"
)


def complete(
    text: str, line: int, character: int, catalog: Mapping[str, Operator]
) -> Completions | None:
    """What may be typed at ``(line, character)``: keys allowed (and not yet present) in the
    mapping being written, the stage kinds after ``kind:`` in a stage, the pipeline types after
    ``type:`` under ``pipeline``, or catalogued operator classes of the part's role after
    ``class:``. None where nothing fits."""
    lines = split_lines(text)
    if not 0 <= line < len(lines):
        return None
    current = lines[line]
    col = min(character, len(current))
    prefix = current[:col]
    typing_value = _TYPING_VALUE.match(prefix)
    if typing_value:
        return _complete_value(lines, line, typing_value, catalog)
    typing_key = _TYPING_KEY.match(prefix)
    if typing_key is None:
        return None
    dash = typing_key.group("dash")
    start = typing_key.start("word")
    here = _Line(len(typing_key.group("indent")) if dash else None, start, None, "", start)
    found = _container(lines, line, here)
    if found is None:
        return None
    schema = _schema(found[0])
    if schema is None:
        return None
    present = found[1]
    end = col + len(re.match(r"[A-Za-z_]*", current[col:]).group())  # type: ignore[union-attr]
    suffix = "" if re.match(r" *:", current[end:]) else ": "
    items = [
        Suggestion(key, "key", _key_detail(schema, key), insert_suffix=suffix)
        for key in KEYS[schema]
        if key not in present
    ]
    return Completions(Span(line, start, line, end), items)


def _key_detail(schema: str, key: str) -> str:
    where = schema or "plan"
    required = " (required)" if key in REQUIRED.get(schema, ()) else ""
    return f"{where} key{required}"


def _complete_value(
    lines: list[str], line: int, typed: re.Match[str], catalog: Mapping[str, Operator]
) -> Completions | None:
    dash = typed.group("dash")
    indent = len(typed.group("indent"))
    here = _Line(indent if dash else None, indent + len(dash or ""), typed.group("key"), "", 0)
    found = _container(lines, line, here)
    if found is None:
        return None
    schema = _schema(found[0])
    key = typed.group("key")
    start = typed.start("word")
    end = typed.end("word")
    end += len(re.match(r"[\w.]*", lines[line][end:]).group())  # type: ignore[union-attr]
    replace = Span(line, start, line, end)
    if key == "kind" and schema == "stages[]":
        items = [Suggestion(k, "kind", KIND_DESCRIPTIONS[k]) for k in STAGE_KINDS]
    elif key == "type" and schema == "pipeline":
        items = [
            Suggestion(t, "type", "runs in this process" if t == "local" else "runs on a cluster")
            for t in PIPELINE_TYPES
        ]
    elif key == "class" and schema in CLASS_ROLES:
        role = CLASS_ROLES[schema]
        items = [
            Suggestion(op.cls, "class", op.description, op.markdown())
            for op in sorted(catalog.values(), key=lambda o: o.cls)
            if op.role == role
        ]
    else:
        return None
    return Completions(replace, items)


# --- hover -----------------------------------------------------------------------------------

_VALUE_LINE = re.compile(
    r"^(?P<indent> *)(?P<dash>- +)?(?P<key>kind|class) *: *(?P<quote>['\"]?)(?P<word>[\w.]+)"
)


def hover(
    text: str, line: int, character: int, catalog: Mapping[str, Operator]
) -> HoverInfo | None:
    """For a ``class:`` line under the cursor, the operator's description and parameters (or
    that it is not catalogued); for a ``kind:`` line, what the kind does. None elsewhere."""
    lines = split_lines(text)
    if not 0 <= line < len(lines):
        return None
    current = lines[line]
    m = _VALUE_LINE.match(current)
    if m is None:
        return None
    col = min(character, len(current))
    if not m.start("key") <= col <= m.end("word"):
        return None
    word = m.group("word")
    span = Span(line, m.start("word"), line, m.end("word"))
    if m.group("key") == "class":
        operator = catalog.get(word)
        if operator is None:
            return HoverInfo(span, f"**{word}** is not in the operator catalog.")
        return HoverInfo(span, operator.markdown())
    if word not in KIND_DESCRIPTIONS:
        return HoverInfo(span, f"`{word}` is not a stage kind ({', '.join(STAGE_KINDS)}).")
    return HoverInfo(span, f"**{word}** stage: {KIND_DESCRIPTIONS[word]}.")
