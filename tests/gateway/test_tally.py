"""What the relay reads in each answer without parsing it: the model's name put right, the
chunks with text counted, the usage taken when the answer reports it."""

from __future__ import annotations

from typing import Any, cast

from sage_lsp.gateway.app import Gateway, Tally, renamed
from sage_lsp.gateway.metrics import GatewayMetrics


def tally() -> Tally:
    gateway = Gateway("key", cast(Any, None), GatewayMetrics())
    return Tally(gateway, "coder", 0.0, counted=True)


def test_chunks_are_renamed_and_counted_as_vllm_and_others_write_them() -> None:
    counted = tally()
    chunks = [
        b'{"id":"c1","model":"/srv/base","choices":[{"delta":{"role":"assistant","content":""}}]}',
        b'{"id":"c1","model":"/srv/base","choices":[{"delta":{"content":"def"}}]}',
        b'{"id": "c1", "model": "/srv/base", "choices": [{"delta": {"content": " f"}}]}',
        b'{"id":"c1","model":"/srv/base","choices":[{"delta":{"reasoning_content":"hm"}}]}',
        b'{"id":"c2","model":"/srv/base","choices":[{"text":"x"}]}',
        b'{"id":"c1","model":"/srv/base","choices":[],"usage":null}',
    ]
    out = [renamed(chunk, "coder", counted) for chunk in chunks]
    assert all(b'"model":"coder"' in chunk and b"/srv/base" not in chunk for chunk in out)
    assert out[1] == b'{"id":"c1","model":"coder","choices":[{"delta":{"content":"def"}}]}'
    assert counted.chunks == 3 and counted.usage is None  # def, " f" and the completion's x
    assert counted.first is not None


def test_the_usage_wins_and_a_name_is_never_read_inside_text() -> None:
    counted = tally()
    answer = (
        b'{"model":"coder","choices":[{"message":{"content":"say \\"model\\":\\"x\\""}}],'
        b'"usage":{"prompt_tokens":3,"completion_tokens":17}}'
    )
    assert renamed(answer, "coder", counted, chunk=False) == answer  # already the right name
    assert counted.usage == 17 and counted.chunks == 0
    renamed(b'{"model":"a\\"b","choices":[]}', "coder", counted)
    assert renamed(b'{"model":"a\\"b","choices":[]}', "coder", counted) == (
        b'{"model":"coder","choices":[]}'
    )
