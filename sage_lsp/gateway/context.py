"""Each model's context length (vLLM's ``max_model_len``) for ``GET /v1/models``, so that a
client fitting its prompts to the model (sage-lsp's own editors and ``sage chat``) can do so
through the gateway: a running service's as vLLM reports it, else what its launch will give."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import aiohttp

from sage_lsp.core.errors import SageError
from sage_lsp.gateway.upstream import service_get
from sage_lsp.services.manager import ServiceManager
from sage_lsp.services.merge import resolve_base
from sage_lsp.services.registry import ServiceEntry
from sage_lsp.services.store import read_json_object

LENGTH_KEYS = (
    "max_position_embeddings", "n_positions", "max_seq_len", "seq_length", "model_max_length",
    "max_sequence_length", "max_seq_length", "seq_len",
)  # fmt: skip
"""The keys of a model's ``config.json`` vLLM takes its default ``max_model_len`` from (the
smallest one found)."""
ASK_SECONDS = 2.0


def launch_length(args: Sequence[str]) -> int | None:
    """The ``--max-model-len`` among vLLM's arguments, if given as a plain number."""
    for index, arg in enumerate(args):
        value = None
        if arg.startswith("--max-model-len="):
            value = arg.partition("=")[2]
        elif arg == "--max-model-len" and index + 1 < len(args):
            value = args[index + 1]
        if value is not None and value.isdigit():
            return int(value)
    return None


def config_length(folder: Path) -> int | None:
    """The context a model folder's ``config.json`` gives vLLM by default; None when it has
    none, or when rope scaling changes it."""
    config = read_json_object(folder / "config.json")
    if config.get("rope_scaling"):
        return None
    lengths = [config[key] for key in LENGTH_KEYS if isinstance(config.get(key), int)]
    return min(lengths) if lengths else None


class ContextLengths:
    """The context length of the store's models and of the running services."""

    def __init__(self, manager: ServiceManager) -> None:
        self.manager = manager
        self._asked: dict[tuple[str, int | None], int | None] = {}
        """vLLM's answers, by service and pid: a service's context never changes."""

    def expected(self, name: str) -> int | None:
        """What a launch of finetuned model ``name`` will serve: ``--max-model-len`` of the
        settings, else its model folder's (merged, or in adapter mode the base's) default."""
        configured = launch_length(self.manager.settings.vllm.extra_args)
        if configured is not None:
            return configured
        try:
            model = self.manager.store.get(name)
        except SageError:
            return None
        if self.manager.parent(name) is not None and model.base_model is not None:
            return config_length(Path(resolve_base(model, model.base_model)))
        return config_length(model.merged_dir)

    async def served(self, client: aiohttp.ClientSession, entry: ServiceEntry) -> int | None:
        """The ``max_model_len`` a ready service's vLLM reports (asked once per process)."""
        key = (entry.name, entry.pid)
        if key not in self._asked:
            answer = await service_get(client, entry, "/v1/models", ASK_SECONDS)
            if answer is None:
                return None  # asked again next time
            try:
                listed = json.loads(answer).get("data") or []
            except (ValueError, AttributeError):
                return None
            lengths = [m.get("max_model_len") for m in listed if isinstance(m, dict)]
            self._asked[key] = next((n for n in lengths if isinstance(n, int)), None)
        return self._asked[key]
