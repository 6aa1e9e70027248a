"""``sage serve --max-models``: a request for another model queues behind a model that serves,
never evicting it; an idle model makes room; a queued client that goes away is dropped."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx2
import pytest

from tests.gateway.conftest import FAKE_MODEL, RunningGateway
from tests.gateway.test_relay import HI, registry, wait_until
from tests.services.conftest import add_merged_model

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("fake_vllm")]

Start = Callable[..., RunningGateway]
OTHER = "tiny-two"


def test_another_model_queues_until_the_serving_one_is_idle(
    start_gateway: Start, sage_home: Path
) -> None:
    add_merged_model(sage_home, OTHER)
    running = start_gateway(max_models=1)
    client = running.client().with_options(max_retries=0)  # a retry would hide a failure
    stream = client.chat.completions.create(model=FAKE_MODEL, messages=HI, stream=True)
    chunks = iter(stream)
    assert next(chunks).model == FAKE_MODEL  # 40 tokens 0.05 s apart: about 2 s to go
    first = registry(sage_home).read(FAKE_MODEL)
    assert first is not None
    with ThreadPoolExecutor(2) as threads:
        later = [
            threads.submit(client.chat.completions.create, model=OTHER, messages=HI)
            for _ in range(2)
        ]
        texts = [next(chunks).choices[0].delta.content for _ in range(20)]  # about 1 s
        # queued: nothing launched for the other model, the first one still serves
        assert not any(f.done() for f in later)
        assert registry(sage_home).read(OTHER) is None
        assert first.processes_alive()
        texts += [chunk.choices[0].delta.content for chunk in chunks]
        answers = [f.result(30) for f in later]
    assert "".join(t or "" for t in texts).startswith("fake")
    assert [a.model for a in answers] == [OTHER, OTHER]
    # the idle model made room: released (and stopped, nobody else held it); one launch each
    assert registry(sage_home).read(FAKE_MODEL) is None
    wait_until(lambda: not first.processes_alive(), 10, "the first model's service ended")
    assert running.gateway.pool.launches == 2
    assert running.gateway.pool.manager.held == {OTHER}


def test_an_idle_model_makes_room_at_once(start_gateway: Start, sage_home: Path) -> None:
    add_merged_model(sage_home, OTHER)
    running = start_gateway(max_models=1)
    client = running.client()
    client.chat.completions.create(model=FAKE_MODEL, messages=HI)
    client.chat.completions.create(model=OTHER, messages=HI)
    assert registry(sage_home).read(FAKE_MODEL) is None
    again = client.chat.completions.create(model=FAKE_MODEL, messages=HI)
    assert again.model == FAKE_MODEL and registry(sage_home).read(OTHER) is None
    assert running.gateway.pool.launches == 3


def test_a_queued_client_that_goes_away_is_dropped(start_gateway: Start, sage_home: Path) -> None:
    add_merged_model(sage_home, OTHER)
    running = start_gateway(max_models=1)
    client = running.client()
    stream = iter(client.chat.completions.create(model=FAKE_MODEL, messages=HI, stream=True))
    next(stream)
    with running.http() as http, pytest.raises(httpx2.ReadTimeout):
        http.post(
            "/v1/chat/completions",
            json={"model": OTHER, "messages": HI},
            headers={"Authorization": f"Bearer {running.gateway.key}"},
            timeout=0.5,
        )
    for _ in stream:
        pass
    # the first model is idle now, and nobody waits for the other one: nothing starts it
    wait_until(lambda: 'status="499"' in running.http().get("/metrics").text, 5, "the drop counted")
    assert registry(sage_home).read(OTHER) is None
    first = registry(sage_home).read(FAKE_MODEL)
    assert first is not None and first.state == "ready"
    assert running.gateway.pool.launches == 1
