"""Backends whose model server sage-lsp runs itself: ``finetune`` (a finetuned model from the
store) and ``vllm`` with ``--model`` and no ``--base-url`` (a base model)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable
from pathlib import Path

from sage_lsp import protocol
from sage_lsp.backends.base import ChatRequest, CompletionRequest, StreamEvent
from sage_lsp.backends.openai_compat import OpenAICompatibleBackend
from sage_lsp.config import Settings
from sage_lsp.core.errors import BackendError, ErrorKind
from sage_lsp.services.manager import (
    ProgressCallback,
    ServiceHandle,
    ServiceManager,
    held_service,
)
from sage_lsp.services.store import ModelStore, read_json_object

Ensure = Callable[[ServiceManager], Awaitable[ServiceHandle]]
Send = Callable[[OpenAICompatibleBackend], AsyncGenerator[StreamEvent, None]]
"""One request to a service's client: a chat or a completion stream."""
RESOLVE_AGAIN = frozenset({ErrorKind.AUTH, ErrorKind.CONNECTION, ErrorKind.INTERRUPTED})
"""Errors after which a managed service is looked up again in the registry: it was stopped, or
relaunched with a new key or on another port."""

log = logging.getLogger(__name__)


class ManagedBackend:
    """Prepares by ensuring the service (merge, launch or join) and holds it until closed;
    answers through the service's OpenAI-compatible endpoint."""

    def __init__(
        self,
        name: str,
        settings: Settings,
        ensure: Ensure,
        wanted_model: str,
        on_progress: ProgressCallback | None = None,
    ) -> None:
        self.name = name
        self.settings = settings
        self.manager = ServiceManager(settings, on_progress)
        self._ensure = ensure
        self._wanted = wanted_model
        self.handle: ServiceHandle | None = None
        self._client: OpenAICompatibleBackend | None = None
        self._preparing = asyncio.Lock()
        self._ensuring: asyncio.Future[ServiceHandle] | None = None
        self._stopping = False
        self._tokens: dict[str, frozenset[str]] = {}
        """The added tokens of each model folder asked about (read once)."""

    @property
    def model(self) -> str:
        """The model served (the finetuned model's name, or the base model)."""
        return self.handle.served_model_name if self.handle else self._wanted

    @property
    def base_url(self) -> str | None:
        """The service's endpoint, once running."""
        return self.handle.base_url if self.handle else None

    def describe(self) -> str:
        """Backend, model and where it is served."""
        where = f" at {self.handle.base_url}" if self.handle else " (not started)"
        return f"{self.name} backend, model {self.model}{where}"

    def service(self) -> protocol.HeldService | None:
        """The service as ``sage/backend/status`` reports it."""
        handle = self.handle
        return held_service(handle.entry, handle.served_model_name) if handle else None

    async def prepare(self) -> None:
        """Ensure the service runs and this session holds it."""
        async with self._preparing:  # turns that fail together look the service up once
            if self._client is not None:
                return
            self._ensuring = asyncio.ensure_future(self._ensure(self.manager))
            try:
                self.handle = await self._ensuring
            except asyncio.CancelledError:
                if not self._stopping:
                    raise  # this caller was cancelled, not the preparation
                raise BackendError(
                    ErrorKind.INTERRUPTED, f"the {self.name} backend was stopped while starting"
                ) from None
            finally:
                self._ensuring, self._stopping = None, False
            self._client = OpenAICompatibleBackend(
                "compatible",
                base_url=self.handle.base_url,
                model=self.handle.served_model_name,
                api_key=self.handle.api_key,
                timeout=self.settings.request_timeout_seconds,
            )

    async def stream(self, request: ChatRequest) -> AsyncGenerator[StreamEvent, None]:
        """Answer through the service. When it fails with an auth, connection or interrupted
        error (stopped, or relaunched with a new key or port by another session) before any of
        the answer came, it is looked up again through the registry (join and hold, or launch)
        and asked once more; after part of the answer, the error stands and the next turn looks
        it up again."""
        async for event in self._ask(lambda client: client.stream(request)):
            yield event

    async def complete(self, request: CompletionRequest) -> AsyncGenerator[StreamEvent, None]:
        """Continue ``request.prompt`` through the service's ``/v1/completions``, looked up
        again as :meth:`stream` does."""
        async for event in self._ask(lambda client: client.complete(request)):
            yield event

    async def tokenizer_tokens(self) -> frozenset[str]:
        """The added tokens of the served model's tokenizer config (the ``--model`` folder of
        the service's vLLM command); empty when it has none or is not a folder."""
        await self.prepare()
        assert self.handle is not None
        command = self.handle.entry.command
        if "--model" not in command[:-1]:
            return frozenset()
        folder = command[command.index("--model") + 1]
        if folder not in self._tokens:
            self._tokens[folder] = await asyncio.to_thread(added_tokens, Path(folder))
        return self._tokens[folder]

    async def _ask(self, send: Send) -> AsyncGenerator[StreamEvent, None]:
        """``send`` to the service's client; once more after a look-up (see :meth:`stream`)."""
        await self.prepare()
        answered = False
        try:
            async for event in self._ask_once(send):
                answered = True
                yield event
            return
        except BackendError as exc:
            if answered or exc.kind not in RESOLVE_AGAIN:
                raise
            log.info("%s: %s; looking the service up again", self.name, exc.message)
        await self.prepare()
        async for event in self._ask_once(send):
            yield event

    async def _ask_once(self, send: Send) -> AsyncGenerator[StreamEvent, None]:
        """``send`` to the current client; forget it on errors that call for a new look-up."""
        client, handle = self._client, self.handle
        assert client is not None and handle is not None
        try:
            async with self.manager.in_use(handle):  # an adapter load waits for the answer
                async for event in send(client):
                    yield event
        except BackendError as exc:
            if exc.kind in RESOLVE_AGAIN:
                await self._forget(client)
            raise

    async def _forget(self, client: OpenAICompatibleBackend) -> None:
        """Drop ``client`` (and the handle it came from, unless another turn replaced both
        already); this session's hold stays, the next preparation renews it."""
        if self._client is client:
            self._client = None
            self.handle = None
        await client.aclose()

    def cancel_preparation(self) -> None:
        """Stop a preparation in progress (a merge is killed, a launch no longer waited for):
        the session is ending and must not wait for it. The preparing call fails with an
        interrupted error."""
        if self._ensuring is not None:
            self._stopping = True
            self._ensuring.cancel()

    async def aclose(self) -> None:
        """Close the connection and release this session's hold on the service."""
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        await self.manager.release()


