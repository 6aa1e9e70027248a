"""One editor session: its settings, conversations and backend, and the one cleanup path."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeGuard

from sage_lsp import protocol
from sage_lsp.config import Settings
from sage_lsp.core.errors import BackendError

# The chat and the backends are imported on first use, not at start-up (the initialize answer).
if TYPE_CHECKING:
    from sage_lsp.backends.base import Backend
    from sage_lsp.chat.conversation import Conversation
    from sage_lsp.chat.engine import TurnResult
    from sage_lsp.chat.saved import SavedConversations
    from sage_lsp.services.managed_backend import ManagedBackend
    from sage_lsp.services.manager import Progress

log = logging.getLogger(__name__)

Notify = Callable[[str, Any], None]


class WorkProgress(Protocol):
    """Standard work-done progress in the editor (``app.EditorProgress``)."""

    async def begin(self, title: str) -> None:
        """Show a progress item."""
        ...

    def report(self, message: str) -> None:
        """Update it."""
        ...

    def end(self, message: str) -> None:
        """Close it."""
        ...


BACKEND_KEYS = (
    "backend",
    "model",
    "base_url",
    "api_key",
    "finetune_model",
    "finetune_port",
    "request_timeout_seconds",
    "vllm",
    "merge_python",
)
"""Settings whose change means the backend must be built again."""


class Session:
    """State shared by every request of one language-server session."""

    def __init__(
        self, settings: Settings, notify: Notify, progress: WorkProgress | None = None
    ) -> None:
        self.settings = settings
        self.notify = notify
        self.progress = progress
        self.conversations: dict[str, Conversation] = {}
        self.turn_locks: dict[str, asyncio.Lock] = {}
        self.state: protocol.BackendState = "idle"
        self.message: str | None = None
        self.metrics: dict[str, float] = {"turns": 0}
        self._backend: Backend | None = None
        self._backend_lock = asyncio.Lock()
        self._closing: asyncio.Future[None] | None = None
        self.on_close: list[Callable[[], Awaitable[None]]] = []
        """Extra cleanup run by :meth:`close` (the backend manager hooks in here)."""

    # --- conversations -----------------------------------------------------------------------

    def conversation(self, chat_id: str | None) -> Conversation:
        """The conversation ``chat_id``, created when new (also under an id the client chose),
        with the turns an earlier server process saved under that id."""
        found = self.known(chat_id) if chat_id is not None else None
        if found is not None:
            return found
        from sage_lsp.chat.conversation import Conversation

        conversation = Conversation(self.settings.system_prompt, self.settings.history_tokens)
        if chat_id is not None:
            conversation.chat_id = chat_id
        return self._add(conversation)

    def known(self, chat_id: str) -> Conversation | None:
        """The conversation ``chat_id`` of this session, or the one an earlier server process
        saved (an editor window reload starts a new process); None when there is neither."""
        if chat_id in self.conversations:
            return self.conversations[chat_id]
        turns = self._saved().load(chat_id)
        if turns is None:
            return None
        from sage_lsp.chat.conversation import Conversation

        settings = self.settings
        return self._add(
            Conversation(settings.system_prompt, settings.history_tokens, chat_id, turns=turns)
        )

    def keep(self, conversation: Conversation) -> None:
        """Save ``conversation`` as it is now, for a later server process (none left: removed)."""
        self._saved().save(conversation)

    def _add(self, conversation: Conversation) -> Conversation:
        self.conversations[conversation.chat_id] = conversation
        self.turn_locks[conversation.chat_id] = asyncio.Lock()
        return conversation

    def _saved(self) -> SavedConversations:
        from sage_lsp.chat.saved import SavedConversations

        return SavedConversations(self.settings.paths.chats_dir)

    def record(self, result: TurnResult) -> None:
        """Count a finished turn in the metrics."""
        self.metrics["turns"] += 1
        self.metrics["lastTtftMs"] = round(result.ttft_ms, 2)
        self.metrics["lastTokensPerSecond"] = round(result.tokens_per_second, 2)

    # --- backend -----------------------------------------------------------------------------

    def _set_state(self, state: protocol.BackendState, message: str | None = None) -> None:
        changed = (state, message) != (self.state, self.message)
        self.state, self.message = state, message
        if changed:
            model = self._backend.model if self._backend else self.settings.model
            change = protocol.StatusChange(state, self.settings.backend, model, message)
            self.notify(protocol.STATUS_DID_CHANGE, protocol.to_wire(change))

    async def backend(self) -> Backend:
        """The session's backend, built and prepared on first use."""
        async with self._backend_lock:
            if self._backend is not None and self.state == "ready":
                return self._backend
            self._set_state("starting", f"connecting to the {self.settings.backend} backend")
            progress: WorkProgress | None = None
            try:
                if self._backend is None:
                    from sage_lsp.services.factory import create_backend

                    self._backend = create_backend(self.settings, self._on_progress)
                if _manages_a_service(self._backend) and self.progress is not None:
                    progress = self.progress
                    await progress.begin(f"sage: starting the {self.settings.backend} model")
                await self._backend.prepare()
            except BackendError as exc:
                self._set_state("error", str(exc))
                if progress is not None:
                    progress.end(f"failed: {exc.message}")
                raise
            self._set_state("ready", self._backend.describe())
            if progress is not None:
                progress.end("ready")
            log.info("backend ready: %s", self._backend.describe())
            return self._backend

    def _on_progress(self, progress: Progress) -> None:
        message = f"{progress.phase} ({progress.elapsed:.0f} s): {progress.detail}"
        self._set_state("starting", message)
        if self.progress is not None:
            self.progress.report(message)

    @contextlib.asynccontextmanager
    async def turn_backend(self, settings: Settings) -> AsyncIterator[Backend]:
        """The backend for one turn with ``settings``: the session's, whose status then
        follows how the turn ends; or, when the turn overrides a backend setting, one of its
        own, prepared for this turn and closed after it, which leaves the status alone."""
        if self.needs_own_backend(settings):
            from sage_lsp.services.factory import create_backend

            own = create_backend(settings)
            try:
                await own.prepare()
                yield own
            finally:
                await own.aclose()
            return
        try:
            yield await self.backend()
        except BackendError as exc:
            self.report(exc)
            raise
        self.report(None)

    def report(self, exc: BackendError | None) -> None:
        """Tell the status after a turn: an error, or ready again after one."""
        if exc is not None:
            self._set_state("error", str(exc))
        elif self.state == "error" and self._backend is not None:
            self._set_state("ready", self._backend.describe())

    async def stop_backend(self, message: str | None = "stopped") -> None:
        """Close the backend (this session's hold on it); the next request builds a new one.

        The state becomes ``idle`` with ``message`` when there was a backend: "stopped" when
        it was asked for, ``None`` when it only makes way for another (the editor may then
        prepare the new one as it does at start).
        """
        async with self._backend_lock:
            backend, self._backend = self._backend, None
            if backend is not None:
                await backend.aclose()
            self._set_state("idle", message if backend is not None else None)

    def status(self) -> protocol.BackendStatus:
        """The backend's status for ``sage/backend/*``."""
        backend = self._backend
        return protocol.BackendStatus(
            backend=self.settings.backend,
            model=backend.model if backend else self.settings.model,
            state=self.state,
            endpoint=getattr(backend, "base_url", None) if backend else None,
            service=backend.service() if _manages_a_service(backend) else None,
            message=self.message,
            metrics=dict(self.metrics),
        )

    async def reconfigure(self, settings: Settings) -> None:
        """Take new settings; the backend is rebuilt on next use if a backend setting changed."""
        rebuild = self.needs_own_backend(settings)
        self.settings = settings
        if rebuild:
            await self.stop_backend(message=None)  # not a stop: the new backend is not built yet
        for conversation in self.conversations.values():
            conversation.system_prompt = settings.system_prompt
            conversation.history_tokens = settings.history_tokens

    def needs_own_backend(self, overrides: Settings) -> bool:
        """Whether a turn with ``overrides`` needs a backend of its own."""
        return any(getattr(self.settings, k) != getattr(overrides, k) for k in BACKEND_KEYS)

    # --- cleanup -----------------------------------------------------------------------------

    async def close(self) -> None:
        """The one cleanup path: every way a session ends comes here; it runs once, and a
        second caller waits for the first to finish."""
        if self._closing is None:
            self._closing = asyncio.ensure_future(self._cleanup())
        await asyncio.shield(self._closing)

    async def _cleanup(self) -> None:
        log.info("session ending: releasing the backend")
        for hook in self.on_close:
            try:
                await hook()
            except Exception:
                log.exception("cleanup hook failed")
        if _manages_a_service(self._backend):
            self._backend.cancel_preparation()  # a merge is stopped, not waited for
        await self.stop_backend()


def _manages_a_service(backend: Backend | None) -> TypeGuard[ManagedBackend]:
    """Whether ``backend`` runs its own model service (the manager is only imported once one
    is built, so its module being absent means no)."""
    managed = sys.modules.get("sage_lsp.services.managed_backend")
    return managed is not None and isinstance(backend, managed.ManagedBackend)
