"""The finetuned model store, in SAGE's layout under ``$SAGE_HOME/finetune_output/<name>/``.

A model folder holds ``finetune_meta.json`` (``model`` names the base: a path or a hub id),
``checkpoints/checkpoint-<step>/`` (LoRA adapters saved during training), ``lora_weights/`` (the
final adapter and tokenizer) and, once merged, ``merged_model/``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from sage_lsp.config import model_name
from sage_lsp.core.errors import BackendError, ErrorKind, InvalidInput

CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
MERGE_RECORD = "sage_merge.json"
"""Written into ``merged_model/`` by a merge: what it was merged from."""

ModelState = Literal["merged", "adapter", "checkpoints"]


class InvalidModelName(InvalidInput, ValueError):
    """A model name that is not a single safe path component."""


def check_name(name: str) -> str:
    """Return ``name`` if it is a valid model name, else raise :class:`InvalidModelName`."""
    try:
        return model_name(name)
    except ValueError as exc:
        raise InvalidModelName(f"invalid model name {name!r}: {exc}") from None


def read_json_object(path: Path) -> dict[str, Any]:
    """The JSON object in ``path`` (a model folder's config, a record); ``{}`` when the file is
    missing, unreadable or holds no object."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


@dataclass(frozen=True)
class FinetunedModel:
    """One model folder of the store."""

    name: str
    """Folder name; also the name vLLM serves it under."""
    path: Path
    """``$SAGE_HOME/finetune_output/<name>``."""

    @property
    def meta(self) -> dict[str, object]:
        """``finetune_meta.json``, or ``{}`` when it is missing or unreadable."""
        return read_json_object(self.path / "finetune_meta.json")

    @property
    def base_model(self) -> str | None:
        """The base model (a path or a hub id) from ``finetune_meta.json``."""
        value = self.meta.get("model")
        return value if isinstance(value, str) and value else None

    @property
    def merged_dir(self) -> Path:
        """Where the merged model lives."""
        return self.path / "merged_model"

    @property
    def lora_dir(self) -> Path:
        """The final adapter."""
        return self.path / "lora_weights"

    def checkpoints(self) -> list[Path]:
        """Checkpoint folders, in increasing step order (numeric, not lexicographic)."""
        folder = self.path / "checkpoints"
        if not folder.is_dir():
            return []
        found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := CHECKPOINT.match(p.name))]
        return [p for _, p in sorted(found)]

    def adapter_source(self) -> Path | None:
        """The adapter to merge or serve: ``lora_weights/`` if present, else the last checkpoint."""
        if (self.lora_dir / "adapter_config.json").is_file():
            return self.lora_dir
        with_adapter = [c for c in self.checkpoints() if (c / "adapter_config.json").is_file()]
        return with_adapter[-1] if with_adapter else None

    def is_merged(self) -> bool:
        """Whether a complete merge is present: one of ours (its record is written last), or a
        merged model from elsewhere when there is no adapter it could be stale against."""
        if not (self.merged_dir / "config.json").is_file():
            return False
        return (self.merged_dir / MERGE_RECORD).is_file() or self.adapter_source() is None

    @property
    def state(self) -> ModelState:
        """``merged``, ``adapter`` (lora_weights/ present) or ``checkpoints``."""
        if self.is_merged():
            return "merged"
        if (self.lora_dir / "adapter_config.json").is_file():
            return "adapter"
        return "checkpoints"


class ModelStore:
    """The models under one ``SAGE_HOME``."""

    def __init__(self, sage_home: Path) -> None:
        self.root = sage_home / "finetune_output"

    def list(self) -> list[FinetunedModel]:
        """Every model folder that has an adapter or a merged model, by name."""
        if not self.root.is_dir():
            return []
        models = [FinetunedModel(p.name, p) for p in sorted(self.root.iterdir()) if p.is_dir()]
        return [m for m in models if m.adapter_source() is not None or m.is_merged()]

    def get(self, name: str) -> FinetunedModel:
        """The model ``name``; raises :class:`BackendError` (model not found) with the places
        searched and the next step."""
        check_name(name)
        model = FinetunedModel(name, self.root / name)
        if model.path.is_dir() and (model.adapter_source() is not None or model.is_merged()):
            return model
        known = ", ".join(m.name for m in self.list()) or "none"
        searched = [
            str(model.path / "merged_model"),
            str(model.lora_dir),
            str(model.path / "checkpoints"),
        ]
        raise BackendError(
            ErrorKind.MODEL_NOT_FOUND,
            f"finetuned model {name!r} not found in {self.root} (models there: {known})",
            "finetune one first (sage finetune quickstart in SAGE), or pick one from "
            "`sage finetune list`",
            {"name": name, "searched": searched},
        )
