"""The conversation (history, trimming, reset) and the engine on the mock backend."""

from __future__ import annotations

import pytest

from sage_lsp.backends.base import ChatRequest, Delta, Finish, Message, Passage
from sage_lsp.backends.mock import MockBackend, mock_answer
from sage_lsp.chat.conversation import Conversation, Turn, estimate_tokens
from sage_lsp.chat.engine import ChatEngine


def test_history_is_trimmed_oldest_first_within_the_budget() -> None:
    conversation = Conversation("sys", history_tokens=300)
    for n in range(20):
        conversation.turns.append(Turn(f"question {n} " + "x" * 100, f"answer {n}", True))
    messages = conversation.messages_for("newest")
    assert messages[0] == Message("system", "sys")
    assert messages[-1] == Message("user", "newest")
    kept = [m.content for m in messages[1:-1]]
    assert kept, "recent turns should fit"
    assert kept[-1] == "answer 19" and kept[-2].startswith("question 19")
    assert not any(c.startswith("question 0 ") for c in kept)
    assert sum(estimate_tokens(m.content) for m in messages) <= 300
    assert len(kept) % 2 == 0, "turns are kept whole"


def test_a_turn_larger_than_the_budget_leaves_only_system_and_question() -> None:
    conversation = Conversation("sys", history_tokens=300)
    conversation.turns.append(Turn("y" * 5000, "z", True))
    assert conversation.messages_for("q") == (Message("system", "sys"), Message("user", "q"))


def test_reset_keeps_the_id() -> None:
    conversation = Conversation("sys")
    conversation.turns.append(Turn("a", "b", True))
    chat_id = conversation.chat_id
    conversation.reset()
    assert conversation.turns == [] and conversation.chat_id == chat_id
    assert Conversation("sys").chat_id != chat_id


async def test_mock_streams_word_by_word_and_deterministically() -> None:
    backend = MockBackend(delay=0)
    request = ChatRequest((Message("system", "s"), Message("user", "hello there")))
    first = [e async for e in backend.stream(request)]
    second = [e async for e in backend.stream(request)]
    assert first == second
    deltas = [e.text for e in first if isinstance(e, Delta)]
    assert len(deltas) > 20 and all(len(d.split()) == 1 for d in deltas)
    assert "".join(deltas) == mock_answer(request)
    assert "hello there" in "".join(deltas) and "--backend" in "".join(deltas)
    assert isinstance(first[-1], Finish) and first[-1].usage is not None


def test_mock_quotes_its_best_source() -> None:
    passage = Passage(1, "Lifecycle", "docs/lifecycle.md", "Stopping", "Services stop when idle.")
    request = ChatRequest((Message("user", "when do services stop?"),), passages=(passage,))
    answer = mock_answer(request)
    assert "Services stop when idle." in answer and "[1]" in answer and "Lifecycle" in answer


async def test_engine_result_matches_the_deltas_and_records_the_turn() -> None:
    engine = ChatEngine(MockBackend(delay=0))
    conversation = Conversation("sys")
    seen: list[str] = []
    result = await engine.run_turn(conversation, "hi", seen.append)
    assert result.text == "".join(seen) and result.turn == 1
    assert result.chat_id == conversation.chat_id and result.finish_reason == "stop"
    assert result.total_ms >= result.ttft_ms >= 0
    assert conversation.turns == [Turn("hi", result.text, True)]
    again = await engine.run_turn(conversation, "more", None)
    assert again.turn == 2 and "(turn 2)" in again.text


@pytest.mark.parametrize("history_tokens", [256, 100_000])
def test_messages_always_start_with_system_and_end_with_the_question(history_tokens: int) -> None:
    conversation = Conversation("sys", history_tokens=history_tokens)
    conversation.turns.append(Turn("partial", "", False))
    messages = conversation.messages_for("q")
    assert messages[0].role == "system" and messages[-1] == Message("user", "q")
