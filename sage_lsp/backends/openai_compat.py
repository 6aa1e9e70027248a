"""OpenAI-compatible backends (openai, compatible, vllm, ollama) on the official ``openai`` client.

``openai`` and its HTTP library ``httpx2`` are imported when a backend of this kind is first
built, not at start-up: together they take most of a second to import, and the language server
must answer ``initialize`` quickly (the mock backend never needs them).
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sage_lsp.backends.base import (
    ChatRequest,
    CompletionRequest,
    ContextWindow,
    Delta,
    Finish,
    StreamEvent,
    Usage,
    estimate_prompt_tokens,
)
from sage_lsp.core.errors import BackendError, ErrorKind
from sage_lsp.core.types import Message

if TYPE_CHECKING:
    import openai


@dataclass(frozen=True)
class EndpointDefaults:
    """What a named OpenAI-compatible backend uses when the user does not say."""

    base_url: str | None
    """Default endpoint; ``None`` means the user must give ``--base-url``."""
    model: str | None
    """Default model; ``None`` means ask the server which model it serves."""
    key_hint: str
    """Where the user should put an API key for this backend."""
    needs_key: bool = False
    """Whether the backend cannot work without a key."""


ENDPOINTS: dict[str, EndpointDefaults] = {
    "openai": EndpointDefaults(
        "https://api.openai.com/v1",
        "gpt-4o-mini",
        "set OPENAI_API_KEY, SAGE_CHAT_API_KEY or --api-key",
        needs_key=True,
    ),
    "compatible": EndpointDefaults(None, None, "set SAGE_CHAT_API_KEY or --api-key"),
    "vllm": EndpointDefaults(
        "http://127.0.0.1:8000/v1", None, "pass the server's --api-key with --api-key"
    ),
    "ollama": EndpointDefaults("http://127.0.0.1:11434/v1", None, "ollama needs no key"),
}
"""Defaults of each OpenAI-compatible backend."""

NO_KEY = "EMPTY"
"""Key sent to servers that need none (the openai client insists on one)."""

TRY_AGAIN = "see the server's log; try again later"
"""The hint for failures that may pass (5xx, 429)."""


def _root_cause(exc: BaseException) -> BaseException:
    while exc.__cause__ is not None or exc.__context__ is not None:
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return exc


def _reason(exc: BaseException) -> str:
    cause = _root_cause(exc)
    if isinstance(cause, ConnectionRefusedError) or "refused" in str(cause).lower():
        return "connection refused"
    return str(cause) or type(cause).__name__


def _chat_text(choice: dict[str, Any]) -> object:
    """A chat stream choice's text."""
    return (choice.get("delta") or {}).get("content")


def _completion_text(choice: dict[str, Any]) -> object:
    """A completions stream choice's text."""
    return choice.get("text")


def _positive_int(value: object) -> int | None:
    return value if isinstance(value, int) and value > 0 else None


def _detail(exc: openai.APIStatusError) -> str:
    """The server's own message (vLLM's ``error.message``), on one line."""
    body = exc.body
    message = body.get("message") if isinstance(body, dict) else None
    text = message if isinstance(message, str) and message.strip() else exc.message or ""
    return " ".join(text.split())[:500]


