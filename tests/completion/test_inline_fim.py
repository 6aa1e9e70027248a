"""``textDocument/inlineCompletion`` against the recording fake OpenAI server, in process: the
exact fill-in-the-middle prompt and stops of each template, the chat fallback, the block end,
the cache and cancellation."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from sage_lsp.completion.engine import BLOCK_STOPS
from sage_lsp.completion.templates import TEMPLATES
from tests.completion.test_inline_mock import URI, inline, open_document
from tests.server.conftest import InProcessServer
from tests.support.openai_server import OpenAIServer, Reply

DOCUMENT = "def area(r):\n    return \n\nprint(area(2))\n"
"""A document whose cursor is after ``return `` (line 1, character 11)."""


async def start(fresh: InProcessServer, fake: OpenAIServer, **settings: Any) -> None:
    """Initialize with the compatible backend on ``fake`` and open :data:`DOCUMENT`."""
    model = fake.models[0]
    await fresh.initialize(
        {"backend": "compatible", "baseUrl": fake.base_url, "model": model, **settings}
    )
    open_document(fresh, DOCUMENT)


def completions(fake: OpenAIServer) -> list[dict[str, Any]]:
    """The ``/v1/completions`` requests the fake saw (those with a prompt)."""
    return [r for r in fake.requests if "prompt" in r]


@pytest.mark.parametrize(
    ("model", "prompt", "stops"),
    [
        (
            "Qwen/Qwen2.5-Coder-1.5B",
            "<|fim_prefix|>def area(r):\n    return <|fim_suffix|>\n\nprint(area(2))\n"
            "<|fim_middle|>",
            ["<|endoftext|>", "<|file_sep|>", "<|fim_prefix|>", "\n\n\n"],
        ),
        (
            "bigcode/starcoder2-3b",
            "<fim_prefix>def area(r):\n    return <fim_suffix>\n\nprint(area(2))\n<fim_middle>",
            ["<|endoftext|>", "<file_sep>", "<fim_prefix>", "\n\n\n"],
        ),
        (
            "deepseek-ai/deepseek-coder-1.3b-base",
            "<\uff5cfim\u2581begin\uff5c>def area(r):\n    return <\uff5cfim\u2581hole\uff5c>\n\n"
            "print(area(2))\n<\uff5cfim\u2581end\uff5c>",
            ["<\uff5cend\u2581of\u2581sentence\uff5c>", "<|EOT|>", "<\uff5cfim\u2581begin\uff5c>",
             "\n\n\n"],
        ),
        (
            "codellama/CodeLlama-7b-hf",
            "<PRE> def area(r):\n    return  <SUF>\n\nprint(area(2))\n <MID>",
            ["<EOT>", "<PRE>", "<SUF>", "\n\n\n"],
        ),
    ],
    ids=["qwen", "starcoder", "deepseek", "codellama"],
)  # fmt: skip
async def test_each_code_model_gets_its_fim_prompt(
    fresh: InProcessServer, model: str, prompt: str, stops: list[str]
) -> None:
    with OpenAIServer(models=[model]) as fake:
        fake.reply = Reply(tokens=["3.14", " * r", " ** 2", "\n"])
        await start(fresh, fake)
        response = await inline(fresh, 1, 11)
    assert response["result"] == {"items": [{"insertText": "3.14 * r ** 2"}]}
    [request] = completions(fake)
    assert request["prompt"] == prompt
    assert request["stop"] == stops
    assert request["max_tokens"] == 64 and request["stream"] is True
    assert request["temperature"] == 0 and request["model"] == model


def test_every_template_stops_at_its_own_tokens() -> None:
    for template in TEMPLATES.values():
        for token in (template.prefix, template.suffix, template.middle):
            assert token.strip() in template.stop
    assert BLOCK_STOPS == ("\n\n\n",)


async def test_settings_shape_the_prompt(fresh: InProcessServer) -> None:
    """``prefixLines``/``suffixLines`` cut the text, ``maxTokens`` is sent, and a named
    ``fimTemplate`` wins over the model's name."""
    with OpenAIServer(models=["my-model"]) as fake:
        completion = {"prefixLines": 0, "suffixLines": 1, "maxTokens": 7, "fimTemplate": "qwen"}
        await start(fresh, fake, completion=completion)
        await inline(fresh, 1, 11)
    [request] = completions(fake)
    assert request["prompt"] == "<|fim_prefix|>    return <|fim_suffix|>\n\n<|fim_middle|>"
    assert request["max_tokens"] == 7


