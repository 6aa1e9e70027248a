"""The operator catalog: known operator classes, their role, description and parameters.

Shipped as ``operators.yaml`` in the package; the user extends or overrides it with
``$SAGE_HOME/pipeline_operators.yaml`` (same shape).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

USER_CATALOG = "pipeline_operators.yaml"


@dataclass(frozen=True)
class Operator:
    """One catalogued operator class."""

    cls: str
    """The dotted class path."""
    role: str
    """``source``, ``stage``, ``sink`` or ``service``."""
    description: str
    """What it does."""
    kind: str | None = None
    """The stage kind it is usually used as."""
    params: dict[str, str] = field(default_factory=dict)
    """Parameter name to description."""

    def markdown(self) -> str:
        """A hover text: class, description, parameters."""
        lines = [f"**{self.cls}** ({self.role}{', ' + self.kind if self.kind else ''})", "",
                 self.description]  # fmt: skip
        if self.params:
            lines += ["", "Parameters:"] + [f"- `{k}`: {v}" for k, v in self.params.items()]
        return "\n".join(lines)


def _read(text: str) -> dict[str, Operator]:
    data = yaml.safe_load(text) or {}
    if not isinstance(data, dict):
        return {}
    operators = {}
    for cls, spec in data.items():
        if not isinstance(spec, dict):
            continue
        params: Any = spec.get("params") or {}
        operators[str(cls)] = Operator(
            cls=str(cls),
            role=str(spec.get("role", "stage")),
            description=str(spec.get("description", "")),
            kind=str(spec["kind"]) if spec.get("kind") else None,
            params={str(k): str(v) for k, v in params.items()} if isinstance(params, dict) else {},
        )
    return operators


_LOADED: dict[Path | None, tuple[int | None, dict[str, Operator]]] = {}
"""Catalogs read so far, by SAGE_HOME, with the user file's mtime when they were read."""


def load_catalog(sage_home: Path | None = None) -> dict[str, Operator]:
    """The packaged catalog, extended by the user's (a broken user file is ignored); read
    again only when the user's file changes. Callers must not modify it."""
    mtime = _mtime(sage_home / USER_CATALOG) if sage_home is not None else None
    loaded = _LOADED.get(sage_home)
    if loaded is None or loaded[0] != mtime:
        loaded = (mtime, _load(sage_home))
        _LOADED[sage_home] = loaded
    return loaded[1]


def _mtime(path: Path) -> int | None:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return None


def _load(sage_home: Path | None) -> dict[str, Operator]:
    catalog = _read((resources.files("sage_lsp.pipeline") / "operators.yaml").read_text("utf-8"))
    if sage_home is not None:
        user = sage_home / USER_CATALOG
        with contextlib.suppress(OSError, yaml.YAMLError):
            catalog.update(_read(user.read_text(encoding="utf-8")))
    return catalog
