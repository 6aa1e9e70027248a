"""A real OpenAI-compatible HTTP server for tests and benchmarks (127.0.0.1, ephemeral port).

It speaks HTTP/1.1 with chunked SSE streaming like vLLM does (``/v1/completions`` answers without
streaming), records every request (``GET /_test/requests`` lists them), and can be
scripted to fail: an HTTP status, a slow stream, or a disconnect in mid-stream. It notices when
a client closes a stream early and records when that happened.

Given ``max_model_len``, it behaves like vLLM with that context: ``/v1/models`` reports it,
``POST /tokenize`` counts a prompt's tokens (:func:`count_tokens`, a fake tokenizer and chat
template), and a chat request whose prompt (plus ``max_tokens``) is longer gets vLLM's HTTP 400.
"""

from __future__ import annotations

import hashlib
import json
import re
import select
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar


@dataclass
class Reply:
    """How the server answers the next chat requests."""

    tokens: list[str] = field(default_factory=lambda: ["Hello", ",", " world", "!"])
    delay: float = 0.0
    status: int | None = None
    error_message: str = "scripted failure"
    disconnect_after: int | None = None
    finish_reason: str = "stop"
    first_delay: float = 0.0


@dataclass
class StreamRecord:
    """One streamed response: when it started, and when the client went away (if it did)."""

    started: float
    chunks_sent: int = 0
    client_gone_at: float | None = None
    completed: bool = False
    done: threading.Event = field(default_factory=threading.Event)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _json(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, message: str, code: str = "error") -> None:
        self._json(status, {"error": {"message": message, "type": code, "code": status}})

    def _authorised(self) -> bool:
        key = self.server.owner.api_key
        if key is None or self.headers.get("Authorization") == f"Bearer {key}":
            return True
        self._error(401, "Incorrect API key provided", "invalid_api_key")
        return False

    def do_GET(self) -> None:
        if self.path == "/health":
            self._json(200, {})
            return
        if self.path == "/_test/streams":
            streams = [
                {"chunksSent": r.chunks_sent, "completed": r.completed,
                 "clientGone": r.client_gone_at is not None}
                for r in self.server.owner.streams
            ]  # fmt: skip
            self._json(200, {"streams": streams, "requests": len(self.server.owner.requests)})
            return
        if self.path == "/_test/requests":
            owner = self.server.owner
            self._json(200, {"requests": owner.requests, "admin": owner.admin})
            return
        if not self._authorised():
            return
        if self.path.rstrip("/") != "/v1/models":
            self._error(404, f"no route {self.path}")
            return
        owner = self.server.owner
        limit = {"max_model_len": owner.max_model_len} if owner.max_model_len else {}
        models = [  # like vLLM, an adapter reports no context of its own
            {"id": m, "object": "model", "owned_by": "test", "parent": owner.parents.get(m)}
            | ({} if m in owner.parents else limit)
            for m in owner.models
        ]
        self._json(200, {"object": "list", "data": models})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        body = json.loads(self.rfile.read(length) or b"{}")
        owner = self.server.owner
        owner.requests.append(body)
        if not self._authorised():
            return
        if self.path.rstrip("/") == "/v1/embeddings":
            inputs = body.get("input")
            texts = inputs if isinstance(inputs, list) else [inputs]
            data = [{"object": "embedding", "index": i, "embedding": owner.embed(str(t))}
                    for i, t in enumerate(texts)]  # fmt: skip
            self._json(200, {"object": "list", "data": data, "model": body.get("model"),
                             "usage": {"prompt_tokens": 0, "total_tokens": 0}})  # fmt: skip
            return
        if self.path == "/tokenize" and owner.max_model_len and owner.tokenize:
            count = count_tokens(body.get("messages") or [])
            self._json(200, {"count": count, "max_model_len": owner.max_model_len,
                             "tokens": list(range(count))})  # fmt: skip
            return
        if self.path.rstrip("/") == "/v1/completions" and body.get("stream"):
            self._stream(body, owner.queue.pop(0) if owner.queue else owner.reply, "text")
            return
        if self.path.rstrip("/") == "/v1/completions" and body.get("model") in owner.models:
            choice = {"index": 0, "text": "".join(owner.reply.tokens), "logprobs": None,
                      "finish_reason": owner.reply.finish_reason}  # fmt: skip
            self._json(200, {"id": "cmpl-test", "object": "text_completion", "created": 0,
                             "model": body["model"], "choices": [choice]})  # fmt: skip
            return
        if self.path.rstrip("/") != "/v1/chat/completions":
            self._error(404, f"no route {self.path}")
            return
        if owner.max_model_len and self._too_long(body, owner.max_model_len):
            return
        reply = owner.queue.pop(0) if owner.queue else owner.reply
        if reply.status is not None:
            self._error(reply.status, reply.error_message)
            return
        if body.get("model") not in owner.models:
            self._error(404, f"The model `{body.get('model')}` does not exist.", "NotFoundError")
            return
        if body.get("stream"):
            self._stream(body, reply)
        else:
            self._json(200, _completion(body, reply))

    def _too_long(self, body: dict[str, Any], limit: int) -> bool:
        """Answer vLLM's HTTP 400 when the prompt (and the answer asked for) exceed ``limit``."""
        prompt = count_tokens(body.get("messages") or [])
        self.server.owner.prompt_tokens.append(prompt)
        answer = body.get("max_tokens") or 0
        if prompt > limit:
            message = (
                f"This model's maximum context length is {limit} tokens. However, your prompt "
                f"contains {prompt} input tokens, which exceeds this limit even without any "
                "output tokens. Please reduce the length of the input prompt."
            )
        elif prompt + answer > limit:
            message = (
                f"This model's maximum context length is {limit} tokens. However, you requested "
                f"{prompt + answer} tokens ({prompt} in the messages, {answer} in the "
                "completion). Please reduce the length of the messages or completion."
            )
        else:
            return False
        self._error(400, message, "BadRequestError")
        return True

    def _send_chunk(self, payload: dict[str, Any] | str, flush: bool = True) -> None:
        text = payload if isinstance(payload, str) else json.dumps(payload)
        data = f"data: {text}\n\n".encode()
        self._out += f"{len(data):x}\r\n".encode() + data + b"\r\n"
        if flush or len(self._out) > 16384:
            self.wfile.write(self._out)
            self._out.clear()

    def _client_gone(self, wait: float) -> bool:
        """Wait up to ``wait`` seconds; True as soon as the client has closed the connection."""
        sock = self.connection
        readable, _, _ = select.select([sock], [], [], wait)
        if not readable:
            return False
        try:
            return sock.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True

    def _stream(self, body: dict[str, Any], reply: Reply, kind: str = "chat") -> None:
        """Stream ``reply``: as chat chunks, or (``kind`` ``text``) as ``/v1/completions``
        chunks, whose choices carry ``text``."""

        def choice(token: str | None, finish: str | None = None) -> dict[str, Any]:
            if kind == "text":
                return {"index": 0, "text": token or "", "finish_reason": finish}
            delta = {} if token is None else {"content": token}
            return {"index": 0, "delta": delta, "finish_reason": finish}

        self._out = bytearray()
        record = StreamRecord(started=time.monotonic())
        self.server.owner.streams.append(record)
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        base = {
            "id": "chatcmpl-test",
            "object": "text_completion" if kind == "text" else "chat.completion.chunk",
            "created": 0,
            "model": body["model"],
        }
        try:
            if self._client_gone(reply.first_delay):
                raise ConnectionResetError
            if kind == "chat":
                self._send_chunk(
                    {
                        **base,
                        "choices": [
                            {
                                "index": 0,
                                "delta": {"role": "assistant", "content": ""},
                                "finish_reason": None,
                            }
                        ],
                    }
                )
            for n, token in enumerate(reply.tokens):
                if reply.disconnect_after is not None and n >= reply.disconnect_after:
                    self.wfile.write(self._out)
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    return
                if self._client_gone(reply.delay):
                    raise ConnectionResetError
                self._send_chunk(
                    {**base, "choices": [choice(token)]}, flush=reply.delay > 0 or n == 0
                )
                record.chunks_sent += 1
            self._send_chunk({**base, "choices": [choice(None, reply.finish_reason)]})
            if (body.get("stream_options") or {}).get("include_usage"):
                self._send_chunk({**base, "choices": [], "usage": _usage(body, reply)})
            self._send_chunk("[DONE]")
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
            record.completed = True
        except (ConnectionResetError, BrokenPipeError):
            record.client_gone_at = time.monotonic()
            self.close_connection = True
        finally:
            record.done.set()


