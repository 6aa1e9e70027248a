"""Adapter mode (``vllm.serveAdapter``): one vLLM per base model, with LoRA enabled, serves every
finetuned model of that base as an adapter under the model's own name; an adapter the service
has not loaded yet is loaded at runtime (docs/services.md, "Adapter mode").

This module knows what an adapter is (its base, rank and fingerprint), whether it fits a base's
service, the versioned path vLLM reads it from, the gate that keeps a load away from requests in
flight (vllm#13698: loading during generation can crash vLLM), and vLLM's admin calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from sage_lsp.config import LORA_RANKS
from sage_lsp.core.errors import BackendError, ErrorKind, InvalidInput, ServiceFailure
from sage_lsp.services import probe
from sage_lsp.services.merge import adapter_fingerprint, resolve_base
from sage_lsp.services.store import FinetunedModel

RUNTIME_LORA_ENV = {"VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True"}
"""What vLLM needs in its environment to serve ``/v1/load_lora_adapter``."""
IDLE_WAIT_SECONDS = 30.0
"""How long a load waits for other sessions' requests on the service to end (vLLM's own
``/metrics``); then it is refused as busy rather than risk crashing vLLM."""
IDLE_POLL_SECONDS = 0.1
METRICS_TIMEOUT_SECONDS = 5.0
ADMIN_TIMEOUT_SECONDS = 120.0
"""How long vLLM may take to answer a load."""
DEFAULT_RANK = 8
"""The rank taken for an adapter whose ``adapter_config.json`` names none (peft's default)."""

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Adapter:
    """A finetuned model's LoRA adapter, as adapter mode serves it."""

    name: str
    """The finetuned model's name: the adapter answers under it."""
    path: Path
    """The adapter folder (``lora_weights/`` or the last checkpoint)."""
    base: str
    """The base model from ``finetune_meta.json`` (resolved as a merge resolves it)."""
    declared_base: str | None
    """``base_model_name_or_path`` of ``adapter_config.json``."""
    rank: int
    """Its LoRA rank ``r``."""
    fingerprint: str
    """:func:`adapter_fingerprint` of its folder: a retrained adapter has a new one."""


def _config(adapter: Path) -> dict[str, object]:
    """``adapter_config.json``, or ``{}`` when unreadable."""
    try:
        data = json.loads((adapter / "adapter_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _rank(config: dict[str, object]) -> int:
    value = config.get("r")
    return value if isinstance(value, int) and value > 0 else DEFAULT_RANK


def read_adapter(model: FinetunedModel) -> Adapter | None:
    """``model``'s adapter, or None when it has none (blocking: it hashes the adapter). A model
    whose ``finetune_meta.json`` names no base cannot be served this way (config error)."""
    source = model.adapter_source()
    if source is None:
        return None
    if model.base_model is None:
        raise BackendError(
            ErrorKind.CONFIG,
            f"{model.path / 'finetune_meta.json'} names no base model",
            'serveAdapter needs the base model: set "model" in finetune_meta.json',
        )
    config = _config(source)
    declared = config.get("base_model_name_or_path")
    return Adapter(
        name=model.name,
        path=source,
        base=resolve_base(model, model.base_model),
        declared_base=declared if isinstance(declared, str) and declared else None,
        rank=_rank(config),
        fingerprint=adapter_fingerprint(source),
    )


def store_rank(models: list[FinetunedModel], base: str) -> int:
    """The largest rank among the adapters of ``models`` whose base is ``base`` (at least 1)."""
    ranks = [1]
    for model in models:
        source = model.adapter_source()
        if source is None or model.base_model is None:
            continue
        if resolve_base(model, model.base_model) == base:
            ranks.append(_rank(_config(source)))
    return max(ranks)


def fitting_rank(rank: int) -> int:
    """The smallest ``--max-lora-rank`` vLLM accepts that fits ``rank`` (its largest if none)."""
    return next((accepted for accepted in LORA_RANKS if accepted >= rank), LORA_RANKS[-1])


def _local_path(value: str, folder: Path) -> Path | None:
    """``value`` as a resolved path when it is one (absolute, or existing under ``folder``)."""
    path = Path(value).expanduser()
    if path.is_absolute():
        return path.resolve()
    candidate = folder / path
    return candidate.resolve() if candidate.exists() else None


def _hub_names(path: Path) -> set[str]:
    """The hub ids a local copy of a model may stand for: ``org/name`` of its last two folders,
    its folder name, and ``org/name`` of a Hugging Face cache folder ``models--org--name``."""
    cached = [part.removeprefix("models--") for part in path.parts if part.startswith("models--")]
    return {"/".join(path.parts[-2:]), path.name} | {c.replace("--", "/") for c in cached}


def same_base(declared: str, base: str, folder: Path) -> bool:
    """Whether an adapter trained on ``declared`` fits a service of ``base``: the same path (when
    the declared one exists here), the same hub id, or a local copy of that hub id. A declared
    path that does not exist here (trained on another machine) is compared by its last folders."""
    ours, theirs = _local_path(base, folder), _local_path(declared, folder)
    if ours is not None and theirs is not None:
        moved = not theirs.exists() and bool(_hub_names(ours) & _hub_names(theirs))
        return ours == theirs or moved
    if ours is None and theirs is None:
        return declared.strip("/") == base.strip("/")
    path = ours if ours is not None else theirs
    hub = declared if theirs is None else base
    assert path is not None
    return hub.strip("/") in _hub_names(path)


def check_base(adapter: Adapter, folder: Path) -> None:
    """Refuse an adapter whose ``adapter_config.json`` names another base than the one its
    model is served on (``InvalidInput``: a 400 at the gateway)."""
    declared = adapter.declared_base
    if declared is not None and not same_base(declared, adapter.base, folder):
        raise InvalidInput(
            f"the adapter of {adapter.name} ({adapter.path}) was trained on {declared}, "
            f"not on {adapter.base}, the base its model is served on",
            'fix "model" in finetune_meta.json, or base_model_name_or_path in adapter_config.json',
            {"name": adapter.name, "adapterBase": declared, "base": adapter.base},
        )


def check_rank(adapter: Adapter, max_rank: int, service: str) -> None:
    """Refuse an adapter of a larger rank than ``max_rank``, the service's ``--max-lora-rank``."""
    if adapter.rank > max_rank:
        needed = fitting_rank(adapter.rank)
        raise InvalidInput(
            f"the adapter of {adapter.name} has rank {adapter.rank}; the LoRA service {service} "
            f"takes at most {max_rank}",
            f"restart it with a larger vllm.maxLoraRank: set vllm.maxLoraRank = {needed} (or "
            f"unset it), then `sage services stop {service}`",
            {"name": adapter.name, "rank": adapter.rank, "maxLoraRank": max_rank},
        )


def versioned_path(run_dir: Path, adapter: Adapter) -> Path:
    """A link to the adapter's folder named after its fingerprint, which vLLM is given instead
    of the folder: vLLM keys its prefix cache by adapter name and path, so a retrained adapter
    read from the same path would reuse blocks computed with the old weights."""
    folder = run_dir / "adapters"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    link = folder / f"{adapter.name}@{adapter.fingerprint[:16]}"
    target = adapter.path.resolve()
    if not (link.is_symlink() and Path(os.readlink(link)) == target):
        temporary = folder / f".{link.name}.{uuid.uuid4().hex}"
        temporary.symlink_to(target, target_is_directory=True)
        os.replace(temporary, link)
    return link


class Gate:
    """One service's gate in this process: requests pass shared, an admin call (a load) passes
    alone once the requests before it ended; requests that come while a load waits wait
    behind it."""

    def __init__(self) -> None:
        self._changed = asyncio.Condition()
        self._requests = 0
        self._loads_waiting = 0
        self._loading = False

    @contextlib.asynccontextmanager
    async def shared(self) -> AsyncIterator[None]:
        """Pass with other requests, not while a load runs or waits."""
        async with self._changed:
            await self._changed.wait_for(lambda: not (self._loading or self._loads_waiting))
            self._requests += 1
        try:
            yield
        finally:
            async with self._changed:
                self._requests -= 1
                self._changed.notify_all()

    @contextlib.asynccontextmanager
    async def exclusive(self) -> AsyncIterator[None]:
        """Pass alone: after the requests in flight, before the ones that come meanwhile."""
        async with self._changed:
            self._loads_waiting += 1
            try:
                await self._changed.wait_for(lambda: not (self._loading or self._requests))
            finally:
                self._loads_waiting -= 1
                self._changed.notify_all()
            self._loading = True
        try:
            yield
        finally:
            async with self._changed:
                self._loading = False
                self._changed.notify_all()


def requests_in_flight(port: int) -> int | None:
    """``vllm:num_requests_running`` plus ``vllm:num_requests_waiting`` of the service's
    ``/metrics`` (every session's requests), or None when it does not tell."""
    try:
        status, body = probe.call(port, "/metrics", None, METRICS_TIMEOUT_SECONDS)
    except probe.Slow:
        return None
    if status != 200:
        return None
    total, seen = 0.0, False
    for line in body.decode(errors="replace").splitlines():
        name = line.split("{", 1)[0].split(" ", 1)[0]
        if name in ("vllm:num_requests_running", "vllm:num_requests_waiting"):
            with contextlib.suppress(ValueError, IndexError):
                total += float(line.rsplit(" ", 1)[1])
                seen = True
    return round(total) if seen else None


def wait_idle(port: int, seconds: float) -> bool:
    """Wait until the service has no request in flight; False if it still has after
    ``seconds``. A service whose metrics cannot be read counts as idle (logged)."""
    deadline = time.monotonic() + seconds
    while True:
        busy = requests_in_flight(port)
        if busy is None:
            log.warning("port %s: no vllm:num_requests_* in /metrics; loading anyway", port)
            return True
        if busy == 0:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(IDLE_POLL_SECONDS)


def load(port: int, api_key: str, adapter: Adapter, path: Path, service: str) -> None:
    """Ask the service to load (or reload in place) ``adapter`` from ``path`` under its name:
    ``POST /v1/load_lora_adapter``. vLLM's refusal is a rejected error with its message."""
    body = {"lora_name": adapter.name, "lora_path": str(path), "load_inplace": True}
    try:
        status, answer = probe.call(
            port, "/v1/load_lora_adapter", api_key, ADMIN_TIMEOUT_SECONDS, body
        )
    except probe.Slow:
        status, answer = 0, b"no answer in time"
    if status == 200:
        return
    try:
        message = str(json.loads(answer)["error"]["message"])
    except (ValueError, KeyError, TypeError):
        message = answer.decode(errors="replace").strip() or "no answer"
    raise BackendError(
        ErrorKind.REJECTED,
        f"the LoRA service {service} did not load the adapter of {adapter.name}: "
        f"HTTP {status}: {message}",
        "see the service's log (sage services list)",
    )


def busy(adapter: Adapter, service: str, seconds: float) -> ServiceFailure:
    """The error of a load that gave up waiting for other sessions' requests."""
    return ServiceFailure(
        ErrorKind.SERVICE_FAILED,
        f"the LoRA service {service} was busy with other sessions' requests for {seconds:g} s; "
        f"the adapter of {adapter.name} was not loaded (loading while vLLM generates can crash "
        "it, vllm#13698)",
        "ask again once those requests ended",
    )
