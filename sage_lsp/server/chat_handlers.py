"""Handlers of ``sage/chat``, ``sage/chat/reset`` and ``sage/chat/history``."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from sage_lsp import protocol
from sage_lsp.backends.base import BackendError, Passage
from sage_lsp.backends.factory import create_backend
from sage_lsp.chat.engine import ChatEngine
from sage_lsp.chat.fit import Trim
from sage_lsp.config import SettingsError, apply_override
from sage_lsp.rag.index import RetrievalError
from sage_lsp.rag.retrieve import retrieve
from sage_lsp.server.errors import invalid_params, rpc_error
from sage_lsp.server.relay import ChunkRelay

if TYPE_CHECKING:
    from sage_lsp.server.app import SageServer


def _source(p: Passage) -> protocol.Source:
    return protocol.Source(p.n, p.title, p.path, p.heading, p.score, p.uri)


def _trimmed(trim: Trim) -> protocol.Trimmed:
    return protocol.Trimmed(
        trim.note(), trim.turns, [_source(p) for p in trim.passages], trim.cut_chars,
        trim.context_tokens, trim.reserved_tokens, trim.prompt_tokens,
    )  # fmt: skip


class ChatHandlers:
    """The chat method group of one server."""

    def __init__(self, server: SageServer) -> None:
        self.server = server
        self.session = server.session

    def register(self) -> None:
        """Register every handler of the group with the server."""
        self.server.route(protocol.CHAT, self.chat)
        self.server.route(protocol.CHAT_RESET, self.reset)
        self.server.route(protocol.CHAT_HISTORY, self.history)

    async def chat(self, params: Any) -> dict[str, Any]:
        """Answer one question, streaming ``sage/chatChunk``; cancellable."""
        await self.server.configured()
        try:
            p = protocol.from_wire(protocol.ChatParams, params)
            if not p.message.strip():
                raise protocol.InvalidParams("message must not be empty")
            if p.top_k is not None and not 1 <= p.top_k <= 20:
                raise protocol.InvalidParams("topK must be between 1 and 20")
            settings = self.session.settings
            if p.backend:
                settings = apply_override(settings, p.backend, "params backend")
        except (protocol.InvalidParams, SettingsError) as exc:
            raise invalid_params(exc, protocol.CHAT) from None
        session = self.session
        conversation = session.conversation(p.chat_id)
        async with session.turn_locks[conversation.chat_id]:
            relay = ChunkRelay(
                self.server.send_notification,
                self.server.backlog,
                conversation.chat_id,
                len(conversation.turns) + 1,
            )
            own = session.needs_own_backend(settings)
            index = settings.index
            if "index" in params:
                index = None if p.index is None or p.index.lower() == "none" else p.index
            try:
                passages = await asyncio.to_thread(
                    retrieve, settings, index, p.message, p.top_k or settings.top_k
                )
            except RetrievalError as exc:
                raise invalid_params(exc, protocol.CHAT) from None
            try:
                backend = create_backend(settings) if own else await session.backend()
                try:
                    if own:
                        await backend.prepare()
                    engine = ChatEngine(backend, max_tokens=settings.max_tokens)
                    result = await engine.run_turn(
                        conversation, p.message, relay.push if p.stream else None, passages
                    )
                finally:
                    relay.flush()
                    if own:
                        await backend.aclose()
            except BackendError as exc:
                if not own:
                    session.report(exc)
                raise rpc_error(exc) from None
        if not own:
            session.report(None)
        session.record(result)
        chat_result = protocol.ChatResult(
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
        )
        wire: dict[str, Any] = protocol.to_wire(chat_result)
        return wire

    def _known(self, params: Any, method: str) -> str:
        try:
            chat_id = protocol.from_wire(protocol.ChatIdParams, params).chat_id
        except protocol.InvalidParams as exc:
            raise invalid_params(exc, method) from None
        if chat_id not in self.session.conversations:
            raise invalid_params(protocol.InvalidParams(f"chatId {chat_id!r} is unknown"), method)
        return chat_id

    async def reset(self, params: Any) -> dict[str, Any]:
        """Forget a conversation's turns."""
        self.session.conversations[self._known(params, protocol.CHAT_RESET)].reset()
        return {}

    async def history(self, params: Any) -> dict[str, Any]:
        """A conversation's messages, oldest first."""
        conversation = self.session.conversations[self._known(params, protocol.CHAT_HISTORY)]
        messages = [
            protocol.HistoryMessage(m.role, m.content)  # type: ignore[arg-type]
            for m in conversation.history()
        ]
        wire: dict[str, Any] = protocol.to_wire(protocol.HistoryResult(messages))
        return wire
