"""The gateway's ASGI app (starlette): the OpenAI-compatible routes, auth, errors in OpenAI's
shape, and the relay of requests to the models' services."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hmac
import json
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import aiohttp
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from sage_lsp.core.errors import SageError, ServiceFailure
from sage_lsp.gateway.context import ContextLengths
from sage_lsp.gateway.metrics import GatewayMetrics, scrape
from sage_lsp.gateway.pool import ModelPool, UnknownModel
from sage_lsp.gateway.recent import RecentRequests, RequestRecord, throughput
from sage_lsp.services.manager import ServiceHandle
from sage_lsp.services.registry import ServiceEntry

T = TypeVar("T")

UPSTREAM_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=10.0)
"""No read timeout: a long generation is not a failure."""


def upstream_client() -> aiohttp.ClientSession:
    """The client to the services: aiohttp, whose C parser reads a stream for a fraction of
    the CPU httpx's pure-Python one takes (32 streams on two cores: 20-28 µs of the gateway's
    CPU per relayed token against 40-50), CPU that a machine vLLM keeps busy lacks. A
    connection per request (vLLM closes an idle one after 5 s, and one reused as it closes
    would fail a request), and no cap on how many."""
    return aiohttp.ClientSession(
        timeout=UPSTREAM_TIMEOUT, connector=aiohttp.TCPConnector(force_close=True, limit=0)
    )


def openai_error(status: int, message: str, type_: str, code: str | None) -> JSONResponse:
    """An error in OpenAI's shape: ``{"error": {"message", "type", "code"}}``."""
    body = {"error": {"message": message, "type": type_, "code": code}}
    return JSONResponse(body, status_code=status)


@dataclass
class Gateway:
    """What the routes share: the key, the models' pool, the metrics, the recent requests
    (for the dashboard) and the upstream client."""

    key: str
    pool: ModelPool
    metrics: GatewayMetrics
    client: aiohttp.ClientSession | None = None
    recent: RecentRequests = field(default_factory=RecentRequests)

    @functools.cached_property
    def lengths(self) -> ContextLengths:
        """The models' context lengths, for ``/v1/models``."""
        return ContextLengths(self.pool.manager)

    def authorised(self, request: Request) -> bool:
        """Whether the request carries ``Authorization: Bearer KEY``."""
        given = request.headers.get("authorization", "")
        return hmac.compare_digest(given.encode(), f"Bearer {self.key}".encode())

    @property
    def upstream(self) -> aiohttp.ClientSession:
        """The client to the services (made at the app's start)."""
        assert self.client is not None, "the gateway's app has not started"
        return self.client


WITH_TEXT = re.compile(rb'[{,]\s*"(?:content|text)":\s*"(?!")')
"""A choice with text, in a chunk of a chat (``delta.content``) or a completion (``text``)."""
COMPLETION_TOKENS = re.compile(rb'"completion_tokens":\s*(\d+)')


class Tally:
    """Time to first token and tokens of one relayed answer, for the metrics and the
    dashboard's recent requests."""

    def __init__(self, gateway: Gateway, model: str, started: float, *, counted: bool) -> None:
        self.metrics, self.model, self.started = gateway.metrics, model, started
        self.recent = gateway.recent
        self.counted = counted
        """False for a request that is no answer (``/tokenize``): nothing is recorded."""
        self.first: float | None = None
        self.chunks = 0
        self.usage: int | None = None

    def seen(self, data: bytes, *, chunks: bool) -> None:
        """Count a whole answer, or with ``chunks`` a block of streamed events, read without
        parsing their JSON: a chunk with text is a token, unless the answer reports its
        usage."""
        if not self.counted:
            return
        if self.first is None:
            self.first = time.monotonic()
            self.metrics.ttft.labels(model=self.model).observe(self.first - self.started)
        if chunks:
            self.chunks += len(WITH_TEXT.findall(data))
        usage = COMPLETION_TOKENS.search(data)
        if usage is not None:
            self.usage = int(usage[1])

    def finish(self, status: int) -> None:
        """Record the request and its tokens."""
        if not self.counted:
            return
        self.metrics.requests.labels(model=self.model, status=str(status)).inc()
        tokens = self.usage if self.usage is not None else self.chunks
        if tokens:
            self.metrics.tokens.labels(model=self.model).inc(tokens)
        duration = time.monotonic() - self.started
        ttft = None if self.first is None else self.first - self.started
        self.recent.add(
            RequestRecord(
                self.model, status, time.time(), duration, ttft, tokens,
                throughput(tokens, duration, ttft),
            )
        )  # fmt: skip


def renamer(model: str, served: str) -> Callable[[bytes], bytes] | None:
    """What puts ``model`` where an answer names ``served`` (a bytes substitution, no JSON
    parsed); None when the two are the same. Text that merely looks like a name is escaped in
    JSON, so it never matches."""
    if served == model:
        return None
    return functools.partial(
        re.compile(rb'"model":\s*' + re.escape(json.dumps(served).encode())).sub,
        b'"model":' + json.dumps(model).encode(),
    )


