"""The gateway in adapter mode, in front of the fake vLLM: the adapters of one base served by one
service, each listed with its base as ``parent``, a second adapter loaded while a stream of the
first runs only once that stream ended."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from sage_lsp.services.registry import Registry
from tests.gateway.conftest import RunningGateway
from tests.services.conftest import add_merged_model
from tests.services.test_adapters import SERVICE, add_adapter, loads

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("fake_vllm")]

Start = Callable[..., RunningGateway]


@pytest.fixture
def adapter_mode(sage_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Two finetuned models of one base, as adapters; adapter mode on; streams of 2 s."""
    (sage_home / "config.toml").write_text("[vllm]\nserve_adapter = true\n")
    monkeypatch.setenv("FAKE_VLLM_TOKEN_DELAY", "0.05")
    add_adapter(sage_home, "coder-a")
    add_adapter(sage_home, "coder-b", weights=b"w1")
    return sage_home


def test_models_list_each_adapter_with_its_base_as_parent(
    start_gateway: Start, adapter_mode: Path
) -> None:
    running = start_gateway()
    with running.http() as http:
        answer = http.get("/v1/models", headers={"Authorization": f"Bearer {running.gateway.key}"})
    models = {m["id"]: m for m in answer.json()["data"]}
    assert {models[n].get("parent") for n in ("coder-a", "coder-b")} == {SERVICE}
    assert "parent" not in models.get("tiny", {}), "a merged model has no parent"


def test_two_adapters_through_one_service_the_load_after_the_stream(
    start_gateway: Start, adapter_mode: Path
) -> None:
    running = start_gateway()
    client = running.client()
    ask = {"messages": [{"role": "user", "content": "hi"}]}
    first = client.chat.completions.create(model="coder-a", **ask)  # type: ignore[call-overload]
    assert first.model == "coder-a"
    done: dict[str, float] = {}

    def stream_a() -> None:
        chunks = client.chat.completions.create(model="coder-a", stream=True, **ask)  # type: ignore[call-overload]
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        done["a"] = time.monotonic()

    streaming = threading.Thread(target=stream_a)
    streaming.start()
    time.sleep(0.5)
    second = client.chat.completions.create(model="coder-b", **ask)  # type: ignore[call-overload]
    done["b"] = time.monotonic()
    streaming.join(30)
    assert second.model == "coder-b" and done["a"] <= done["b"]
    registry = Registry(adapter_mode / "run")
    [entry] = registry.entries()
    assert entry.name == SERVICE and set(entry.adapters) == {"coder-a", "coder-b"}
    [load] = loads(entry)
    assert load["running"] == 0, "loaded while a stream ran"
    assert running.gateway.pool.manager.held == {"coder-a", "coder-b"}
    running.stop()
    assert registry.read(SERVICE) is None, "the service only the gateway held stops with it"


def test_adapters_of_one_base_take_one_place_show_up_and_stop_together(
    start_gateway: Start, adapter_mode: Path
) -> None:
    add_merged_model(adapter_mode, "merged")
    running = start_gateway(max_models=1)
    pool = running.gateway.pool
    client = running.client().with_options(max_retries=0)
    ask = {"messages": [{"role": "user", "content": "hi"}]}
    client.chat.completions.create(model="coder-a", **ask)  # type: ignore[call-overload]
    client.chat.completions.create(model="coder-b", **ask)  # type: ignore[call-overload]
    # one service: with room for one, the second adapter did not push the first one out
    registry = Registry(adapter_mode / "run")
    [entry] = registry.entries()
    assert pool.manager.held == {"coder-a", "coder-b"}
    assert (pool.state("coder-a"), pool.state("coder-b")) == ("ready", "ready")
    with running.http() as http:
        metrics = http.get("/metrics").text
    for name in ("coder-a", "coder-b", SERVICE):
        assert f'sage_service_up{{model="{name}"}} 1.0' in metrics
    # another model needs the place: the base's service goes, with both adapters
    client.chat.completions.create(model="merged", **ask)  # type: ignore[call-overload]
    assert registry.read(SERVICE) is None and not entry.processes_alive()
    assert (pool.state("coder-a"), pool.state("coder-b")) == ("stopped", "stopped")
    # an adapter's Stop stops its base's service
    client.chat.completions.create(model="coder-b", **ask)  # type: ignore[call-overload]
    assert pool.state("coder-a") == "stopped" and pool.state("coder-b") == "ready"
    with running.http() as http:
        stop = http.post(
            "/api/models/coder-b/stop", headers={"Authorization": f"Bearer {running.gateway.key}"}
        )
    assert stop.json() == {"name": "coder-b", "stopped": True}
    assert registry.read(SERVICE) is None
    assert pool.state("coder-b") == "stopped" and "coder-b" not in pool.manager.held
