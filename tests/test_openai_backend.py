"""The OpenAI-compatible backend against a real HTTP server, through the real openai client."""

from __future__ import annotations

import asyncio
import time

import pytest

from sage_lsp.backends.base import BackendError, ChatRequest, Delta, ErrorKind, Finish, Message
from sage_lsp.backends.openai_compat import OpenAICompatibleBackend
from sage_lsp.chat.conversation import Conversation
from sage_lsp.chat.engine import ChatEngine
from tests.support.openai_server import OpenAIServer, Reply
from tests.support.ports import closed_port


def backend_for(server: OpenAIServer, **kwargs: object) -> OpenAICompatibleBackend:
    return OpenAICompatibleBackend("compatible", base_url=server.base_url, **kwargs)  # type: ignore[arg-type]


def request(text: str = "hi") -> ChatRequest:
    return ChatRequest((Message("system", "be brief"), Message("user", text)))


async def collect(backend: OpenAICompatibleBackend, req: ChatRequest) -> list[object]:
    return [event async for event in backend.stream(req)]


async def test_deltas_arrive_in_order_and_end_with_usage(openai_server: OpenAIServer) -> None:
    openai_server.reply = Reply(tokens=[f"t{n} " for n in range(50)])
    backend = backend_for(openai_server)
    events = await collect(backend, request())
    deltas = [e.text for e in events if isinstance(e, Delta)]
    assert deltas == [f"t{n} " for n in range(50)]
    finish = events[-1]
    assert isinstance(finish, Finish)
    assert finish.reason == "stop"
    assert finish.usage is not None and finish.usage.completion_tokens == 50
    body = openai_server.requests[-1]
    assert body["stream"] is True
    assert body["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hi"},
    ]
    await backend.aclose()


async def test_model_is_taken_from_the_server_when_it_lists_exactly_one(
    openai_server: OpenAIServer,
) -> None:
    backend = backend_for(openai_server)
    assert backend.model is None
    await backend.prepare()
    assert backend.model == "tiny-model"
    await collect(backend, request())
    assert openai_server.requests[-1]["model"] == "tiny-model"


async def test_several_served_models_ask_the_user_to_choose() -> None:
    with OpenAIServer(models=["b-model", "a-model"]) as server:
        backend = backend_for(server)
        with pytest.raises(BackendError) as err:
            await backend.prepare()
    assert err.value.kind is ErrorKind.MODEL_NOT_FOUND
    assert "2 models (a-model, b-model)" in str(err.value)
    assert "--model" in str(err.value)


async def test_length_finish_is_reported(openai_server: OpenAIServer) -> None:
    openai_server.reply = Reply(tokens=["a", "b"], finish_reason="length")
    events = await collect(backend_for(openai_server), request())
    assert isinstance(events[-1], Finish) and events[-1].reason == "length"


async def test_history_reaches_the_server_on_the_second_turn(openai_server: OpenAIServer) -> None:
    engine = ChatEngine(backend_for(openai_server))
    conversation = Conversation("system prompt")
    openai_server.reply = Reply(tokens=["Paris", " it is."])
    first = await engine.run_turn(conversation, "Capital of France?")
    assert first.text == "Paris it is."
    openai_server.reply = Reply(tokens=["About", " 2 million."])
    second = await engine.run_turn(conversation, "How many people live there?")
    assert (first.turn, second.turn) == (1, 2)
    assert openai_server.requests[-1]["messages"] == [
        {"role": "system", "content": "system prompt"},
        {"role": "user", "content": "Capital of France?"},
        {"role": "assistant", "content": "Paris it is."},
        {"role": "user", "content": "How many people live there?"},
    ]


async def test_401_is_an_authentication_error() -> None:
    with OpenAIServer(api_key="right-key") as server:
        backend = backend_for(server, model="tiny-model", api_key="wrong-key")
        with pytest.raises(BackendError) as err:
            await collect(backend, request())
        assert err.value.kind is ErrorKind.AUTH
        assert "refused the API key (HTTP 401)" in str(err.value)
        good = backend_for(server, model="tiny-model", api_key="right-key")
        events = await collect(good, request())
        assert isinstance(events[-1], Finish)


async def test_unknown_model_is_404_model_not_found(openai_server: OpenAIServer) -> None:
    backend = backend_for(openai_server, model="no-such-model")
    with pytest.raises(BackendError) as err:
        await collect(backend, request())
    assert err.value.kind is ErrorKind.MODEL_NOT_FOUND
    assert "does not serve model 'no-such-model' (HTTP 404)" in str(err.value)


