"""Each model's context through the gateway: ``max_model_len`` in ``/v1/models`` (what a launch
will give before the model runs, what its vLLM reports once it does) and ``/tokenize`` relayed,
so that ``sage chat`` and the editors fit their prompts to a model behind the gateway."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from sage_lsp.gateway.context import config_length, launch_length
from tests.gateway.conftest import FAKE_MODEL, RunningGateway

Start = Callable[..., RunningGateway]


def test_launch_length_reads_vllms_flag() -> None:
    assert launch_length(["--dtype", "float32", "--max-model-len", "512"]) == 512
    assert launch_length(["--max-model-len=2048"]) == 2048
    assert launch_length(["--max-model-len", "auto"]) is None
    assert launch_length(["--max-model-len"]) is None
    assert launch_length([]) is None


def test_config_length_is_vllms_default(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"max_position_embeddings": 32768}))
    assert config_length(tmp_path) == 32768
    both = {"max_position_embeddings": 4096, "seq_length": 2048}
    (tmp_path / "config.json").write_text(json.dumps(both))
    assert config_length(tmp_path) == 2048  # the smallest, as vLLM takes it
    scaled = {"max_position_embeddings": 4096, "rope_scaling": {"type": "yarn", "factor": 4}}
    (tmp_path / "config.json").write_text(json.dumps(scaled))
    assert config_length(tmp_path) is None  # scaled: vLLM's own arithmetic, not guessed
    assert config_length(tmp_path / "missing") is None


@pytest.mark.slow
@pytest.mark.usefixtures("fake_vllm")
def test_context_and_tokenize_through_the_gateway_let_sage_chat_fit_its_prompt(
    start_gateway: Start, sage_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SAGE_VLLM_ARGS", "--max-model-len 400")
    monkeypatch.delenv("SAGE_INDEX")  # retrieval as a user has it: the default index
    running = start_gateway()
    client = running.client().with_options(max_retries=0)
    # before the model runs: what its launch will give
    [listed] = [m for m in client.models.list().data if m.id == FAKE_MODEL]
    assert getattr(listed, "max_model_len", None) == 400
    # sage chat, as on a laptop pointed at a gateway: retrieval on (the default index), a
    # question long enough that the prompt must be fitted to the 400-token context
    question = "How do I stop the model services? " + "Please be precise. " * 30
    done = subprocess.run(
        [sys.executable, "-m", "sage_lsp.cli", "chat", "--backend", "compatible",
         "--base-url", f"{running.url}/v1", "--api-key", running.gateway.key,
         "--model", FAKE_MODEL, "--no-markdown", "-q", question],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "fake0" in done.stdout
    with running.http() as http:
        counted = http.post(
            "/tokenize",
            json={"model": FAKE_MODEL, "messages": [{"role": "user", "content": "hi there"}]},
            headers={"Authorization": f"Bearer {running.gateway.key}"},
        )
        assert counted.status_code == 200 and counted.json()["max_model_len"] == 400
        assert http.post("/tokenize", json={"model": FAKE_MODEL}).status_code == 401
        metrics = http.get("/metrics").text
    # the fake vLLM refuses a prompt over its context: sage chat's was fitted, through /tokenize
    assert f'sage_requests_total{{model="{FAKE_MODEL}",status="200"}} 1.0' in metrics
    [after] = [m for m in client.models.list().data if m.id == FAKE_MODEL]
    assert getattr(after, "max_model_len", None) == 400  # now what the running vLLM reports
