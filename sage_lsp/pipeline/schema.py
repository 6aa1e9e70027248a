"""The SAGE pipeline plan: typed classes, validation that reports every problem with its path,
and YAML in a stable key order that reads back identical.

A plan (SAGE's schema)::

    pipeline: {name, description, version: "1.0.0", type: local|remote}
    source:   {class, kind, params}
    stages:   [{id, kind: map|batch|service|flatmap|filter|keyby, class, params, summary}]
    sink:     {class, params}
    services: [{name, class, params}]
    monitors: []
    notes:    []
    environment: {config, host, port}        (optional)
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml

STAGE_KINDS = ("map", "batch", "service", "flatmap", "filter", "keyby")
PIPELINE_TYPES = ("local", "remote")
SLUG = re.compile(r"^[a-z0-9]+(?:[-_][a-z0-9]+)*$")

KEYS: dict[str, tuple[str, ...]] = {
    "": ("pipeline", "source", "stages", "sink", "services", "monitors", "notes", "environment"),
    "pipeline": ("name", "description", "version", "type"),
    "source": ("class", "kind", "params"),
    "stages[]": ("id", "kind", "class", "params", "summary"),
    "sink": ("class", "params"),
    "services[]": ("name", "class", "params"),
    "environment": ("config", "host", "port"),
}
"""The keys each part of a plan may have, in the order YAML output uses."""
REQUIRED: dict[str, tuple[str, ...]] = {
    "": ("pipeline", "source", "stages", "sink"),
    "pipeline": ("name", "type"),
    "source": ("class",),
    "stages[]": ("id", "kind", "class"),
    "sink": ("class",),
    "services[]": ("name", "class"),
}
"""The keys each part must have."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a plan, at a path such as ``stages[2].kind``."""

    path: str
    """Where: dotted keys and ``[index]`` for list items."""
    message: str
    """What is wrong, for a person."""
    severity: str = "error"
    """``error`` or ``warning`` (an operator class outside the catalog)."""

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


@dataclass
class Stage:
    """One processing step."""

    id: str
    kind: str
    cls: str
    params: dict[str, Any] = field(default_factory=dict)
    summary: str = ""


@dataclass
class Plan:
    """A validated pipeline plan."""

    name: str
    type: str
    source: dict[str, Any]
    stages: list[Stage]
    sink: dict[str, Any]
    description: str = ""
    version: str = "1.0.0"
    services: list[dict[str, Any]] = field(default_factory=list)
    monitors: list[Any] = field(default_factory=list)
    notes: list[Any] = field(default_factory=list)
    environment: dict[str, Any] | None = None

    def to_data(self) -> dict[str, Any]:
        """The plan as plain data, keys in the schema's order."""
        data: dict[str, Any] = {
            "pipeline": {
                "name": self.name,
                "description": self.description,
                "version": self.version,
                "type": self.type,
            },
            "source": _ordered(self.source, KEYS["source"]),
            "stages": [_stage_data(s) for s in self.stages],
            "sink": _ordered(self.sink, KEYS["sink"]),
            "services": [_ordered(s, KEYS["services[]"]) for s in self.services],
            "monitors": self.monitors,
            "notes": self.notes,
        }
        if self.environment is not None:
            data["environment"] = _ordered(self.environment, KEYS["environment"])
        return data

    def to_yaml(self) -> str:
        """YAML in the schema's key order (reads back to an identical plan)."""
        return yaml.safe_dump(
            self.to_data(), sort_keys=False, allow_unicode=True, default_flow_style=False
        )


def _stage_data(stage: Stage) -> dict[str, Any]:
    return {
        "id": stage.id,
        "kind": stage.kind,
        "class": stage.cls,
        "params": stage.params,
        "summary": stage.summary,
    }


def _ordered(data: dict[str, Any], order: tuple[str, ...]) -> dict[str, Any]:
    return {key: data[key] for key in order if key in data}


_TYPE_NAMES: dict[type, str] = {
    dict: "a mapping",
    list: "a list",
    str: "a string",
    type(None): "empty",
}


def _type_name(value: Any) -> str:
    return _TYPE_NAMES.get(type(value), type(value).__name__)


