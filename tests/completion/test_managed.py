"""Inline completion through the managed ``finetune`` backend on the fake vLLM: the template
comes from the served model folder's tokenizer config, the prompt goes to the service's
``/v1/completions``."""

from __future__ import annotations

import json
from pathlib import Path

import httpx2
import pytest

from sage_lsp.completion.engine import CompletionEngine, Cursor
from sage_lsp.config import load_settings
from sage_lsp.services.managed_backend import finetune_backend
from tests.services.conftest import FAKE_MODEL
from tests.support.ports import closed_port

FIM = ["<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>"]


@pytest.mark.slow  # the fake vLLM starts as a process of its own
@pytest.mark.usefixtures("fake_vllm")
async def test_the_finetuned_model_is_asked_with_its_tokenizers_template(
    sage_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_VLLM_TOKEN_DELAY", "0")
    merged = sage_home / "finetune_output" / FAKE_MODEL / "merged_model"
    added = {str(n): {"content": token} for n, token in enumerate(FIM)}
    (merged / "tokenizer_config.json").write_text(json.dumps({"added_tokens_decoder": added}))
    settings = load_settings(
        {"backend": "finetune", "finetune_model": FAKE_MODEL, "finetune_port": closed_port()}
    )
    backend = finetune_backend(settings, None)
    try:
        assert set(FIM) <= await backend.tokenizer_tokens()
        cursor = Cursor("def f():\n    return ", "\n")
        text = await CompletionEngine().complete(backend, cursor, settings.completion)
        assert backend.handle is not None
        seen = httpx2.get(f"http://127.0.0.1:{backend.handle.port}/_test/requests").json()
    finally:
        await backend.aclose()
    assert text.startswith("fake0 fake1")
    [request] = [r for r in seen["requests"] if "prompt" in r]
    assert request["prompt"] == "<|fim_prefix|>def f():\n    return <|fim_suffix|>\n<|fim_middle|>"
    assert request["model"] == FAKE_MODEL and request["stream"] is True
