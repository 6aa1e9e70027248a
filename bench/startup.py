"""Start-up and idle cost of the language server process (``python -m sage_lsp``).

``initialize`` latency is measured from the moment the process is spawned (the request is
already waiting on its stdin) to the moment the response arrives; the server's CPU time (user
plus system, all its threads) is read at that same moment, because wall time moves with the
machine's load and CPU time much less. Each start is followed by a run of the floor (below), so
that both see the machine in the same state. Idle RSS is read one second after ``initialized``,
before any chat. Targets: ``initialize`` within 0.5 s, idle RSS at most 80 MB.
"""

from __future__ import annotations

import asyncio
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

import psutil

from tests.support.rpc_client import RpcClient

RUNS = 7


async def _one() -> tuple[float, float, float, float]:
    """One start: wall ms and the server's CPU ms to the ``initialize`` answer, idle RSS and USS."""
    env = {"SAGE_HOME": tempfile.mkdtemp(prefix="sage-bench-")}
    started = time.perf_counter()
    client = await RpcClient.start(env=env)
    server = psutil.Process(client.process.pid)
    # Not client.initialize(): its ``initialized`` would go out before the CPU time is read.
    await client.request(
        "initialize",
        {"processId": None, "capabilities": {}, "initializationOptions": {"backend": "mock"}},
    )
    ready = time.perf_counter() - started
    cpu = server.cpu_times()
    await client.notify("initialized", {})
    await asyncio.sleep(1.0)
    memory = server.memory_full_info()
    await client.close()
    return ready * 1000, (cpu.user + cpu.system) * 1000, memory.rss / 2**20, memory.uss / 2**20


def _floor() -> tuple[float, float]:
    """Wall and CPU ms of a bare ``python -c "import lsprotocol.types"``: pygls cannot be sooner."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import lsprotocol.types"], check=True)
    wall = (time.perf_counter() - started) * 1000
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) * 1000


def run() -> dict[str, Any]:
    """Start the server several times, each start followed by a floor run; report medians."""
    samples, floors = [], []
    for _ in range(RUNS):
        samples.append(asyncio.run(_one()))
        floors.append(_floor())
    return {
        "lsprotocol_import_floor_ms": statistics.median(f[0] for f in floors),
        "lsprotocol_import_floor_cpu_ms": statistics.median(f[1] for f in floors),
        "runs": RUNS,
        "initialize_ms": statistics.median(s[0] for s in samples),
        "initialize_ms_min": min(s[0] for s in samples),
        "initialize_cpu_ms": statistics.median(s[1] for s in samples),
        "initialize_cpu_ms_min": min(s[1] for s in samples),
        "own_cpu_ms": statistics.median(s[1] - f[1] for s, f in zip(samples, floors, strict=True)),
        "idle_rss_mb": statistics.median(s[2] for s in samples),
        "idle_uss_mb": statistics.median(s[3] for s in samples),
    }


def table(result: dict[str, Any]) -> list[str]:
    """Markdown for docs/benchmarks.md."""
    init, rss = result["initialize_ms"], result["idle_rss_mb"]
    return [
        f"Median of {result['runs']} starts.",
        "",
        "| measure | value | target |",
        "|---|---:|---:|",
        f"| `initialize` answered after spawn | {init:.0f} ms "
        f"(best {result['initialize_ms_min']:.0f}) | 500 ms |",
        f"| server CPU time (user + system) until that answer | "
        f"{result['initialize_cpu_ms']:.0f} ms (least {result['initialize_cpu_ms_min']:.0f}) | |",
        f"| of which above the floor (server CPU minus the floor run's after it) | "
        f"{result['own_cpu_ms']:.0f} ms | |",
        f"| idle RSS | {rss:.1f} MB | 80 MB |",
        f"| idle USS (memory of its own) | {result['idle_uss_mb']:.1f} MB | |",
        f"| floor: `python -c 'import lsprotocol.types'` | "
        f"{result['lsprotocol_import_floor_ms']:.0f} ms "
        f"(CPU {result['lsprotocol_import_floor_cpu_ms']:.0f} ms) | |",
        "",
        "The floor is the time Python needs to start and import the LSP type definitions that "
        "pygls is built on; no pygls server can answer `initialize` sooner on this machine. "
        "sage-lsp adds its own start-up on top of that (asyncio, logging, settings); the "
        "`openai` and `httpx2` imports (about 0.1 s more) are deferred to the first chat.",
    ]