async def relay_events(
    pieces: AsyncIterator[bytes], tally: Tally, rename: Callable[[bytes], bytes] | None
) -> AsyncIterator[bytes]:
    """The upstream's SSE stream as it comes, whole events at a time, each block renamed (see
    :func:`renamer`) and counted by a few calls into C, never event by event in Python: a
    relayed chunk costs the gateway little CPU."""
    pending = b""
    async for piece in pieces:
        pending += piece
        end = pending.rfind(b"\n\n") + 2
        if end < 2:
            continue
        events, pending = pending[:end], pending[end:]
        if rename is not None:
            events = rename(events)
        tally.seen(events, chunks=True)
        yield events
    if pending:
        yield pending


class RelayedStream(StreamingResponse):
    """A streamed answer whose ``on_close`` runs however the response ends: finished,
    failed, or its client gone (which closes the upstream stream)."""

    def __init__(self, body: AsyncIterator[bytes], on_close: Callable[[], Awaitable[None]]) -> None:
        super().__init__(
            body,
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
        self.on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Send the stream, then run ``on_close`` in any case."""
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self.on_close()


CLIENT_GONE = 499
"""The status counted for a request whose client went away before its answer (nginx's)."""


class ClientGone(Exception):
    """The client disconnected while its request waited (for a start, a queue or an answer)."""


async def disconnected(request: Request) -> None:
    """Return once the client has disconnected (its body has been read already)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def unless_gone(request: Request, work: Awaitable[T]) -> T:
    """``work``'s result; if the client disconnects first, ``work`` is cancelled and
    :class:`ClientGone` raised (a queued or waiting client is dropped)."""
    task = asyncio.ensure_future(work)
    watch = asyncio.ensure_future(disconnected(request))
    try:
        done, _ = await asyncio.wait({task, watch}, return_when=asyncio.FIRST_COMPLETED)
    except BaseException:
        task.cancel()
        raise
    finally:
        watch.cancel()
    if task not in done:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        raise ClientGone
    return task.result()


def failed_start(exc: SageError) -> JSONResponse:
    """503 for a service that could not start: the cause and its log."""
    log = exc.details.get("logPath")
    message = exc.message + (f" (log: {log})" if log else "")
    tail = exc.details.get("logTail")
    if isinstance(tail, list) and tail:
        message += "; last lines: " + " | ".join(str(line) for line in tail[-3:])
    return openai_error(503, message, "service_unavailable", "model_start_failed")


def refused(exc: SageError | aiohttp.ClientError | ClientGone, model: str) -> Response:
    """The answer to a request whose model could not be reached: 404 for an unknown model,
    503 for a failed start, 502 for a service that did not answer, 499 (nobody reads it) for
    a client gone meanwhile, else 400."""
    if isinstance(exc, ClientGone):
        return Response(status_code=CLIENT_GONE)
    if isinstance(exc, UnknownModel):
        return openai_error(404, exc.message, "invalid_request_error", "model_not_found")
    if isinstance(exc, ServiceFailure):
        return failed_start(exc)
    if isinstance(exc, aiohttp.ClientError):
        return openai_error(502, f"{model}: its service did not answer: {exc}", "api_error", None)
    return openai_error(400, exc.message, "invalid_request_error", None)


async def connect(
    gateway: Gateway, stack: contextlib.AsyncExitStack, body: dict[str, Any], path: str
) -> tuple[aiohttp.ClientResponse, str]:
    """Hold the model's service (waiting for its start) and send the request to it: its
    answer, and the name the service knows the model by. What needs closing goes on
    ``stack``."""
    handle: ServiceHandle = await stack.enter_async_context(gateway.pool.use(body["model"]))
    upstream = await gateway.upstream.post(
        f"http://127.0.0.1:{handle.port}{path}",
        json={**body, "model": handle.served_model_name},
        headers={"Authorization": f"Bearer {handle.api_key}"},
    )
    stack.callback(upstream.close)  # its connection: vLLM sees the request end
    return upstream, handle.served_model_name


async def relay(gateway: Gateway, request: Request, path: str, *, counted: bool = True) -> Response:
    """Ensure the requested model's service and relay the request to it, as is; one not
    ``counted`` is left out of the metrics and the recent requests."""
    try:
        body = await request.json()
    except ValueError:
        return openai_error(400, "the body is not JSON", "invalid_request_error", None)
    model = body.get("model") if isinstance(body, dict) else None
    if not isinstance(model, str) or not model:
        return openai_error(400, "`model` is required", "invalid_request_error", None)
    started = time.monotonic()
    tally = Tally(gateway, model, started, counted=counted)
    stack = contextlib.AsyncExitStack()
    try:
        upstream, served = await unless_gone(request, connect(gateway, stack, body, path))
    except (SageError, aiohttp.ClientError, ClientGone) as exc:
        await stack.aclose()
        refusal = refused(exc, model)
        tally.finish(refusal.status_code)
        return refusal
    status = upstream.status
    rename = renamer(model, served)
    if status == 200 and upstream.headers.get("content-type", "").startswith("text/event-stream"):

        async def closed() -> None:
            try:
                await stack.aclose()  # first: the upstream closes whatever happens next
            finally:
                tally.finish(status)

        return RelayedStream(relay_events(upstream.content.iter_any(), tally, rename), closed)
    try:
        data = await unless_gone(request, upstream.read())
    except (ClientGone, aiohttp.ClientError) as exc:
        refusal = refused(exc, model)
        tally.finish(refusal.status_code)
        return refusal
    finally:
        await stack.aclose()
    if status == 200:
        tally.seen(data, chunks=False)
        data = rename(data) if rename is not None else data
    tally.finish(status)
    media = upstream.headers.get("content-type", "application/json")
    return Response(data, status_code=status, media_type=media)


async def list_models(gateway: Gateway) -> JSONResponse:
    """The store's finetuned models and the running services, in OpenAI's list shape, each
    with its context length (``max_model_len``) where it is known."""
    pool = gateway.pool
    running = pool.running()
    ready = {entry.name: entry for entry in running if entry.state == "ready"}
    seen: dict[str, dict[str, Any]] = {}

    async def listed(name: str, created: int, service: ServiceEntry | None) -> dict[str, Any]:
        model: dict[str, Any] = {"id": name, "object": "model", "created": created,
                                 "owned_by": "sage"}  # fmt: skip
        length = (
            await gateway.lengths.served(gateway.upstream, service)
            if service is not None
            else gateway.lengths.expected(name)
        )
        if length is not None:
            model["max_model_len"] = length
        return model

    for name in pool.store_models():
        parent = pool.manager.parent(name)  # adapter mode: its base's LoRA service
        seen[name] = await listed(name, 0, ready.get(parent or name))
        if parent is not None:
            seen[name]["parent"] = parent
    for entry in running:
        if entry.name not in seen:
            seen[entry.name] = await listed(
                entry.name, int(entry.started_at), ready.get(entry.name)
            )
    return JSONResponse({"object": "list", "data": list(seen.values())})


def build_app(gateway: Gateway) -> Starlette:
    """The gateway's app; its lifespan opens the upstream client and, at the end, releases
    every hold (a service only the gateway held stops)."""

    def guarded(
        handler: Callable[[Request], Awaitable[Response]],
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            if not gateway.authorised(request):
                return openai_error(
                    401,
                    "Incorrect API key provided: send Authorization: Bearer KEY "
                    "(`sage serve key` prints it)",
                    "invalid_request_error",
                    "invalid_api_key",
                )
            return await handler(request)

        return endpoint

    async def health(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def metrics(_: Request) -> Response:
        up = {name: False for name in gateway.pool.store_models()}
        running = gateway.pool.running()
        for entry in running:
            for name in [entry.name, *entry.adapters]:  # a LoRA service's adapters: up with it
                up[name] = entry.state == "ready"
        text = gateway.metrics.render(up, await scrape(gateway.upstream, running))
        return Response(text, media_type="text/plain; version=0.0.4; charset=utf-8")

    async def models(_: Request) -> Response:
        return await list_models(gateway)

    async def chat(request: Request) -> Response:
        return await relay(gateway, request, "/v1/chat/completions")

    async def completions(request: Request) -> Response:
        return await relay(gateway, request, "/v1/completions")

    async def tokenize(request: Request) -> Response:
        return await relay(gateway, request, "/tokenize", counted=False)

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        async with upstream_client() as client:
            gateway.client = client
            try:
                yield
            finally:
                await gateway.pool.close()

    async def no_route(request: Request) -> Response:
        return openai_error(
            404, f"no route {request.method} {request.url.path}", "invalid_request_error", None
        )

    from sage_lsp.gateway.dashboard import api_routes, page_routes  # it imports this module

    routes = [
        *page_routes(),
        *api_routes(gateway, guarded),
        Route("/health", health),
        Route("/metrics", metrics),
        Route("/v1/models", guarded(models)),
        Route("/v1/chat/completions", guarded(chat), methods=["POST"]),
        Route("/v1/completions", guarded(completions), methods=["POST"]),
        Route("/tokenize", guarded(tokenize), methods=["POST"]),
        Route("/v1/{rest:path}", guarded(no_route), methods=["GET", "POST", "DELETE"]),
        Route("/api/{rest:path}", guarded(no_route), methods=["GET", "POST", "DELETE"]),
    ]
    return Starlette(routes=routes, lifespan=lifespan)
