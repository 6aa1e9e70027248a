"""The dashboard's page and its ``/api/*`` through real HTTP, in front of the fake vLLM: the key,
the state after a request, the start and stop buttons' endpoints and a service's log tail."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path

import httpx2
import pytest

from sage_lsp.gateway.recent import SERIES_POINTS, STEP_SECONDS, RecentRequests, RequestRecord
from sage_lsp.gateway.serve import dashboard_url, open_when_serving
from sage_lsp.services.registry import Registry
from tests.gateway.conftest import FAKE_MODEL, RunningGateway, key_of, spawn_serve, wait_health
from tests.gateway.test_gateway import OPENAI_ERROR_KEYS
from tests.services.test_adapters import BASE, SERVICE, add_adapter
from tests.support.ports import closed_port

Start = Callable[..., RunningGateway]


def api(running: RunningGateway) -> httpx2.Client:
    """An HTTP client on the gateway that sends its key."""
    http = running.http()
    http.headers["Authorization"] = f"Bearer {running.gateway.key}"
    return http


def model_row(state: dict[str, object], name: str) -> dict[str, object]:
    models = state["models"]
    assert isinstance(models, list)
    rows = [row for row in models if row["name"] == name]
    assert rows, f"{name} is not listed: {models}"
    row: dict[str, object] = rows[0]
    return row


def test_the_page_needs_no_key_and_the_api_does(start_gateway: Start) -> None:
    running = start_gateway()
    with running.http() as http:
        page = http.get("/")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "<title>sage serve</title>" in page.text
        assert "script-src 'self'" in page.headers["content-security-policy"]
        script = http.get("/static/dashboard.js")
        assert script.status_code == 200 and "/api/state" in script.text
        assert http.get("/static/dashboard.css").status_code == 200
        calls = [
            ("GET", "/api/state"),
            ("GET", f"/api/logs/{FAKE_MODEL}"),
            ("POST", f"/api/models/{FAKE_MODEL}/start"),
            ("POST", f"/api/models/{FAKE_MODEL}/stop"),
        ]
        for method, path in calls:
            for headers in ({}, {"Authorization": "Bearer wrong"}):
                answer = http.request(method, path, headers=headers)
                assert answer.status_code == 401, (method, path)
                assert set(answer.json()["error"]) == OPENAI_ERROR_KEYS
                assert answer.json()["error"]["code"] == "invalid_api_key"


@pytest.mark.usefixtures("fake_vllm")
def test_start_request_log_and_stop(
    start_gateway: Start, sage_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_VLLM_TOKEN_DELAY", "0.005")
    monkeypatch.setenv("FAKE_VLLM_DELAY", "0")
    running = start_gateway()
    with api(running) as http:
        state = http.get("/api/state").json()
        assert model_row(state, FAKE_MODEL) == {
            "name": FAKE_MODEL, "finetuned": True, "state": "stopped", "failure": None,
            "port": None,
        }  # fmt: skip
        assert state["services"] == [] and state["requests"] == []

        started = http.post(f"/api/models/{FAKE_MODEL}/start")
        assert started.status_code == 200, started.text
        port = started.json()["port"]
        assert started.json() == {"name": FAKE_MODEL, "state": "ready", "port": port}
        state = http.get("/api/state").json()
        assert model_row(state, FAKE_MODEL)["state"] == "ready"
        assert model_row(state, FAKE_MODEL)["port"] == port
        [service] = state["services"]
        assert service["name"] == FAKE_MODEL and service["port"] == port
        assert service["state"] == "ready" and service["uptime"] >= 0
        assert [holder["gateway"] for holder in service["holders"]] == [True]

        answer = running.client().chat.completions.create(
            model=FAKE_MODEL, messages=[{"role": "user", "content": "hi"}], stream=True
        )
        assert sum(1 for chunk in answer if chunk.choices and chunk.choices[0].delta.content)
        state = http.get("/api/state").json()
        [request] = state["requests"]
        assert request["model"] == FAKE_MODEL and request["status"] == 200
        assert request["tokens"] == 40
        assert 0 < request["ttft"] < request["duration"]
        assert request["tokens_per_second"] == pytest.approx(
            40 / (request["duration"] - request["ttft"])
        )
        assert abs(request["at"] - time.time()) < 30
        series = state["series"]["models"][FAKE_MODEL]
        assert series["tokens"][-1] + series["tokens"][-2] == 40 / STEP_SECONDS
        assert len(series["requests"]) == SERIES_POINTS

        log = http.get(f"/api/logs/{FAKE_MODEL}", params={"lines": 3})
        assert log.status_code == 200, log.text
        entry = Registry(sage_home / "run").read(FAKE_MODEL)
        assert entry is not None and log.json()["path"] == entry.log_path
        lines = log.json()["lines"]
        assert len(lines) <= 3 and lines == Path(entry.log_path).read_text().splitlines()[-3:]
        full = http.get(f"/api/logs/{FAKE_MODEL}").json()["lines"]
        assert any("fake vllm: serving" in line for line in full)
        assert all(entry.api_key not in line for line in full)

        stopped = http.post(f"/api/models/{FAKE_MODEL}/stop")
        assert stopped.json() == {"name": FAKE_MODEL, "stopped": True}
        state = http.get("/api/state").json()
        assert model_row(state, FAKE_MODEL)["state"] == "stopped"
        assert state["services"] == []
        again = http.post(f"/api/models/{FAKE_MODEL}/stop")
        assert again.json() == {"name": FAKE_MODEL, "stopped": False}


@pytest.mark.usefixtures("fake_vllm")
def test_failed_start_shows_in_state(start_gateway: Start, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_VLLM_MODE", "exit")
    monkeypatch.setenv("FAKE_VLLM_DELAY", "0")
    running = start_gateway()
    with api(running) as http:
        started = http.post(f"/api/models/{FAKE_MODEL}/start")
        assert started.status_code == 503
        assert started.json()["error"]["code"] == "model_start_failed"
        # the failed service's supervisor may still be finishing (pool.state says "starting"
        # while it runs): the state is "failed" once it has ended
        deadline = time.monotonic() + 10
        row = model_row(http.get("/api/state").json(), FAKE_MODEL)
        while row["state"] == "starting" and time.monotonic() < deadline:
            time.sleep(0.05)
            row = model_row(http.get("/api/state").json(), FAKE_MODEL)
        assert row["state"] == "failed"
        assert isinstance(row["failure"], str) and "exited with code 3" in row["failure"]


def test_unknown_names_and_bad_arguments(start_gateway: Start) -> None:
    running = start_gateway()
    with api(running) as http:
        for method, path in [
            ("POST", "/api/models/nope/start"),
            ("POST", "/api/models/nope/stop"),
            ("GET", "/api/logs/..%2Frun"),
        ]:
            answer = http.request(method, path)
            assert answer.status_code == 404, (path, answer.text)
            assert set(answer.json()["error"]) == OPENAI_ERROR_KEYS
        no_log = http.get("/api/logs/nope")
        assert no_log.status_code == 404 and "no log" in no_log.json()["error"]["message"]
        for lines in ("0", "-1", "x"):
            bad = http.get("/api/logs/nope", params={"lines": lines})
            assert bad.status_code == 400 and "lines" in bad.json()["error"]["message"]


def test_refused_requests_are_listed_too(start_gateway: Start) -> None:
    running = start_gateway()
    with api(running) as http:
        http.post("/v1/completions", json={"model": "nope", "prompt": "x"})
        [request] = http.get("/api/state").json()["requests"]
    assert (request["model"], request["status"], request["tokens"]) == ("nope", 404, 0)
    assert request["ttft"] is None and request["tokens_per_second"] is None


def test_ring_keeps_the_last_requests_and_series_the_last_minutes() -> None:
    recent = RecentRequests()
    now = 1_000_002.0
    old = RequestRecord("a", 200, now - SERIES_POINTS * STEP_SECONDS - 1, 1.0, 0.1, 5, 5.5)
    recent.add(old)
    for n in range(250):
        recent.add(RequestRecord("b", 200, now - 1, 1.0, 0.1, n, None))
    latest = recent.latest()
    assert len(latest) == 200 and latest[0]["tokens"] == 249 and latest[-1]["tokens"] == 50
    series = recent.series(now)
    assert list(series["models"]) == ["b"]  # a's request left the window
    assert series["models"]["b"]["requests"][-1] == 250 / STEP_SECONDS
    assert series["end"] >= now and series["end"] - now <= STEP_SECONDS


def test_dashboard_url_and_open() -> None:
    assert dashboard_url("0.0.0.0", 8765, "k+/=") == "http://127.0.0.1:8765/#key=k%2B%2F%3D"
    assert dashboard_url("::", 1, "k") == "http://[::1]:1/#key=k"
    assert dashboard_url("example.org", 2, "k") == "http://example.org:2/#key=k"

    class Server:
        started = False
        should_exit = False

    opened: list[str] = []
    server = Server()
    thread = open_when_serving(server, "http://x/#key=k", opened.append)
    time.sleep(0.2)
    assert opened == []
    server.started = True
    thread.join(5)
    assert opened == ["http://x/#key=k"]


@pytest.mark.slow  # a `sage serve` process
def test_serve_open_opens_the_dashboard_with_the_key(
    sage_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened = tmp_path / "opened"
    browser = tmp_path / "browser"
    browser.write_text(f'#!/bin/sh\nprintf %s "$1" > {opened}\n')
    browser.chmod(0o755)
    monkeypatch.setenv("BROWSER", str(browser))  # what Python's webbrowser runs
    port = closed_port()
    process = spawn_serve("--port", str(port), "--open")
    try:
        wait_health(port, process)
        deadline = time.monotonic() + 10
        while not opened.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert opened.read_text() == f"http://127.0.0.1:{port}/#key={key_of(sage_home)}"
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=20)


@pytest.mark.usefixtures("fake_vllm")
def test_adapter_mode_shows_the_adapters_of_a_base_service(
    start_gateway: Start, sage_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (sage_home / "config.toml").write_text("[vllm]\nserve_adapter = true\n")
    monkeypatch.setenv("FAKE_VLLM_DELAY", "0")
    add_adapter(sage_home, "coder-a")
    add_adapter(sage_home, "coder-b", weights=b"w1")
    running = start_gateway()
    with api(running) as http:
        started = http.post("/api/models/coder-a/start")
        assert started.status_code == 200, started.text
        state = http.get("/api/state").json()
        [service] = state["services"]
        assert service["name"] == SERVICE and service["base_model"] == BASE
        assert service["adapters"] == ["coder-a"] and service["port"] == started.json()["port"]
        assert model_row(state, "coder-a")["port"] == service["port"]
        assert model_row(state, "coder-b")["port"] is None
