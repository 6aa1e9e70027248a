"""Streaming overhead: the openai client reading a local stream directly, versus sage-lsp.

Both read the same 2,000-token stream from the in-test OpenAI-compatible server in one run, so
the numbers are comparable; the difference is what sage-lsp's layers add.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

from sage_lsp.backends.openai_compat import OpenAICompatibleBackend
from sage_lsp.chat.conversation import Conversation
from sage_lsp.chat.engine import ChatEngine
from tests.support.openai_server import OpenAIServer, Reply

TOKENS = 2000
RUNS = 7

Reader = Callable[[], Awaitable[tuple[float, int, float]]]


def direct_reader(base_url: str) -> Reader:
    """Read the stream with the openai client alone: (ttft s, chunks, total s)."""
    import openai

    client = openai.AsyncOpenAI(base_url=base_url, api_key="EMPTY", max_retries=0)

    async def read() -> tuple[float, int, float]:
        start = time.perf_counter()
        first = 0.0
        chunks = 0
        stream = await client.chat.completions.create(
            model="tiny-model", messages=[{"role": "user", "content": "go"}], stream=True
        )
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                chunks += 1
                if chunks == 1:
                    first = time.perf_counter() - start
        return first, chunks, time.perf_counter() - start

    return read


def engine_reader(base_url: str) -> Reader:
    """Read the stream through sage-lsp's backend and chat engine."""
    engine = ChatEngine(OpenAICompatibleBackend("vllm", base_url=base_url, model="tiny-model"))

    async def read() -> tuple[float, int, float]:
        counted = 0

        def count(_: str) -> None:
            nonlocal counted
            counted += 1

        result = await engine.run_turn(Conversation("sys"), "go", count)
        return result.ttft_ms / 1000, counted, result.total_ms / 1000

    return read


async def _measure(read: Reader) -> dict[str, float]:
    await read()  # warm-up: connection, imports
    ttfts, rates = [], []
    for _ in range(RUNS):
        ttft, chunks, total = await read()
        assert chunks == TOKENS, f"expected {TOKENS} chunks, got {chunks}"
        ttfts.append(ttft * 1000)
        rates.append(chunks / total)
    return {"ttft_ms": statistics.median(ttfts), "chunks_per_s": statistics.median(rates)}


def run() -> dict[str, Any]:
    """Run both readers against one server and report medians and the difference."""
    with OpenAIServer() as server:
        server.reply = Reply(tokens=[f" t{n}" for n in range(TOKENS)])
        direct = asyncio.run(_measure(direct_reader(server.base_url)))
        engine = asyncio.run(_measure(engine_reader(server.base_url)))
    return {
        "tokens": TOKENS,
        "runs": RUNS,
        "direct": direct,
        "engine": engine,
        "engine_added_ttft_ms": engine["ttft_ms"] - direct["ttft_ms"],
        "engine_relative_rate": engine["chunks_per_s"] / direct["chunks_per_s"],
    }


def table(result: dict[str, Any]) -> list[str]:
    """Markdown rows for docs/benchmarks.md."""
    d, e = result["direct"], result["engine"]
    return [
        f"Median of {result['runs']} runs, {result['tokens']}-token stream from a local "
        "OpenAI-compatible server.",
        "",
        "| reader | TTFT (ms) | chunks/s |",
        "|---|---:|---:|",
        f"| openai client directly | {d['ttft_ms']:.2f} | {d['chunks_per_s']:,.0f} |",
        f"| sage-lsp chat engine | {e['ttft_ms']:.2f} | {e['chunks_per_s']:,.0f} |",
        "",
        f"Added time to first token: {result['engine_added_ttft_ms']:+.2f} ms; "
        f"engine rate / direct rate: {result['engine_relative_rate']:.2f}.",
    ]
