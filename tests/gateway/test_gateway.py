"""The gateway (``sage serve``) through real HTTP, with nothing launched: auth, errors in OpenAI's
shape, metrics, the key and the refusal of a non-loopback host without a key file."""

from __future__ import annotations

import stat
from collections.abc import Callable
from pathlib import Path

import openai
import pytest

from tests.gateway.conftest import FAKE_MODEL, RunningGateway, key_of, sage
from tests.support.ports import closed_port

Start = Callable[..., RunningGateway]
OPENAI_ERROR_KEYS = {"message", "type", "code"}


def test_health_needs_no_key_and_the_api_needs_one(start_gateway: Start) -> None:
    running = start_gateway()
    with running.http() as http:
        assert http.get("/health").json() == {"status": "ok"}
        for path, headers in [
            ("/v1/models", {}),
            ("/v1/models", {"Authorization": "Bearer wrong"}),
            ("/api/services", {"Authorization": f"Bearer {running.gateway.key}x"}),
        ]:
            answer = http.get(path, headers=headers)
            assert answer.status_code == 401
            assert set(answer.json()["error"]) == OPENAI_ERROR_KEYS
            assert answer.json()["error"]["code"] == "invalid_api_key"
        authorised = {"Authorization": f"Bearer {running.gateway.key}"}
        assert http.get("/api/services", headers=authorised).status_code == 404
    with pytest.raises(openai.AuthenticationError):
        running.client("wrong").models.list()


@pytest.mark.usefixtures("fake_vllm")
def test_models_list_the_store(start_gateway: Start) -> None:
    models = start_gateway().client().models.list()
    assert [(m.id, m.owned_by, m.object) for m in models.data] == [(FAKE_MODEL, "sage", "model")]


def test_unknown_model_is_404_in_openais_shape(start_gateway: Start) -> None:
    running = start_gateway()
    with pytest.raises(openai.NotFoundError) as caught:
        running.client().chat.completions.create(
            model="nope", messages=[{"role": "user", "content": "hi"}]
        )
    assert caught.value.status_code == 404
    error = caught.value.response.json()["error"]
    assert set(error) == OPENAI_ERROR_KEYS and error["code"] == "model_not_found"
    assert "nope" in error["message"]
    with pytest.raises(openai.NotFoundError):  # not even a valid name
        running.client().completions.create(model="../run", prompt="x")


@pytest.mark.usefixtures("fake_vllm")
def test_metrics_text(start_gateway: Start) -> None:
    running = start_gateway()
    with running.http() as http:
        missing = http.post(
            "/v1/completions",
            json={"model": "nope", "prompt": "x"},
            headers={"Authorization": f"Bearer {running.gateway.key}"},
        )
        assert missing.status_code == 404
        text = http.get("/metrics").text  # no key needed
    assert 'sage_requests_total{model="nope",status="404"} 1.0' in text
    assert f'sage_service_up{{model="{FAKE_MODEL}"}} 0.0' in text
    for name in ("sage_time_to_first_token_seconds", "sage_generated_tokens_total"):
        assert f"# TYPE {name.removesuffix('_total')}" in text


def test_serve_key_prints_the_same_private_key(sage_home: Path) -> None:
    first, second = sage("serve", "key"), sage("serve", "key")
    assert first.returncode == 0, first.stderr
    assert first.stdout == second.stdout and first.stdout.strip() == key_of(sage_home)
    assert len(first.stdout.splitlines()) == 1
    mode = stat.S_IMODE((sage_home / "run" / "gateway.key").stat().st_mode)
    assert mode == 0o600


def test_serve_key_reads_a_given_file(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text("team-key\n")
    assert sage("serve", "key", "--api-key-file", str(key_file)).stdout == "team-key\n"


def test_a_host_beyond_loopback_needs_a_key_file() -> None:
    done = sage("serve", "--host", "0.0.0.0", "--port", str(closed_port()))
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1 and "--api-key-file" in done.stderr
