"""The prompt fits the model's context: a server like vLLM with a small ``max_model_len``.

Retrieval is on (the packaged docs, as a user gets by default); the server counts prompts with
its own tokenizer (``/tokenize``) and answers HTTP 400 to a prompt that is too long, as vLLM
does.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pytest

from sage_lsp.backends.base import (
    BackendError,
    ContextWindow,
    ErrorKind,
    Message,
    Passage,
    estimate_prompt_tokens,
)
from sage_lsp.backends.openai_compat import OpenAICompatibleBackend
from sage_lsp.chat.conversation import Conversation, Turn
from sage_lsp.chat.engine import ChatEngine
from sage_lsp.chat.fit import PromptFitter, cut_attached
from sage_lsp.config import DEFAULT_INDEX, load_settings
from sage_lsp.rag.retrieve import retrieve
from tests.support.openai_server import OpenAIServer, Reply, count_tokens, words

CONTEXT = 512
QUESTION = "How does the supervisor stop vLLM when the last holder goes away?"


@pytest.fixture
def small_server() -> Iterator[OpenAIServer]:
    """A vLLM-like server whose model takes 512 tokens, answering 40 words a turn."""
    with OpenAIServer(max_model_len=CONTEXT) as server:
        server.reply = Reply(tokens=words("the supervisor stops the process group " * 5))
        yield server


def passages(question: str = QUESTION, k: int = 4) -> list[Passage]:
    """The best passages of the default index (built from the packaged docs)."""
    found = retrieve(load_settings(), DEFAULT_INDEX, question, k)
    assert len(found) == k
    return found


def engine_for(server: OpenAIServer, max_tokens: int | None = None) -> ChatEngine:
    return ChatEngine(
        OpenAICompatibleBackend("compatible", base_url=server.base_url), max_tokens=max_tokens
    )


def sent(server: OpenAIServer) -> list[dict[str, str]]:
    """The messages of the last chat request the server received."""
    chats = [r for r in server.requests if "stream" in r]
    return list(chats[-1]["messages"])


@pytest.mark.parametrize("max_tokens", [None, 100])
@pytest.mark.parametrize("tokenize", [True, False], ids=["tokenize", "estimate"])
async def test_turns_with_retrieval_never_exceed_the_context(
    small_server: OpenAIServer, max_tokens: int | None, tokenize: bool
) -> None:
    small_server.tokenize = tokenize
    engine = engine_for(small_server, max_tokens)
    conversation = Conversation("You are SAGE's code assistant.")
    reserve = max_tokens or CONTEXT // 4
    for n in range(6):
        result = await engine.run_turn(conversation, f"{QUESTION} ({n})", None, passages())
        assert result.text and result.finish_reason == "stop"
        assert small_server.prompt_tokens[-1] + reserve <= CONTEXT
        assert result.trim is not None and result.trim.prompt_tokens <= CONTEXT - reserve
        if tokenize:
            assert result.trim.prompt_tokens == small_server.prompt_tokens[-1], "counted exactly"
    assert len(conversation.turns) == 6 and len(small_server.prompt_tokens) == 6


async def test_a_prompt_that_fits_is_sent_whole_after_one_count(
    small_server: OpenAIServer,
) -> None:
    found = passages(k=1)
    result = await engine_for(small_server).run_turn(Conversation("sys"), "hi?", None, found)
    assert result.trim is None and result.passages == tuple(found)
    assert f"[1] {found[0].title}" in sent(small_server)[0]["content"]
    assert sum(1 for r in small_server.requests if "add_generation_prompt" in r) == 1


async def test_history_is_trimmed_oldest_first(small_server: OpenAIServer) -> None:
    conversation = Conversation("sys")
    for n in range(12):
        conversation.turns.append(Turn(f"question {n} " + "word " * 30, f"answer {n}", True))
    result = await engine_for(small_server).run_turn(conversation, "newest?", None)
    messages = sent(small_server)
    assert messages[0] == {"role": "system", "content": "sys"}
    assert messages[-1] == {"role": "user", "content": "newest?"}
    kept = [m["content"] for m in messages[1:-1]]
    assert kept[-1] == "answer 11" and kept[-2].startswith("question 11 ")
    first_kept = int(kept[0].split()[1])
    assert first_kept > 0 and kept[0].startswith(f"question {first_kept} ")
    assert len(kept) == 2 * (12 - first_kept), "the newest turns, whole"
    assert result.trim is not None and result.trim.turns == first_kept
    assert result.trim.passages == () and result.trim.cut_chars == 0
    assert f"the {first_kept} oldest turns of the history" in result.trim.note()
    assert count_tokens(messages) + CONTEXT // 4 <= CONTEXT


async def test_passages_go_lowest_ranked_first_and_the_result_says_so(
    small_server: OpenAIServer,
) -> None:
    found = passages()
    conversation = Conversation("sys")
    conversation.turns.append(Turn("an older question", "an older answer", True))
    result = await engine_for(small_server).run_turn(conversation, QUESTION, None, found)
    kept = len(result.passages)
    assert 0 < kept < len(found), "the docs' passages do not all fit in 512 tokens"
    assert result.passages == tuple(found[:kept]), "the best ones stay"
    system = sent(small_server)[0]["content"]
    assert all(f"[{p.n}] " in system for p in found[:kept])
    assert not any(f"[{p.n}] " in system for p in found[kept:])
    assert len(sent(small_server)) == 2, "the history went before any passage"
    trim = result.trim
    assert trim is not None and trim.turns == 1
    assert [p.n for p in trim.passages] == [p.n for p in found[kept:]][::-1]
    numbers = ", ".join(f"[{p.n}]" for p in found[kept:])
    assert trim.note() == (
        f"left out the 1 oldest turn of the history and passage{'s' if kept < 3 else ''} "
        f"{numbers} to fit tiny-model's context of 512 tokens (128 of them kept for the answer)"
    )


async def test_attached_code_is_cut_and_marked_when_nothing_else_is_left(
    small_server: OpenAIServer,
) -> None:
    code = "".join(f"    value_{n} = compute({n})\n" for n in range(300))
    question = f"Why is this slow?\n\n```python\ndef run():\n{code}```"
    result = await engine_for(small_server).run_turn(
        Conversation("sys"), question, None, passages()
    )
    message = sent(small_server)[-1]["content"]
    assert message.startswith("Why is this slow?\n\n```python\ndef run():\n    value_0 = ")
    assert message.endswith("characters cut to fit the model's context]\n```")
    assert result.passages == ()
    assert result.trim is not None and 0 < result.trim.cut_chars < len(code)
    assert f"{result.trim.cut_chars} characters of the attached text" in result.trim.note()
    assert small_server.prompt_tokens[-1] + CONTEXT // 4 <= CONTEXT
    assert result.trim.prompt_tokens > CONTEXT // 2, "no more was cut than needed"


async def test_a_question_that_cannot_fit_alone_is_a_clear_error(
    small_server: OpenAIServer,
) -> None:
    conversation = Conversation("sys")
    question = "explain " + "this and that " * 300
    with pytest.raises(BackendError) as err:
        await engine_for(small_server).run_turn(conversation, question, None, passages())
    assert err.value.kind is ErrorKind.TOO_LONG
    tokens = count_tokens([{"content": "sys"}, {"content": question}])
    assert str(err.value) == (
        f"the question does not fit the model: it takes {tokens} tokens with the system prompt, "
        "and tiny-model takes 512 with 128 of them kept for the answer — shorten the question "
        "(or what is attached to it), or lower maxTokens"
    )
    assert "try again" not in str(err.value)
    assert small_server.prompt_tokens == [], "nothing too long was sent"
    assert conversation.turns == []


async def test_max_tokens_as_large_as_the_context_is_a_config_error(
    small_server: OpenAIServer,
) -> None:
    with pytest.raises(BackendError) as err:
        await engine_for(small_server, max_tokens=600).run_turn(Conversation("s"), "hi", None)
    assert err.value.kind is ErrorKind.CONFIG
    assert "maxTokens = 600 leaves no room for a question in tiny-model's context of 512" in str(
        err.value
    )


async def test_a_server_that_reports_no_context_gets_the_prompt_as_it_is() -> None:
    with OpenAIServer() as server:
        found = passages()
        result = await engine_for(server).run_turn(Conversation("sys"), QUESTION, None, found)
    assert result.trim is None and result.passages == tuple(found)
    assert not any("add_generation_prompt" in r for r in server.requests), "nothing to count"


async def test_fitting_again_gives_the_same_request_and_note() -> None:
    """A backend may fit a request twice (a managed service looked up again after a failure)."""

    async def estimate(messages: Sequence[Message]) -> int:
        return estimate_prompt_tokens(messages)

    conversation = Conversation("sys")
    conversation.turns.append(Turn("question " * 100, "answer " * 100, True))
    fitter = PromptFitter(conversation, QUESTION, passages())
    first = await fitter.fit(ContextWindow("m", CONTEXT, estimate))
    trim, kept = fitter.trim, fitter.passages
    assert trim is not None and trim.turns == 1 and trim.passages
    assert await fitter.fit(ContextWindow("m", CONTEXT, estimate)) == first
    assert (fitter.trim, fitter.passages) == (trim, kept)
    assert estimate_prompt_tokens(first.messages) + CONTEXT // 4 <= CONTEXT


def test_cut_attached_keeps_whole_lines_and_the_text_around_the_fences() -> None:
    text = "look:\n```\nline 1\nline 2\nline 3\n```\nand ~~~\n~~~sh\nls\n~~~\nthanks"
    cut, left_out = cut_attached(text, 0.5)
    assert cut == (
        "look:\n```\nline 1\n[… 14 characters cut to fit the model's context]\n```\n"
        "and ~~~\n~~~sh\nl\n[… 2 characters cut to fit the model's context]\n~~~\nthanks"
    )
    assert left_out == 16
    assert cut_attached("no fences here", 0) == ("no fences here", 0)
    assert cut_attached(text, 1.0) == (text, 0)