def added_tokens(folder: Path) -> frozenset[str]:
    """The added tokens of the tokenizer in ``folder``: ``added_tokens_decoder`` and
    ``additional_special_tokens`` of its ``tokenizer_config.json`` (as transformers 4 writes
    them) and ``added_tokens`` of its ``tokenizer.json`` (where transformers 5 keeps them)."""
    config = read_json_object(folder / "tokenizer_config.json")
    decoder = config.get("added_tokens_decoder")
    added = list(decoder.values()) if isinstance(decoder, dict) else []
    listed = read_json_object(folder / "tokenizer.json").get("added_tokens")
    added += listed if isinstance(listed, list) else []
    tokens = {t.get("content") for t in added if isinstance(t, dict)}
    special = config.get("additional_special_tokens")
    tokens.update(special if isinstance(special, list) else [])
    return frozenset(t for t in tokens if isinstance(t, str))


def finetune_backend(settings: Settings, on_progress: ProgressCallback | None) -> ManagedBackend:
    """The ``finetune`` backend for ``settings.finetune_model`` (which must be in the store)."""
    name, port = settings.finetune_model, settings.finetune_port
    ModelStore(settings.sage_home).get(name)  # a missing model is reported before anything else
    return ManagedBackend(
        "finetune", settings, lambda m: m.ensure_finetuned(name, port), name, on_progress
    )


def managed_vllm_backend(
    settings: Settings, on_progress: ProgressCallback | None
) -> ManagedBackend:
    """The ``vllm`` backend for a base model that sage-lsp serves itself."""
    assert settings.model is not None
    model, port = settings.model, settings.finetune_port
    return ManagedBackend(
        "vllm", settings, lambda m: m.ensure_base(model, port), model, on_progress
    )
