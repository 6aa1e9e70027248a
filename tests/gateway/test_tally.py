"""What the relay reads in each answer without parsing it: whole events passed on however the
upstream's reads cut them, the model's name put right, the chunks with text counted, the usage
taken when the answer reports it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, cast

from sage_lsp.gateway.app import Gateway, Tally, relay_events, renamer
from sage_lsp.gateway.metrics import GatewayMetrics

EVENTS = [
    b'{"id":"c1","model":"/srv/base","choices":[{"delta":{"role":"assistant","content":""}}]}',
    b'{"id":"c1","model":"/srv/base","choices":[{"delta":{"content":"def"}}]}',
    b'{"id": "c1", "model": "/srv/base", "choices": [{"delta": {"content": " f"}}]}',
    b'{"id":"c1","model":"/srv/base","choices":[{"delta":{"reasoning_content":"hm"}}]}',
    b'{"id":"c1","model":"/srv/base","choices":[{"delta":{"content":"say \\"model\\":\\"x\\""}}]}',
    b'{"id":"c1","model":"/srv/base","choices":[],"usage":null}',
]
STREAM = b"".join(b"data: " + event + b"\n\n" for event in EVENTS) + b"data: [DONE]\n\n"


def tally() -> Tally:
    gateway = Gateway("key", cast(Any, None), GatewayMetrics())
    return Tally(gateway, "coder", 0.0, counted=True)


async def upstream(data: bytes, size: int) -> AsyncIterator[bytes]:
    """The upstream's raw reads: the stream cut every ``size`` bytes."""
    for i in range(0, len(data), size):
        yield data[i : i + size]


def relayed(served: str, size: int, counted: Tally, data: bytes = STREAM) -> list[bytes]:
    async def read() -> list[bytes]:
        rename = renamer("coder", served)
        return [block async for block in relay_events(upstream(data, size), counted, rename)]

    return asyncio.run(read())


def test_events_pass_whole_renamed_and_counted_however_reads_cut_them() -> None:
    for size in (1, 7, 100, len(STREAM)):
        counted = tally()
        blocks = relayed("/srv/base", size, counted)
        assert all(block.endswith(b"\n\n") for block in blocks)  # never half an event
        out = b"".join(blocks)
        assert out == STREAM.replace(b'"model":"/srv/base"', b'"model":"coder"').replace(
            b'"model": "/srv/base"', b'"model":"coder"'
        )
        assert b'say \\"model\\":\\"x\\"' in out  # text that looks like a name is left alone
        assert counted.chunks == 3 and counted.usage is None  # def, " f" and the quote
        assert counted.first is not None


def test_a_stream_already_named_is_passed_on_as_it_came() -> None:
    counted = tally()
    named = STREAM.replace(b"/srv/base", b"coder")
    assert b"".join(relayed("coder", 50, counted, named)) == named
    usage = b'data: {"model":"coder","choices":[],"usage":{"completion_tokens":17}}\n\n'
    relayed("coder", 9, counted, usage)
    assert counted.usage == 17


def test_a_whole_answer_keeps_its_text_and_reports_its_usage() -> None:
    counted = tally()
    answer = (
        b'{"model":"/srv/base","choices":[{"message":{"content":"say \\"model\\":\\"x\\""}}],'
        b'"usage":{"prompt_tokens":3,"completion_tokens":17}}'
    )
    counted.seen(answer, chunks=False)
    rename = renamer("coder", "/srv/base")
    assert rename is not None and rename(answer) == answer.replace(b"/srv/base", b"coder")
    assert counted.usage == 17 and counted.chunks == 0
    assert renamer("coder", "coder") is None  # named as asked: passed on as it came
