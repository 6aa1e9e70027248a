"""Streaming: the openai client reading a local stream directly, versus sage-lsp.

Three readers take the same 2,000-token stream from the in-test OpenAI-compatible server in one
run: the official ``openai`` client with its typed chunks (the baseline), sage-lsp's chat
engine in-process, and an editor-like client talking JSON-RPC to a ``sage lsp`` subprocess,
which relays the answer as ``sage/chatChunk`` notifications. Targets for the relay: at most
5 ms added to the time to first token, at least 5,000 chunks/s.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from multiprocessing.connection import Connection
from typing import Any

from sage_lsp.backends.openai_compat import OpenAICompatibleBackend
from sage_lsp.chat.conversation import Conversation
from sage_lsp.chat.engine import ChatEngine
from tests.support.openai_server import OpenAIServer, Reply
from tests.support.rpc_client import RpcClient

TOKENS = 2000
RUNS = 15
TOKEN_TEXT = [f" t{n}" for n in range(TOKENS)]

Reader = Callable[[], Awaitable[tuple[float, int, float]]]
"""One read of the stream: (seconds to first text, messages received, seconds in all)."""


def direct_reader(base_url: str) -> Reader:
    """The openai client alone, as its docs show it."""
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
    """sage-lsp's backend and chat engine in this process."""
    engine = ChatEngine(OpenAICompatibleBackend("vllm", base_url=base_url, model="tiny-model"))

    async def read() -> tuple[float, int, float]:
        counted = 0

        def count(_: str) -> None:
            nonlocal counted
            counted += 1

        result = await engine.run_turn(Conversation("sys"), "go", count)
        assert result.text == "".join(TOKEN_TEXT)
        return result.ttft_ms / 1000, counted, result.total_ms / 1000

    return read


async def relay_reader(base_url: str) -> tuple[Reader, RpcClient]:
    """A JSON-RPC client talking to a ``sage lsp`` subprocess."""
    client = await RpcClient.start(env={"SAGE_HOME": tempfile.mkdtemp(prefix="sage-bench-")})
    await client.initialize({"backend": "vllm", "baseUrl": base_url, "model": "tiny-model"})
    chunks = client.notifications["sage/chatChunk"]

    async def read() -> tuple[float, int, float]:
        chunks.clear()
        start = time.perf_counter()
        _, pending = client.request_later("sage/chat", {"message": "go"})
        await client.wait_for(lambda: bool(chunks))
        first = time.perf_counter() - start
        response = await pending
        total = time.perf_counter() - start
        text = response["result"]["text"]
        assert text == "".join(TOKEN_TEXT) == "".join(c["delta"] for c in chunks)
        return first, len(chunks), total

    return read, client


async def _measure(read: Reader) -> dict[str, float]:
    await read()  # warm-up: connection, imports
    ttfts, rates, messages = [], [], []
    for _ in range(RUNS):
        ttft, received, total = await read()
        ttfts.append(ttft * 1000)
        rates.append(TOKENS / total)
        messages.append(received / total)
    return {
        "ttft_ms": statistics.median(ttfts),
        "chunks_per_s": statistics.median(rates),
        "messages_per_s": statistics.median(messages),
    }


async def _run_all(base_url: str) -> dict[str, dict[str, float]]:
    results = {
        "direct": await _measure(direct_reader(base_url)),
        "engine": await _measure(engine_reader(base_url)),
    }
    read, client = await relay_reader(base_url)
    try:
        results["relay"] = await _measure(read)
    finally:
        await client.close()
    return results


def _serve(conn: Connection) -> None:
    """Serve the token stream until told to stop (in a process of its own)."""
    with OpenAIServer() as server:
        server.reply = Reply(tokens=TOKEN_TEXT)
        conn.send(server.base_url)
        conn.recv()


def run() -> dict[str, Any]:
    """Run the three readers against one server; report medians and the relay's overhead.

    The server runs in a process of its own, so that it does not share a GIL with the readers.
    """
    here, there = multiprocessing.Pipe()
    process = multiprocessing.get_context("spawn").Process(target=_serve, args=(there,))
    process.start()
    try:
        results: dict[str, Any] = asyncio.run(_run_all(here.recv()))
    finally:
        here.send("stop")
        process.join(10)
    results["tokens"] = TOKENS
    results["runs"] = RUNS
    results["relay_added_ttft_ms"] = results["relay"]["ttft_ms"] - results["direct"]["ttft_ms"]
    return results


def table(result: dict[str, Any]) -> list[str]:
    """Markdown for docs/benchmarks.md."""
    rows = [
        ("openai client directly (typed chunks)", result["direct"]),
        ("sage-lsp chat engine, in-process", result["engine"]),
        ("editor client via `sage lsp` (sage/chatChunk)", result["relay"]),
    ]
    lines = [
        f"Median of {result['runs']} runs of a {result['tokens']}-token stream. chunks/s counts "
        "the model's chunks delivered per second; messages/s counts what the reader received "
        "(the relay joins chunks into one notification while the client is behind).",
        "",
        "| reader | TTFT (ms) | chunks/s | messages/s |",
        "|---|---:|---:|---:|",
    ]
    lines += [
        f"| {name} | {r['ttft_ms']:.2f} | {r['chunks_per_s']:,.0f} | {r['messages_per_s']:,.0f} |"
        for name, r in rows
    ]
    added = result["relay_added_ttft_ms"]
    rate = result["relay"]["chunks_per_s"]
    lines += [
        "",
        f"Relay: added time to first token {added:+.2f} ms (target at most 5 ms: "
        f"{'met' if added <= 5 else 'missed'}); {rate:,.0f} chunks/s (target at least 5,000: "
        f"{'met' if rate >= 5000 else 'missed'}).",
    ]
    return lines