async def test_500_is_a_server_error(openai_server: OpenAIServer) -> None:
    openai_server.reply = Reply(status=500, error_message="engine exploded")
    with pytest.raises(BackendError) as err:
        await collect(backend_for(openai_server, model="tiny-model"), request())
    assert err.value.kind is ErrorKind.SERVER
    assert "HTTP 500" in str(err.value) and "engine exploded" in str(err.value)


VLLM_TOO_LONG = (
    "This model's maximum context length is 512 tokens. However, your prompt contains 600 "
    "input tokens, which exceeds this limit even without any output tokens. Please reduce the "
    "length of the input prompt."
)


async def test_400_says_what_the_server_found_wrong_and_not_to_try_again_later(
    openai_server: OpenAIServer,
) -> None:
    openai_server.reply = Reply(status=400, error_message=VLLM_TOO_LONG)
    with pytest.raises(BackendError) as err:
        await collect(backend_for(openai_server, model="tiny-model"), request())
    assert err.value.kind is ErrorKind.REJECTED
    assert str(err.value) == (
        f"{openai_server.base_url} refused the request (HTTP 400): {VLLM_TOO_LONG} — "
        "asking again unchanged will not help"
    )


@pytest.mark.parametrize("status", [429, 502, 503])
async def test_transient_failures_say_try_again_later(
    openai_server: OpenAIServer, status: int
) -> None:
    openai_server.reply = Reply(status=status, error_message="busy")
    with pytest.raises(BackendError) as err:
        await collect(backend_for(openai_server, model="tiny-model"), request())
    assert err.value.kind is ErrorKind.SERVER
    assert str(err.value) == (
        f"{openai_server.base_url} failed with HTTP {status}: busy — "
        "see the server's log; try again later"
    )


async def test_connection_refused_names_the_url_and_a_next_step() -> None:
    url = f"http://127.0.0.1:{closed_port()}/v1"
    backend = OpenAICompatibleBackend("vllm", base_url=url, model="m")
    with pytest.raises(BackendError) as err:
        await collect(backend, request())
    assert err.value.kind is ErrorKind.CONNECTION
    assert str(err.value) == (
        f"cannot reach {url}: connection refused — is the server running? try --backend mock"
    )


async def test_disconnect_in_mid_stream_is_an_interruption(openai_server: OpenAIServer) -> None:
    openai_server.reply = Reply(tokens=["one ", "two ", "three "], disconnect_after=2)
    got: list[str] = []
    with pytest.raises(BackendError) as err:
        async for event in backend_for(openai_server).stream(request()):
            if isinstance(event, Delta):
                got.append(event.text)
    assert err.value.kind is ErrorKind.INTERRUPTED
    assert "broke while the answer was streaming" in str(err.value)
    assert got == ["one ", "two "]


async def test_cancelling_a_slow_stream_closes_the_server_connection_fast(
    openai_server: OpenAIServer,
) -> None:
    openai_server.reply = Reply(tokens=[f"w{n} " for n in range(1000)], delay=0.05)
    backend = backend_for(openai_server, model="tiny-model")
    first = asyncio.Event()

    async def consume() -> None:
        async for event in backend.stream(request()):
            if isinstance(event, Delta):
                first.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(first.wait(), 5)
    await asyncio.sleep(0.1)
    cancelled_at = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    record = openai_server.streams[-1]
    assert await asyncio.to_thread(record.done.wait, 2)
    assert record.client_gone_at is not None, "the server never saw the client go"
    assert record.client_gone_at - cancelled_at < 0.2
    assert not record.completed and record.chunks_sent < 100


async def test_cancelled_turn_keeps_its_partial_answer(openai_server: OpenAIServer) -> None:
    openai_server.reply = Reply(tokens=["part ", "of ", "it "] + ["x "] * 500, delay=0.02)
    engine = ChatEngine(backend_for(openai_server, model="tiny-model"))
    conversation = Conversation("sys")
    seen: list[str] = []
    task = asyncio.create_task(engine.run_turn(conversation, "go", seen.append))
    while len(seen) < 3:
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    [turn] = conversation.turns
    assert turn.user == "go" and not turn.complete
    assert turn.assistant == "".join(seen) and turn.assistant.startswith("part of it ")


async def test_missing_base_url_and_key_are_config_errors() -> None:
    with pytest.raises(BackendError) as err:
        OpenAICompatibleBackend("compatible")
    assert err.value.kind is ErrorKind.CONFIG and "--base-url" in str(err.value)
    with pytest.raises(BackendError) as err:
        OpenAICompatibleBackend("openai")
    assert err.value.kind is ErrorKind.CONFIG and "OPENAI_API_KEY" in str(err.value)