class OpenAICompatibleBackend:
    """A backend speaking the OpenAI chat-completions API with real streaming."""

    def __init__(
        self,
        name: str,
        *,
        base_url: str | None = None,
        model: str | None = None,
        api_key: str | None = None,
        timeout: float = 600.0,
    ) -> None:
        defaults = ENDPOINTS[name]
        self.name = name
        self.base_url = (base_url or defaults.base_url or "").rstrip("/")
        self._defaults = defaults
        self._model = model or defaults.model
        if not self.base_url:
            raise BackendError(
                ErrorKind.CONFIG,
                f"the {name} backend needs a server address",
                "pass --base-url http://HOST:PORT/v1 (or set base_url in config.toml)",
            )
        if defaults.needs_key and not api_key:
            raise BackendError(
                ErrorKind.CONFIG, f"the {name} backend needs an API key", defaults.key_hint
            )
        import httpx2
        import openai

        self._openai = openai
        self._http = httpx2
        self._client = openai.AsyncOpenAI(
            base_url=self.base_url,
            api_key=api_key or NO_KEY,
            timeout=openai.Timeout(timeout, connect=10.0),
            max_retries=0,
        )
        self._timeout = timeout
        self._send_usage_option = True
        self._served: dict[str, int | None] | None = None
        """Each model the server lists, with its context length when it reports one."""
        self._tokenize_url: str | None = (
            self.base_url.removesuffix("/v1") + "/tokenize"
            if self.base_url.endswith("/v1")
            else None
        )
        """vLLM's ``/tokenize`` beside ``/v1``; ``None`` once it proved missing."""

    @property
    def model(self) -> str | None:
        """The model in use, once given or discovered."""
        return self._model

    def describe(self) -> str:
        """Backend, model and endpoint in one line."""
        return f"{self.name} backend, model {self._model or '(ask the server)'} at {self.base_url}"

    async def prepare(self) -> None:
        """Choose the model: the one given, or the only one the server lists at ``/models``."""
        if self._model:
            return
        try:
            served = sorted(await self._list_models())
        except self._openai.OpenAIError as exc:
            raise self._translate(exc, started=False, listing=True) from exc
        if len(served) == 1:
            self._model = served[0]
            return
        searched = {"name": None, "searched": [f"{self.base_url}/models"]}
        if not served:
            raise BackendError(
                ErrorKind.MODEL_NOT_FOUND,
                f"{self.base_url} serves no model",
                "load a model into the server, or pass --model",
                searched,
            )
        listed = ", ".join(served[:8]) + (" …" if len(served) > 8 else "")
        raise BackendError(
            ErrorKind.MODEL_NOT_FOUND,
            f"{self.base_url} serves {len(served)} models ({listed})",
            "choose one with --model",
            {**searched, "served": served},
        )

    async def _list_models(self) -> dict[str, int | None]:
        """The models the server lists at ``/models`` (asked once), with the context length
        vLLM reports as ``max_model_len`` (a LoRA adapter reports none: its ``parent``'s)."""
        if self._served is None:
            page = await self._client.models.list()
            own = {m.id: _positive_int(getattr(m, "max_model_len", None)) for m in page.data}
            parents = {m.id: str(getattr(m, "parent", None) or "") for m in page.data}
            self._served = {name: tokens or own.get(parents[name]) for name, tokens in own.items()}
        return self._served

    async def context_window(self) -> ContextWindow | None:
        """The model's context as the server reports it, or ``None`` when it does not."""
        await self.prepare()
        assert self._model is not None
        try:
            tokens = (await self._list_models()).get(self._model)
        except self._openai.APIStatusError:
            self._served = {}  # the server answers but lists no models: it reports no context
            return None
        except self._openai.OpenAIError:
            return None  # unreachable now: the chat request will say so; asked again next turn
        return ContextWindow(self._model, tokens, self.count_tokens) if tokens else None

    async def count_tokens(self, messages: Sequence[Message]) -> int:
        """Tokens of a prompt made of ``messages``: counted by vLLM's ``/tokenize`` (which
        applies the model's chat template), else estimated with room to spare."""
        if self._tokenize_url is None:
            return estimate_prompt_tokens(messages)
        body = {
            "model": self._model,
            "messages": [{"role": m.role, "content": m.content} for m in messages],
            "add_generation_prompt": True,
        }
        try:
            answer = await self._client.post(self._tokenize_url, cast_to=object, body=body)
        except self._openai.APIConnectionError:
            return estimate_prompt_tokens(messages)  # this time; the server may come back
        except self._openai.OpenAIError:
            answer = None
        count = answer.get("count") if isinstance(answer, dict) else None
        if isinstance(count, int):
            return count
        self._tokenize_url = None  # not vLLM (or an old one): estimate from now on
        return estimate_prompt_tokens(messages)

    def _request_body(self, request: ChatRequest) -> dict[str, Any]:
        assert self._model is not None
        body: dict[str, Any] = {
            "model": self._model,
            "messages": [{"role": m.role, "content": m.content} for m in request.messages],
            "stream": True,
        }
        if request.max_tokens:
            body["max_tokens"] = request.max_tokens
        if self._send_usage_option:
            body["stream_options"] = {"include_usage": True}
        return body

    def _completion_body(self, request: CompletionRequest) -> dict[str, Any]:
        assert self._model is not None
        body: dict[str, Any] = {
            "model": self._model,
            "prompt": request.prompt,
            "max_tokens": request.max_tokens,
            "temperature": 0,
            "stream": True,
        }
        if request.stop:
            body["stop"] = list(request.stop)
        if self._send_usage_option:
            body["stream_options"] = {"include_usage": True}
        return body

    async def _open(self, create: Any, body: Callable[[], dict[str, Any]]) -> tuple[Any, Any]:
        """Send ``body()`` with ``create`` (a ``with_streaming_response.create``); return the
        open streaming response (status already checked)."""
        try:
            opened = create(**body())
            return opened, await opened.__aenter__()
        except self._openai.BadRequestError as exc:
            if not self._send_usage_option or "stream_options" not in str(exc):
                raise self._translate(exc, started=False) from exc
            # Some compatible servers reject stream_options; they just do not report usage.
            self._send_usage_option = False
            return await self._open(create, body)
        except self._openai.OpenAIError as exc:
            raise self._translate(exc, started=False) from exc

    async def stream(self, request: ChatRequest) -> AsyncGenerator[StreamEvent, None]:
        """Stream the answer; closing this iterator closes the HTTP stream at once.

        The official client sends the request and checks the status; the server-sent events
        are then read as lines and decoded with ``json``, which is several times faster than
        building the client's typed chunk objects (see docs/benchmarks.md).
        """
        await self.prepare()
        if request.fit is not None:
            window = await self.context_window()
            if window is not None:
                request = await request.fit(window)
        create = self._client.chat.completions.with_streaming_response.create
        opened = await self._open(create, lambda: self._request_body(request))
        async for event in self._relay(*opened, _chat_text):
            yield event

    async def complete(self, request: CompletionRequest) -> AsyncGenerator[StreamEvent, None]:
        """Continue ``request.prompt`` through ``/v1/completions`` (streamed, greedy);
        closing this iterator closes the HTTP stream at once, which stops vLLM's generation."""
        await self.prepare()
        create = self._client.completions.with_streaming_response.create
        opened = await self._open(create, lambda: self._completion_body(request))
        async for event in self._relay(*opened, _completion_text):
            yield event

    async def tokenizer_tokens(self) -> frozenset[str]:
        """None: an endpoint's model files are not known here."""
        return frozenset()

    async def _relay(
        self, opened: Any, response: Any, text_of: Callable[[dict[str, Any]], object]
    ) -> AsyncGenerator[StreamEvent, None]:
        """The events of an open stream: each choice's text (``text_of``), then the finish."""
        finish: str | None = None
        usage: Usage | None = None
        try:
            async for line in response.iter_lines():
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    break
                chunk = json.loads(data)
                if not isinstance(chunk, dict):
                    raise ValueError("a stream event is not a JSON object")
                if chunk.get("error"):
                    raise self._stream_error(chunk["error"])
                if chunk.get("usage"):
                    u = chunk["usage"]
                    usage = Usage(
                        int(u.get("prompt_tokens", 0)), int(u.get("completion_tokens", 0))
                    )
                choices = chunk.get("choices") or [{}]
                text = text_of(choices[0])
                if text:
                    yield Delta(str(text))
                finish = choices[0].get("finish_reason") or finish
        except self._http.TimeoutException as exc:
            raise self._translate(
                self._openai.APITimeoutError(request=exc.request), started=True
            ) from exc
        except self._http.TransportError as exc:
            raise BackendError(
                ErrorKind.INTERRUPTED,
                f"the connection to {self.base_url} broke while the answer was streaming "
                f"({_reason(exc)})",
                "the server may have crashed or restarted; ask again",
            ) from exc
        except (ValueError, TypeError, AttributeError) as exc:
            raise BackendError(
                ErrorKind.SERVER,
                f"{self.base_url} sent a stream that is not valid OpenAI streaming ({exc})",
                "check that --base-url points at an OpenAI-compatible server",
            ) from exc
        finally:
            await opened.__aexit__(None, None, None)
        if finish is None:
            raise BackendError(
                ErrorKind.INTERRUPTED,
                f"the answer from {self.base_url} ended before it was complete",
                "the server may have stopped; ask again",
            )
        yield Finish("length" if finish == "length" else "stop", usage)

    def _stream_error(self, error: object) -> BackendError:
        message = error.get("message") if isinstance(error, dict) else error
        code = error.get("code") if isinstance(error, dict) else None
        if isinstance(code, int) and 400 <= code < 500 and code != 429:
            return BackendError(
                ErrorKind.REJECTED,
                f"{self.base_url} refused the request while streaming: {message}",
                "asking again unchanged will not help",
            )
        return BackendError(
            ErrorKind.SERVER,
            f"{self.base_url} reported an error while streaming: {message}",
            TRY_AGAIN,
        )

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._client.close()

    def _translate(
        self, exc: openai.OpenAIError, *, started: bool, listing: bool = False
    ) -> BackendError:
        """Turn an ``openai`` exception into a :class:`BackendError` with a next step."""
        oa = self._openai
        url = self.base_url
        if isinstance(exc, oa.APITimeoutError):
            return BackendError(
                ErrorKind.TIMEOUT,
                f"{url} did not answer within {self._timeout:g} s",
                "the server may be overloaded; raise request_timeout_seconds or try again",
            )
        if isinstance(exc, oa.APIConnectionError):
            if started:
                return BackendError(
                    ErrorKind.INTERRUPTED,
                    f"the connection to {url} broke while the answer was streaming "
                    f"({_reason(exc)})",
                    "the server may have crashed or restarted; ask again",
                )
            return BackendError(
                ErrorKind.CONNECTION,
                f"cannot reach {url}: {_reason(exc)}",
                "is the server running? try --backend mock",
            )
        if isinstance(exc, oa.AuthenticationError | oa.PermissionDeniedError):
            return BackendError(
                ErrorKind.AUTH,
                f"{url} refused the API key (HTTP {exc.status_code})",
                self._defaults.key_hint,
            )
        if isinstance(exc, oa.NotFoundError):
            if listing:
                return BackendError(
                    ErrorKind.MODEL_NOT_FOUND,
                    f"{url}/models was not found (HTTP 404)",
                    "check that --base-url ends in /v1, or pass --model",
                    {"name": None, "searched": [f"{url}/models"]},
                )
            return BackendError(
                ErrorKind.MODEL_NOT_FOUND,
                f"{url} does not serve model {self._model!r} (HTTP 404)",
                "check --model (leave it out to use the one model the server lists)",
                {"name": self._model, "searched": [url]},
            )
        if isinstance(exc, oa.APIStatusError):
            detail = _detail(exc)
            if exc.status_code >= 500 or exc.status_code == 429:
                return BackendError(
                    ErrorKind.SERVER,
                    f"{url} failed with HTTP {exc.status_code}: {detail}",
                    TRY_AGAIN,
                )
            return BackendError(
                ErrorKind.REJECTED,
                f"{url} refused the request (HTTP {exc.status_code}): {detail}",
                "asking again unchanged will not help",
            )
        if isinstance(exc, oa.APIError):
            return BackendError(
                ErrorKind.SERVER, f"{url} reported an error: {exc.message}", TRY_AGAIN
            )
        return BackendError(ErrorKind.SERVER, f"unexpected failure talking to {url}: {exc}")
