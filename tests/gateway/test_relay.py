"""The gateway in front of the fake vLLM, through real HTTP (the openai SDK as the client):
streams relayed chunk by chunk, unknown fields, join in flight, a failed start, the client's
disconnect, the TTL release and SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx2
import openai
import pytest

from sage_lsp.config import load_settings
from sage_lsp.services.manager import ServiceManager
from sage_lsp.services.registry import Registry
from tests.gateway.conftest import FAKE_MODEL, RunningGateway, key_of, spawn_serve, wait_health
from tests.gateway.test_gateway import OPENAI_ERROR_KEYS
from tests.support.ports import closed_port

# subprocess-heavy: in `make test`, not `make test-fast`
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("fake_vllm")]

Start = Callable[..., RunningGateway]


def registry(home: Path) -> Registry:
    return Registry(home / "run")


def wait_until(check: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"not within {seconds} s: {what}"
        time.sleep(0.1)


def upstream(home: Path, what: str) -> dict[str, object]:
    """A ``/_test/*`` report of the fake vLLM serving FAKE_MODEL."""
    entry = registry(home).read(FAKE_MODEL)
    assert entry is not None
    answer = httpx2.get(f"http://127.0.0.1:{entry.port}/_test/{what}", trust_env=False)
    result: dict[str, object] = answer.json()
    return result


def test_stream_relays_chunks_unknown_fields_and_names_the_model(
    start_gateway: Start, sage_home: Path
) -> None:
    running = start_gateway()
    client = running.client()
    stream = client.chat.completions.create(
        model=FAKE_MODEL,
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
        extra_body={"ignore_eos": True, "sage_test_field": 7},
    )
    arrived = []
    for chunk in stream:
        assert chunk.model == FAKE_MODEL
        if chunk.choices and chunk.choices[0].delta.content:
            arrived.append((time.monotonic(), chunk.choices[0].delta.content))
    assert "".join(text for _, text in arrived).startswith("fake0 fake1")
    assert len(arrived) == 40
    # paced 0.05 s a token upstream: chunks arrive as they come, not all at the end
    assert arrived[-1][0] - arrived[0][0] > 1.0
    sent = upstream(sage_home, "requests")["requests"]
    assert isinstance(sent, list) and sent[-1]["ignore_eos"] is True
    assert sent[-1]["sage_test_field"] == 7
    answer = client.chat.completions.create(
        model=FAKE_MODEL, messages=[{"role": "user", "content": "hi"}]
    )
    assert answer.model == FAKE_MODEL and answer.choices[0].message.content
    text = client.completions.create(model=FAKE_MODEL, prompt="def f():")
    assert text.model == FAKE_MODEL and text.choices[0].text.startswith("fake0")
    with running.http() as http:
        metrics = http.get("/metrics").text
    assert f'sage_requests_total{{model="{FAKE_MODEL}",status="200"}} 3.0' in metrics
    assert f'sage_time_to_first_token_seconds_count{{model="{FAKE_MODEL}"}} 3.0' in metrics
    # 40 streamed chunks, then the non-streamed answer's usage (40 tokens)
    assert f'sage_generated_tokens_total{{model="{FAKE_MODEL}"}} 80.0' in metrics
    assert f'sage_service_up{{model="{FAKE_MODEL}"}} 1.0' in metrics


async def test_requests_for_a_starting_model_join_its_one_start(
    start_gateway: Start, sage_home: Path
) -> None:
    running = start_gateway()
    client = openai.AsyncOpenAI(base_url=running.url + "/v1", api_key=running.gateway.key)
    ask = {"model": FAKE_MODEL, "messages": [{"role": "user", "content": "hi"}]}
    answers = await asyncio.gather(*(client.chat.completions.create(**ask) for _ in range(3)))
    await client.close()
    assert all(a.choices[0].message.content for a in answers)
    assert running.gateway.pool.launches == 1
    entries = registry(sage_home).live_entries()
    assert [e.name for e in entries] == [FAKE_MODEL] and len(entries[0].holders) == 1


def test_a_failed_start_is_503_with_cause_and_log(
    start_gateway: Start, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_VLLM_MODE", "exit")
    running = start_gateway()
    with pytest.raises(openai.InternalServerError) as caught:
        running.client().with_options(max_retries=0).chat.completions.create(
            model=FAKE_MODEL, messages=[{"role": "user", "content": "hi"}]
        )
    assert caught.value.status_code == 503
    error = caught.value.response.json()["error"]
    assert set(error) == OPENAI_ERROR_KEYS and error["code"] == "model_start_failed"
    assert "log: " in error["message"] and ".log" in error["message"]
    assert "could not be loaded" in error["message"]
    assert running.gateway.pool.manager.held == set()


def test_a_client_that_goes_away_closes_the_upstream_stream(
    start_gateway: Start, sage_home: Path
) -> None:
    running = start_gateway()
    body = {"model": FAKE_MODEL, "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    headers = {"Authorization": f"Bearer {running.gateway.key}"}
    with (
        running.http() as http,
        http.stream("POST", "/v1/chat/completions", json=body, headers=headers) as answer,
    ):
        lines = answer.iter_lines()
        for _ in range(3):
            assert next(lines).startswith("data: ") and next(lines) == ""

    def closed() -> bool:
        streams = upstream(sage_home, "streams")["streams"]
        return isinstance(streams, list) and bool(streams) and streams[-1]["clientGone"] is True

    wait_until(closed, 5, "the upstream stream closed")
    assert upstream(sage_home, "streams")["streams"][-1]["completed"] is False  # type: ignore[index]


def test_an_idle_model_is_released_after_its_ttl(start_gateway: Start, sage_home: Path) -> None:
    running = start_gateway(ttl=1.0)
    client = running.client()
    client.chat.completions.create(model=FAKE_MODEL, messages=[{"role": "user", "content": "hi"}])
    entry = registry(sage_home).read(FAKE_MODEL)
    assert entry is not None and entry.state == "ready"
    wait_until(lambda: registry(sage_home).read(FAKE_MODEL) is None, 10, "the service stopped")
    wait_until(lambda: not entry.processes_alive(), 5, "the service's processes ended")
    assert running.gateway.pool.manager.held == set()


def test_the_ttl_never_releases_a_model_while_a_request_streams(
    start_gateway: Start, sage_home: Path
) -> None:
    running = start_gateway(ttl=0.5)
    client = running.client()
    client.chat.completions.create(model=FAKE_MODEL, messages=[{"role": "user", "content": "hi"}])
    stream = client.chat.completions.create(  # 40 tokens, 0.05 s apart: longer than the TTL
        model=FAKE_MODEL, messages=[{"role": "user", "content": "hi"}], stream=True
    )
    texts = []
    for chunk in stream:
        texts.append(chunk.choices[0].delta.content or "")
        if len(texts) == 35:  # 1.7 s into the stream: more than three TTLs
            entry = registry(sage_home).read(FAKE_MODEL)
            assert entry is not None and entry.state == "ready" and entry.processes_alive()
    assert "".join(texts).startswith("fake0") and len(texts) == 42
    wait_until(lambda: registry(sage_home).read(FAKE_MODEL) is None, 10, "the service stopped")


@contextlib.contextmanager
def serving(home: Path) -> Iterator[tuple[subprocess.Popen[str], openai.OpenAI]]:
    """``sage serve --ttl 0`` as a process of its own, and the openai SDK on it; killed at the
    end if it still runs."""
    port = closed_port()
    process = spawn_serve("--port", str(port), "--ttl", "0")
    try:
        wait_health(port, process)
        yield process, openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=key_of(home))
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()


def sigterm(process: subprocess.Popen[str]) -> float:
    """Send SIGTERM and wait (up to 20 s) for the end: the seconds it took."""
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    process.wait(20)
    return time.monotonic() - started


HI = [{"role": "user", "content": "hi"}]


def test_sigterm_stops_the_gateway_and_the_services_only_it_held(sage_home: Path) -> None:
    with serving(sage_home) as (process, client):
        client.chat.completions.create(model=FAKE_MODEL, messages=HI)  # type: ignore[arg-type]
        entry = registry(sage_home).read(FAKE_MODEL)
        assert entry is not None and entry.processes_alive()
        assert sigterm(process) < 20
    assert registry(sage_home).read(FAKE_MODEL) is None
    wait_until(lambda: not entry.processes_alive(), 5, "the service's processes ended")


def test_sigterm_leaves_a_service_another_session_holds(sage_home: Path) -> None:
    other = ServiceManager(load_settings({"vllm": {"startup_timeout_seconds": 8}}))
    try:
        with serving(sage_home) as (process, client):
            client.chat.completions.create(model=FAKE_MODEL, messages=HI)  # type: ignore[arg-type]
            entry = registry(sage_home).read(FAKE_MODEL)
            assert entry is not None
            asyncio.run(other.ensure_finetuned(FAKE_MODEL, entry.port))  # joins: two holders
            sigterm(process)
            kept = registry(sage_home).read(FAKE_MODEL)
            assert kept is not None and kept.holders == [other.holder] and kept.processes_alive()
    finally:
        other.release_one(FAKE_MODEL, stop=True)
    assert registry(sage_home).read(FAKE_MODEL) is None


def test_sigterm_with_an_open_stream_exits_within_20_s(
    sage_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_VLLM_TOKEN_DELAY", "1")  # a 40 s answer
    with serving(sage_home) as (process, client):
        stream = client.chat.completions.create(
            model=FAKE_MODEL,
            messages=HI,  # type: ignore[arg-type]
            stream=True,
        )
        next(iter(stream))
        assert sigterm(process) < 20
    assert registry(sage_home).read(FAKE_MODEL) is None