def validate(data: Any, known_classes: set[str] | None = None) -> list[Problem]:
    """Every problem of a plan given as data (from YAML or JSON); never raises.

    Operator classes outside ``known_classes`` (when given) are warnings, not errors.
    """
    problems: list[Problem] = []
    if not isinstance(data, dict):
        return [Problem("", f"a plan must be a mapping, not {_type_name(data)}")]
    _check_mapping(data, "", "", problems)
    for part in ("pipeline", "source", "sink", "environment"):
        value = data.get(part)
        if value is not None and not isinstance(value, dict):
            problems.append(Problem(part, f"must be a mapping, not {_type_name(value)}"))
        elif isinstance(value, dict):
            _check_mapping(value, part, part, problems)
    pipeline = data.get("pipeline")
    if isinstance(pipeline, dict):
        if "type" in pipeline and pipeline["type"] not in PIPELINE_TYPES:
            problems.append(Problem("pipeline.type", _not_one_of(pipeline["type"], PIPELINE_TYPES)))
        name = pipeline.get("name")
        if "name" in pipeline and (not isinstance(name, str) or not name.strip()):
            problems.append(Problem("pipeline.name", "must be a non-empty string"))
    for part in ("source", "sink"):
        value = data.get(part)
        if isinstance(value, dict):
            if "class" in value:
                _check_class(value["class"], f"{part}.class", known_classes, problems)
            if "params" in value and not isinstance(value["params"], dict):
                problems.append(Problem(f"{part}.params", "must be a mapping"))
    for part, item_key in (("stages", "stages[]"), ("services", "services[]")):
        items = data.get(part)
        if items is None:
            continue
        if not isinstance(items, list):
            problems.append(Problem(part, f"must be a list, not {_type_name(items)}"))
            continue
        if part == "stages" and not items:
            problems.append(Problem(part, "must have at least one stage"))
        seen: dict[str, int] = {}
        for i, item in enumerate(items):
            where = f"{part}[{i}]"
            if not isinstance(item, dict):
                problems.append(Problem(where, f"must be a mapping, not {_type_name(item)}"))
                continue
            _check_mapping(item, where, item_key, problems)
            if "class" in item:
                _check_class(item["class"], f"{where}.class", known_classes, problems)
            if part == "stages":
                _check_stage(item, where, seen, i, problems)
    for part in ("monitors", "notes"):
        if part in data and not isinstance(data[part], list):
            problems.append(Problem(part, f"must be a list, not {_type_name(data[part])}"))
    return problems


def _check_mapping(value: dict[str, Any], where: str, schema: str, problems: list[Problem]) -> None:
    prefix = f"{where}." if where else ""
    for key in value:
        if key not in KEYS[schema]:
            allowed = ", ".join(KEYS[schema])
            problems.append(Problem(f"{prefix}{key}", f"unknown key (allowed: {allowed})"))
    for key in REQUIRED.get(schema, ()):
        if key not in value:
            problems.append(Problem(f"{prefix}{key}", "is required"))


def _check_class(value: Any, where: str, known: set[str] | None, problems: list[Problem]) -> None:
    if not isinstance(value, str) or not value.strip():
        problems.append(Problem(where, "must be a non-empty string (a dotted class path)"))
    elif known is not None and value not in known:
        problems.append(Problem(where, f"{value!r} is not in the operator catalog", "warning"))


def _check_stage(
    item: dict[str, Any], where: str, seen: dict[str, int], i: int, problems: list[Problem]
) -> None:
    stage_id = item.get("id")
    if "id" in item:
        if not isinstance(stage_id, str) or not SLUG.match(stage_id):
            problems.append(
                Problem(f"{where}.id", f"{stage_id!r} is not a slug (e.g. 'retrieve-docs')")
            )
        elif stage_id in seen:
            problems.append(
                Problem(f"{where}.id", f"duplicate id {stage_id!r} (also stages[{seen[stage_id]}])")
            )
        else:
            seen[stage_id] = i
    if "kind" in item and item["kind"] not in STAGE_KINDS:
        problems.append(Problem(f"{where}.kind", _not_one_of(item["kind"], STAGE_KINDS)))
    if "params" in item and not isinstance(item["params"], dict):
        problems.append(Problem(f"{where}.params", "must be a mapping"))


def _not_one_of(value: Any, options: tuple[str, ...]) -> str:
    return f"{value!r} is not one of {', '.join(options)}"


def _stage(data: dict[str, Any]) -> Stage:
    params = dict(data.get("params") or {})
    return Stage(data["id"], data["kind"], data["class"], params, str(data.get("summary") or ""))


def parse_plan(
    data: Any, known_classes: set[str] | None = None
) -> tuple[Plan | None, list[Problem]]:
    """A :class:`Plan` if ``data`` has no errors (warnings are returned too)."""
    problems = validate(data, known_classes)
    if any(p.severity == "error" for p in problems):
        return None, problems
    pipeline = data["pipeline"]
    plan = Plan(
        name=str(pipeline["name"]),
        type=str(pipeline["type"]),
        description=str(pipeline.get("description") or ""),
        version=str(pipeline.get("version") or "1.0.0"),
        source=dict(data["source"]),
        stages=[_stage(s) for s in data["stages"]],
        sink=dict(data["sink"]),
        services=[dict(s) for s in data.get("services") or []],
        monitors=list(data.get("monitors") or []),
        notes=list(data.get("notes") or []),
        environment=dict(data["environment"]) if data.get("environment") else None,
    )
    return plan, problems