_TOKEN = re.compile(r"\w+|[^\w\s]")


def count_tokens(messages: list[dict[str, Any]]) -> int:
    """The fake tokenizer: each word or punctuation mark of a message is a token, and the chat
    template adds 4 a message (``<|im_start|>role\n ... <|im_end|>\n``) and 3 for the answer's
    start."""
    return 3 + sum(4 + len(_TOKEN.findall(str(m.get("content", "")))) for m in messages)


def _usage(body: dict[str, Any], reply: Reply) -> dict[str, int]:
    prompt = sum(len(str(m.get("content", "")).split()) for m in body.get("messages", []))
    return {
        "prompt_tokens": prompt,
        "completion_tokens": len(reply.tokens),
        "total_tokens": prompt + len(reply.tokens),
    }


def _completion(body: dict[str, Any], reply: Reply) -> dict[str, Any]:
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 0,
        "model": body["model"],
        "usage": _usage(body, reply),
        "choices": [
            {
                "index": 0,
                "finish_reason": reply.finish_reason,
                "message": {"role": "assistant", "content": "".join(reply.tokens)},
            }
        ],
    }


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: OpenAIServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hangs up (as cancelling ones do) is not an error worth printing."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class OpenAIServer:
    """The server; use as a context manager or call :meth:`start` and :meth:`stop`."""

    def __init__(
        self,
        models: list[str] | None = None,
        api_key: str | None = None,
        port: int = 0,
        max_model_len: int | None = None,
    ) -> None:
        self.models = models if models is not None else ["tiny-model"]
        self.api_key = api_key
        self.max_model_len = max_model_len
        """The models' context, like vLLM's ``--max-model-len``; ``None``: unlimited, unreported."""
        self.tokenize = True
        """Whether ``POST /tokenize`` is served (with ``max_model_len``); False: HTTP 404."""
        self.prompt_tokens: list[int] = []
        """The prompt size of each chat request, with ``max_model_len``."""
        self.reply = Reply()
        self.queue: list[Reply] = []
        """Replies for the next chat requests, in order; then :attr:`reply` for the rest."""
        self.requests: list[dict[str, Any]] = []
        self.parents: dict[str, str] = {}
        """Adapters' bases, listed as ``parent`` in ``/v1/models`` (vLLM's LoRA modules)."""
        self.admin: list[dict[str, Any]] = []
        """Admin calls (LoRA loads), for ``/_test/requests``: path, body, streams in flight."""
        self.streams: list[StreamRecord] = []
        self._httpd = _Server(("127.0.0.1", port), _Handler)
        self._httpd.owner = self
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)

    SYNONYMS: ClassVar[dict[str, str]] = {"halt": "stop", "halted": "stop", "terminate": "stop"}
    """Words the fake embedding model treats as the same (so dense search finds what BM25
    cannot)."""

    def embed(self, text: str, dims: int = 64) -> list[float]:
        """A deterministic bag-of-words vector: each word (after synonyms) adds to one bucket."""
        vector = [0.0] * dims
        for word in text.lower().split():
            word = self.SYNONYMS.get(word.strip(".,?!`"), word.strip(".,?!`"))
            vector[int(hashlib.sha256(word.encode()).hexdigest(), 16) % dims] += 1.0
        return vector

    @property
    def port(self) -> int:
        """The port it listens on."""
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        """Its OpenAI base URL, ending in /v1."""
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> OpenAIServer:
        """Start serving in a background thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> OpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def words(text: str) -> list[str]:
    """``text`` as a model's tokens: each word with the white space before it."""
    return re.findall(r"\s*\S+", text)


DEFAULT_ANSWER = (
    "Here is a **map** stage:\n\n```python\ndef double(x):\n    return x * 2\n```\n\n"
    "Call `double(21)` to get 42."
)


def main(argv: list[str] | None = None) -> None:
    """Serve until standard input closes or SIGTERM: for editor tests written in other languages.

    Prints the base URL on the first line of standard output. ``GET /_test/streams`` tells
    whether each stream completed or was closed early by the client.
    """
    import argparse
    import signal

    parser = argparse.ArgumentParser(prog="python -m tests.support.openai_server")
    parser.add_argument("--answer", default=DEFAULT_ANSWER, help="the answer's text")
    parser.add_argument("--repeat", type=int, default=1, help="say the answer this many times")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds between tokens")
    parser.add_argument("--model", default="tiny-model", help="the one model it serves")
    args = parser.parse_args(argv)
    server = OpenAIServer(models=[args.model])
    server.reply.tokens = words(args.answer) * args.repeat
    server.reply.delay = args.delay
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    threading.Thread(target=lambda: (sys.stdin.read(), stopped.set()), daemon=True).start()
    with server:
        print(server.base_url, flush=True)
        stopped.wait()


if __name__ == "__main__":
    main()
