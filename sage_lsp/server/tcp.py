"""``sage lsp --tcp``: serve one client, and only one that proves it is the user.

Any local user can connect to a TCP port, so the server asks for a token that only the user can
read: a fresh random one written to ``$SAGE_HOME/run/lsp-tcp-PORT.token`` (mode 0600) before
listening, or the one in ``--token-file``. The client's first message must be ``initialize``
with that token as ``initializationOptions.authToken``; anything else gets error -32005 and the
connection is closed, and the server goes on listening for the right client. It serves that
client's session alone and removes the token file it wrote when the session ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from sage_lsp import protocol
from sage_lsp.paths import SagePaths, write_private_text
from sage_lsp.server.transport import FrameError, TransportWriter, encode_frame, read_frame

log = logging.getLogger(__name__)

TOKEN_FIELD = "authToken"
"""The key of ``initializationOptions`` that carries the token."""
FIRST_MESSAGE_SECONDS = 30.0
"""How long a new connection has to send its ``initialize``."""
FIRST_MESSAGE_BYTES = 1 << 20
"""The largest first message read from a client that has not shown the token yet."""

RunSession = Callable[[asyncio.StreamReader, TransportWriter, bytes], Awaitable[None]]
"""Serves one session, given the client's first message (already read)."""


class TokenError(Exception):
    """The token file cannot be used; the message is one line naming it."""


def token_path(paths: SagePaths, port: int) -> Path:
    """Where the token of the server on ``port`` is written."""
    return paths.run_dir / f"lsp-tcp-{port}.token"


def create_token(path: Path) -> str:
    """Write a fresh random token to ``path`` (mode 0600) and return it."""
    token = secrets.token_urlsafe(32)
    write_private_text(path, token + "\n")
    return token


def read_token(path: Path) -> str:
    """The token in the file ``path`` (``--token-file``), surrounding whitespace removed."""
    try:
        token = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise TokenError(f"cannot read the token file {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise TokenError(f"the token file {path} is not UTF-8 text") from None
    if not token:
        raise TokenError(f"the token file {path} is empty")
    return token


def _token_in(message: Any) -> tuple[Any, str | None]:
    """The id of a first message and the token it carries (None unless it is ``initialize``
    with ``initializationOptions.authToken``)."""
    if not isinstance(message, dict):
        return None, None
    msg_id = message.get("id")
    if not isinstance(msg_id, int | str) or isinstance(msg_id, bool):
        msg_id = None
    params = message.get("params")
    options = params.get("initializationOptions") if isinstance(params, dict) else None
    token = options.get(TOKEN_FIELD) if isinstance(options, dict) else None
    if message.get("method") != "initialize" or not isinstance(token, str):
        return msg_id, None
    return msg_id, token


async def authenticate(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, token: str, hint: str
) -> bytes | None:
    """The client's first message, without its token, if it is ``initialize`` with ``token``;
    otherwise answer -32005 (the message says ``hint``), close the connection and return None."""
    message: Any = None
    try:
        body = await asyncio.wait_for(
            read_frame(reader, FIRST_MESSAGE_BYTES), FIRST_MESSAGE_SECONDS
        )
        message = json.loads(body) if body is not None else None
    except (FrameError, TimeoutError, ValueError, RecursionError):
        pass
    msg_id, given = _token_in(message)
    if given is not None and hmac.compare_digest(given.encode(), token.encode()):
        del message["params"]["initializationOptions"][TOKEN_FIELD]
        return json.dumps(message).encode()
    log.warning("refused a TCP client without the session's token")
    error = {"code": protocol.UNAUTHORIZED, "message": f"unauthorized: {hint}"}
    with contextlib.suppress(ConnectionError):
        writer.write(encode_frame({"jsonrpc": "2.0", "id": msg_id, "error": error}))
        await writer.drain()
    writer.close()
    return None


class OneClient:
    """Accepts connections until one shows the token, then serves that client alone."""

    def __init__(self, run: RunSession) -> None:
        self.run = run
        self.token = ""
        self.hint = ""
        self.chosen = False
        self.finished = asyncio.Event()
        """Set when the chosen client's session has ended."""
        self.listener: asyncio.Server | None = None

    async def bind(self, host: str, port: int) -> int:
        """Bind ``host:port`` without listening yet; return the port bound."""
        self.listener = await asyncio.start_server(self.connected, host, port, start_serving=False)
        bound: int = self.listener.sockets[0].getsockname()[1]
        return bound

    async def listen(self, token: str, hint: str) -> None:
        """Start listening for a client with ``token`` (refusals say ``hint``)."""
        assert self.listener is not None, "bind() first"
        self.token, self.hint = token, hint
        await self.listener.start_serving()

    def close(self) -> None:
        """Stop listening."""
        if self.listener is not None:
            self.listener.close()

    async def connected(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Serve the connection if it authenticates first; close it otherwise."""
        first = None if self.chosen else await authenticate(reader, writer, self.token, self.hint)
        if first is None or self.chosen:
            writer.close()
            return
        self.chosen = True
        self.close()
        try:
            await self.run(reader, TransportWriter(writer.transport), first)
        finally:
            self.finished.set()
