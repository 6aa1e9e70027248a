"""Handlers of ``sage/chat``, ``sage/chat/reset`` and ``sage/chat/history``."""

from __future__ import annotations

import asyncio

from sage_lsp import protocol
from sage_lsp.chat.conversation import Conversation
from sage_lsp.chat.editor_context import with_context, within_budget
from sage_lsp.chat.engine import ChatEngine
from sage_lsp.chat.fit import Trim
from sage_lsp.config import apply_override
from sage_lsp.core.types import Passage
from sage_lsp.rag.retrieve import retrieve
from sage_lsp.server.documents import excerpt
from sage_lsp.server.relay import ChunkRelay
from sage_lsp.server.routes import Request


def _source(p: Passage) -> protocol.Source:
    return protocol.Source(p.n, p.title, p.path, p.heading, p.score, p.uri)


def _trimmed(trim: Trim) -> protocol.Trimmed:
    return protocol.Trimmed(
        trim.note(), trim.turns, [_source(p) for p in trim.passages], trim.cut_chars,
        trim.context_tokens, trim.reserved_tokens, trim.prompt_tokens,
    )  # fmt: skip


async def chat(request: Request[protocol.ChatParams]) -> protocol.ChatResult:
    """Answer one question, streaming ``sage/chatChunk``; cancellable."""
    p, session, server = request.params, request.session, request.server
    await server.configured()
    if not p.message.strip():
        raise protocol.InvalidParams("message must not be empty")
    if p.top_k is not None and not 1 <= p.top_k <= 20:
        raise protocol.InvalidParams("topK must be between 1 and 20")
    settings = session.settings
    if p.backend:
        settings = apply_override(settings, p.backend, "params backend")
    refs = p.context or []
    excerpts = within_budget(
        [excerpt(server, ref, f"context[{n}]") for n, ref in enumerate(refs)],
        settings.context_tokens,
    )
    conversation = session.conversation(p.chat_id)
    async with session.turn_locks[conversation.chat_id]:
        relay = ChunkRelay(
            server.send_notification, server.backlog, conversation.chat_id,
            len(conversation.turns) + 1,
        )  # fmt: skip
        index = settings.index
        if "index" in request.sent:
            index = None if p.index is None or p.index.lower() == "none" else p.index
        passages = await asyncio.to_thread(
            retrieve, settings, index, p.message, p.top_k or settings.top_k
        )
        async with session.turn_backend(settings) as backend:
            try:
                engine = ChatEngine(backend, max_tokens=settings.max_tokens)
                result = await engine.run_turn(
                    conversation,
                    with_context(p.message, excerpts),
                    relay.push if p.stream else None,
                    passages,
                )
            finally:
                relay.flush()
                session.keep(conversation)  # a stopped answer's part stays, as in memory
    session.record(result)
    return protocol.ChatResult(
        chat_id=result.chat_id,
        turn=result.turn,
        text=result.text,
        finish_reason=result.finish_reason,
        timings=protocol.Timings(
            round(result.ttft_ms, 3),
            round(result.total_ms, 3),
            round(result.tokens_per_second, 2),
        ),
        sources=[_source(s) for s in result.passages],
        usage=protocol.Usage(result.usage.prompt_tokens, result.usage.completion_tokens)
        if result.usage
        else None,
        trimmed=_trimmed(result.trim) if result.trim else None,
        context=[
            # the model's context may have cut every attached block further (trim.cut_chars)
            protocol.AttachedContext(
                ref.uri, e.truncated or bool(result.trim and result.trim.cut_chars), ref.range
            )
            for ref, e in zip(refs, excerpts, strict=True)
        ]
        if refs
        else None,
    )


def _conversation(request: Request[protocol.ChatIdParams]) -> Conversation:
    """The conversation the params name (this process's or a saved one); -32602 when it is
    unknown."""
    chat_id = request.params.chat_id
    conversation = request.session.known(chat_id)
    if conversation is None:
        raise protocol.InvalidParams(f"chatId {chat_id!r} is unknown")
    return conversation


async def reset(request: Request[protocol.ChatIdParams]) -> protocol.Empty:
    """Forget a conversation's turns, here and on disk."""
    conversation = _conversation(request)
    conversation.reset()
    request.session.keep(conversation)
    return protocol.Empty()


async def history(request: Request[protocol.ChatIdParams]) -> protocol.HistoryResult:
    """A conversation's messages, oldest first."""
    messages = [
        protocol.HistoryMessage(m.role, m.content)  # type: ignore[arg-type]
        for m in _conversation(request).history()
    ]
    return protocol.HistoryResult(messages)