async def test_a_completion_ends_with_its_block(fresh: InProcessServer) -> None:
    """A blank line then a line indented less than the cursor's ends the completion."""
    with OpenAIServer(models=["Qwen2.5-Coder-0.5B"]) as fake:
        fake.reply = Reply(tokens=["r * r", "\n", "\n", "def other():", "\n    pass"])
        await start(fresh, fake)
        response = await inline(fresh, 1, 11)
    assert response["result"]["items"] == [{"insertText": "r * r"}]


async def test_a_stop_the_server_was_not_sent_ends_it_too(fresh: InProcessServer) -> None:
    """The server takes four stops; the others are watched for as the text comes, and the
    stream is closed at the first."""
    with OpenAIServer(models=["Qwen2.5-Coder-0.5B"]) as fake:
        fake.reply = Reply(tokens=["r * r", "<|fim_pad|>", "junk", *["x"] * 50], delay=0.02)
        await start(fresh, fake)
        response = await inline(fresh, 1, 11)
        [stream] = fake.streams
        assert await asyncio.to_thread(stream.done.wait, 2)
    assert response["result"]["items"] == [{"insertText": "r * r"}]
    assert "<|fim_pad|>" not in completions(fake)[0]["stop"]
    assert stream.client_gone_at is not None and not stream.completed


async def test_a_model_without_fim_is_asked_through_chat(fresh: InProcessServer) -> None:
    with OpenAIServer(models=["llama-3-8b-instruct"]) as fake:
        fake.reply = Reply(tokens=["Here:\n", "```python\n", "3.14 * r * r\n", "```\n", "Done."])
        await start(fresh, fake)
        response = await inline(fresh, 1, 11)
    assert response["result"]["items"] == [{"insertText": "3.14 * r * r"}]
    assert not completions(fake)
    [chat] = [r for r in fake.requests if "messages" in r]
    user = chat["messages"][-1]["content"]
    assert user == "```\ndef area(r):\n    return <CURSOR>\n\nprint(area(2))\n\n```"


async def test_the_same_prefix_is_answered_from_the_cache(fresh: InProcessServer) -> None:
    with OpenAIServer(models=["Qwen2.5-Coder-0.5B"]) as fake:
        fake.reply = Reply(tokens=["r * r"])
        await start(fresh, fake)
        first = await inline(fresh, 1, 11)
        second = await inline(fresh, 1, 11)
        other = await inline(fresh, 1, 4)
    assert first["result"] == second["result"] == {"items": [{"insertText": "r * r"}]}
    assert other["result"] == first["result"]
    assert len(completions(fake)) == 2  # the third asks at another place


async def test_cancelling_closes_the_stream_to_the_model(fresh: InProcessServer) -> None:
    with OpenAIServer(models=["Qwen2.5-Coder-0.5B"]) as fake:
        fake.reply = Reply(tokens=["x"] * 200, delay=0.05)
        await start(fresh, fake)
        params = {
            "textDocument": {"uri": URI},
            "position": {"line": 1, "character": 11},
            "context": {"triggerKind": 2},
        }
        msg_id = fresh.request_later("textDocument/inlineCompletion", params)
        for _ in range(200):
            if fake.streams and fake.streams[0].chunks_sent:
                break
            await asyncio.sleep(0.01)
        cancelled = time.monotonic()
        fresh.notify("$/cancelRequest", {"id": msg_id})
        response = await fresh.response(msg_id)
        [stream] = fake.streams
        assert await asyncio.to_thread(stream.done.wait, 2)
    assert response["error"]["code"] == -32800
    assert stream.client_gone_at is not None and not stream.completed
    assert stream.client_gone_at - cancelled < 0.5
