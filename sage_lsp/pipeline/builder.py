"""Build a pipeline plan from a description with the session's own backend.

The model is asked for a plan, the plan is extracted from whatever it answers (code fences,
prose around it, JSON or YAML), validated, and the problems are fed back for another try, up to
:data:`MAX_ATTEMPTS` times. The mock backend picks a blueprint by keywords instead.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from sage_lsp.backends.base import Backend, ChatRequest, Delta
from sage_lsp.core.types import Message
from sage_lsp.pipeline.blueprints import BLUEPRINTS, blueprint_plan, pick
from sage_lsp.pipeline.catalog import Operator
from sage_lsp.pipeline.schema import STAGE_KINDS, Plan, Problem, parse_plan

MAX_ATTEMPTS = 6
_FENCE = re.compile(r"```[ \t]*([A-Za-z]*)[ \t]*\n(.*?)```", re.DOTALL)
_INTENT_EN = re.compile(
    r"\b(build|create|make|design|generate|set up|write)\b.*\b(pipelines?|workflows?|dataflows?)\b",
    re.IGNORECASE,
)
_INTENT_ZH = re.compile(
    r"(构建|创建|生成|设计|搭建|建立|写一个|做一个).*(流水线|管道|管线|工作流|pipeline)"
)


@dataclass
class BuildResult:
    """What a build produced."""

    name: str
    """The pipeline's name."""
    yaml: str
    """The plan as YAML (the last attempt's, when none was valid)."""
    valid: bool
    """Whether the plan validates."""
    errors: list[str] = field(default_factory=list)
    """The problems of the last attempt (empty when valid)."""
    attempts: int = 0
    """How many answers the model gave."""
    plan: Plan | None = None
    """The plan, when valid."""
    warnings: list[str] = field(default_factory=list)
    """The valid plan's warnings (operator classes outside the catalog)."""


def _texts(problems: list[Problem]) -> list[str]:
    return [str(p) for p in problems]


def is_pipeline_request(text: str) -> str | None:
    """SAGE's intent detection: the description if ``text`` asks for a pipeline, else None.

    A ``pipeline:`` prefix, or a build/create verb with a pipeline/workflow noun (English or
    Chinese).
    """
    stripped = text.strip()
    if stripped.lower().startswith("pipeline:"):
        return stripped[len("pipeline:") :].strip() or None
    if _INTENT_EN.search(stripped) or _INTENT_ZH.search(stripped):
        return stripped
    return None


def extract_plan(text: str) -> tuple[dict[str, Any] | None, str]:
    """The plan in a model's answer: a fenced block, else a JSON object in prose, else the whole
    text as YAML. Returns the data or ``None`` with the reason."""
    candidates = [body for _, body in _FENCE.findall(text)]
    start = text.find("{")
    if start >= 0:
        candidates.append(text[start : text.rfind("}") + 1])
    candidates.append(text)
    for candidate in candidates:
        for loader in (json.loads, yaml.safe_load):
            try:
                data = loader(candidate)
            except (ValueError, yaml.YAMLError):
                continue
            if isinstance(data, dict) and ("pipeline" in data or "stages" in data):
                return data, ""
    return None, "no plan found: answer with the plan as YAML in a ```yaml block"


def _instructions(catalog: dict[str, Operator]) -> str:
    example = yaml.safe_dump(BLUEPRINTS[0].plan, sort_keys=False)
    operators = "\n".join(
        f"- {op.cls} ({op.role}{', ' + op.kind if op.kind else ''}): {op.description}"
        for op in catalog.values()
    )
    return (
        "You design SAGE dataflow pipelines. Answer with one plan as YAML in a ```yaml block "
        'and nothing else. The plan has: pipeline {name, description, version "1.0.0", type '
        "local|remote}, source {class, kind, params}, stages [{id (a slug), kind "
        f"({'|'.join(STAGE_KINDS)}), class, params, summary}}], sink {{class, params}}, services "
        "[{name, class, params}], monitors [], notes []. Prefer these operator classes:\n"
        f"{operators}\n\nAn example plan:\n```yaml\n{example}```"
    )


async def _ask(backend: Backend, messages: list[Message], max_tokens: int | None) -> str:
    pieces = []
    async for event in backend.stream(ChatRequest(tuple(messages), max_tokens=max_tokens)):
        if isinstance(event, Delta):
            pieces.append(event.text)
    return "".join(pieces)


async def build_pipeline(
    backend: Backend,
    description: str,
    catalog: dict[str, Operator],
    name: str | None = None,
    max_tokens: int | None = None,
) -> BuildResult:
    """Ask ``backend`` for a plan and repair it until it validates (at most 6 answers)."""
    known = set(catalog)
    if backend.name == "mock":
        plan, problems = parse_plan(blueprint_plan(description, name), known)
        assert plan is not None, problems  # the blueprints are valid plans
        return BuildResult(plan.name, plan.to_yaml(), True, [], 1, plan, _texts(problems))
    messages = [Message("system", _instructions(catalog)), Message("user", description)]
    errors: list[str] = []
    answer = ""
    for attempt in range(1, MAX_ATTEMPTS + 1):
        answer = await _ask(backend, messages, max_tokens)
        data, reason = extract_plan(answer)
        if data is None:
            errors = [reason]
        else:
            if name and isinstance(data.get("pipeline"), dict):
                data["pipeline"]["name"] = name
            plan, problems = parse_plan(data, known)
            if plan is not None:
                return BuildResult(
                    plan.name, plan.to_yaml(), True, [], attempt, plan, _texts(problems)
                )
            errors = [str(p) for p in problems if p.severity == "error"]
        messages += [
            Message("assistant", answer),
            Message(
                "user",
                "That plan has these problems:\n- " + "\n- ".join(errors)
                + "\nReply with the whole corrected plan as YAML in a ```yaml block.",
            ),
        ]  # fmt: skip
    data, _ = extract_plan(answer)
    shown = yaml.safe_dump(data, sort_keys=False, allow_unicode=True) if data else answer
    fallback = name or pick(description).id
    return BuildResult(fallback, shown, False, errors, MAX_ATTEMPTS)
