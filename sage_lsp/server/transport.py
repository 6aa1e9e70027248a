"""JSON-RPC framing over stdio or TCP, with the answers pygls leaves out.

pygls reads stdin in a worker thread, which blocks shutdown, and stays silent on malformed JSON,
requests without params, messages without ``jsonrpc`` and requests after ``shutdown``. This
module reads with asyncio instead (so the process can always exit at once) and answers every
one of those with a JSON-RPC error, then hands well-formed messages to pygls.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from typing import Any, BinaryIO

from lsprotocol.types import EXIT
from pygls.exceptions import JsonRpcException
from pygls.protocol import LanguageServerProtocol

from sage_lsp import protocol as sage

log = logging.getLogger(__name__)

CONTENT_TYPE = b"application/vscode-jsonrpc; charset=utf-8"
"""The ``Content-Type`` header of every message sent."""
HEADER_LIMIT = 64
"""Most header lines accepted before a body; more means the stream is not JSON-RPC."""


class TransportWriter:
    """pygls writer over an asyncio transport: writes never block, the backlog is visible."""

    def __init__(self, transport: asyncio.WriteTransport) -> None:
        self.transport = transport

    def write(self, data: bytes) -> None:
        """Queue ``data``; it goes out as fast as the client reads."""
        if not self.transport.is_closing():
            self.transport.write(data)

    def close(self) -> None:
        """Close the transport once what is queued has been written."""
        self.transport.close()

    @property
    def backlog(self) -> int:
        """Bytes written but not yet taken by the client."""
        return self.transport.get_write_buffer_size()


class BlockingWriter:
    """pygls writer for an output that cannot be written asynchronously (a regular file)."""

    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream

    def write(self, data: bytes) -> None:
        """Write and flush at once."""
        self.stream.write(data)
        self.stream.flush()

    def close(self) -> None:
        """Flush; the file is closed when the process ends."""
        self.stream.flush()

    @property
    def backlog(self) -> int:
        """Nothing is ever queued."""
        return 0


Writer = TransportWriter | BlockingWriter


async def open_stdio(stdin: BinaryIO, stdout: BinaryIO) -> tuple[asyncio.StreamReader, Writer]:
    """An asyncio reader on stdin and a non-blocking writer on stdout.

    Pipes, sockets and terminals are read and written by the event loop; a regular file (e.g.
    stdin redirected from a file) falls back to a reader fed by a thread.
    """
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=2**26, loop=loop)
    try:
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), stdin)
    except ValueError:
        loop.run_in_executor(None, _feed_from_file, loop, reader, stdin)
    writer: Writer
    try:
        transport, _ = await loop.connect_write_pipe(asyncio.Protocol, stdout)
        writer = TransportWriter(transport)
    except ValueError:
        writer = BlockingWriter(stdout)
    return reader, writer


def _feed_from_file(
    loop: asyncio.AbstractEventLoop, reader: asyncio.StreamReader, stream: BinaryIO
) -> None:
    while data := os.read(stream.fileno(), 65536):
        loop.call_soon_threadsafe(reader.feed_data, data)
    loop.call_soon_threadsafe(reader.feed_eof)


class FrameError(ValueError):
    """A header block without a usable ``Content-Length``."""


async def read_frame(reader: asyncio.StreamReader, limit: int | None = None) -> bytes | None:
    """The body of the next framed message, or None at the end of the stream.

    Raises :class:`FrameError` for a header block without a usable ``Content-Length`` (or,
    with ``limit``, one announcing a longer body), which is then skipped: the next call reads
    the next header block.
    """
    length: int | None = None
    seen = 0
    while True:
        try:
            line = await reader.readline()
        except ValueError:  # a line longer than the reader's limit: skip the block
            length = None
            break
        if not line:
            return None
        if line.strip():
            seen += 1
            name, _, value = line.decode("latin-1").partition(":")
            if name.strip().lower() == "content-length" and value.strip().isdigit():
                length = int(value.strip())
        elif length is not None or seen:
            break
        if seen > HEADER_LIMIT:
            break
    if length is None:
        raise FrameError("no valid Content-Length header")
    if limit is not None and length > limit:
        raise FrameError(f"a message of {length} bytes is over the limit of {limit}")
    try:
        return await reader.readexactly(length)
    except asyncio.IncompleteReadError:
        return None


async def read_messages(
    reader: asyncio.StreamReader, lsp: LanguageServerProtocol, first: bytes | None = None
) -> None:
    """Dispatch ``first`` (a body already read), then read framed messages until EOF and
    dispatch each one.

    A header block without a usable ``Content-Length`` is answered with a parse error and
    skipped; the stream goes on with the next header block.
    """
    if first is not None:
        dispatch_safely(lsp, first)
    while True:
        try:
            body = await read_frame(reader)
        except FrameError as exc:
            send_error(lsp, None, sage.PARSE_ERROR, f"parse error: {exc}")
            continue
        if body is None:
            return
        dispatch_safely(lsp, body)


def dispatch_safely(lsp: LanguageServerProtocol, body: bytes) -> None:
    """:func:`dispatch`, but a failure it did not foresee is logged and answered with an
    internal error (``id`` unknown) instead of ending the reader, and with it the session."""
    try:
        dispatch(lsp, body)
    except Exception:
        log.exception("failed to read a message of %d bytes", len(body))
        send_error(lsp, None, sage.INTERNAL_ERROR, "internal error")


def encode_frame(message: dict[str, Any]) -> bytes:
    """One message framed as pygls frames it, for writing outside a protocol."""
    body = json.dumps(message).encode()
    return b"Content-Length: %d\r\nContent-Type: %s\r\n\r\n%s" % (len(body), CONTENT_TYPE, body)


def send_error(
    lsp: LanguageServerProtocol, msg_id: Any, code: int, message: str, data: Any = None
) -> None:
    """Send a JSON-RPC error response (``id`` may be ``None`` when it is unknown)."""
    error: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    lsp._send_data({"jsonrpc": "2.0", "id": msg_id, "error": error})


def dispatch(lsp: LanguageServerProtocol, body: bytes) -> None:
    """Check one message's JSON-RPC envelope, answer what pygls would not, hand on the rest."""
    try:
        raw = json.loads(body)
    except (ValueError, RecursionError) as exc:  # RecursionError: nested too deep
        send_error(lsp, None, sage.PARSE_ERROR, f"parse error: {exc}")
        return
    if not isinstance(raw, dict):
        send_error(lsp, None, sage.INVALID_REQUEST, "invalid request: not a JSON object")
        return
    msg_id = raw.get("id")
    is_request = "method" in raw and "id" in raw
    if (msg_id is not None and not isinstance(msg_id, str | int)) or isinstance(msg_id, bool):
        send_error(lsp, None, sage.INVALID_REQUEST, "invalid request: bad id")
        return
    if raw.get("jsonrpc") != "2.0":
        send_error(lsp, msg_id, sage.INVALID_REQUEST, 'invalid request: jsonrpc must be "2.0"')
        return
    if "method" in raw:
        if not isinstance(raw["method"], str):
            send_error(lsp, msg_id, sage.INVALID_REQUEST, "invalid request: method")
            return
        raw.setdefault("params", None)
        shutting_down = lsp._shutdown or getattr(lsp, "shutdown_requested", False)
        if is_request and shutting_down and raw["method"] != EXIT:
            send_error(lsp, msg_id, sage.INVALID_REQUEST, "the server is shutting down")
            return
    try:
        message = lsp.structure_message(raw)
    except JsonRpcException as exc:
        if is_request:
            reason = exc.__cause__ or exc
            send_error(
                lsp, msg_id, sage.INVALID_PARAMS, f"invalid params for {raw['method']}: {reason}"
            )
        return
    try:
        lsp.handle_message(message)
    except Exception:  # a handler failed outside its request: log, keep serving
        log.exception("failed to handle %s", raw.get("method"))
        if is_request:
            send_error(lsp, msg_id, sage.INTERNAL_ERROR, "internal error")


def protect_stdout() -> BinaryIO:
    """Keep the protocol channel for protocol only: return stdout, point ``sys.stdout`` at stderr.

    A stray ``print`` anywhere in the process then lands on stderr instead of corrupting the
    JSON-RPC stream.
    """
    channel = sys.stdout.buffer
    sys.stdout = sys.stderr
    return channel
