"""Start the language server: ``sage lsp``, ``sage-lsp`` and ``python -m sage_lsp``.

Every way a session ends (``shutdown``/``exit``, stdin EOF, SIGTERM, SIGHUP, SIGINT, the
editor's process going away, the TCP client disconnecting) leads to the same place: the
session's cleanup runs, then the process exits without waiting for anything else.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
import time

from sage_lsp.config import Settings, SettingsError, load_settings
from sage_lsp.paths import default_sage_home
from sage_lsp.protocol import DEFAULT_TCP_PORT
from sage_lsp.server.app import SageServer
from sage_lsp.server.logs import setup_logging
from sage_lsp.server.transport import (
    TransportWriter,
    Writer,
    open_stdio,
    protect_stdout,
    read_messages,
)

log = logging.getLogger(__name__)

CLEANUP_SECONDS = 1.5
"""Longest the cleanup may take: VS Code kills a server 2 s after asking it to stop."""


def initial_settings() -> tuple[Settings, list[str]]:
    """Settings from the config file and environment; on a bad value, defaults and the error."""
    try:
        return load_settings(), []
    except SettingsError as exc:
        try:
            home = default_sage_home()
        except RuntimeError:
            home = Settings().sage_home
        return Settings(sage_home=home), [f"{exc} — using the defaults until it is fixed"]


async def _drain(writer: Writer, timeout: float) -> None:
    """Let queued output reach the client before the process ends."""
    deadline = time.monotonic() + timeout
    while writer.backlog and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    writer.close()


async def _run_session(server: SageServer, reader: asyncio.StreamReader, writer: Writer) -> None:
    server.writer = writer
    server.protocol.set_writer(writer)
    reading = asyncio.create_task(read_messages(reader, server.protocol))
    stopping = asyncio.create_task(server.stopped())
    await asyncio.wait({reading, stopping}, return_when=asyncio.FIRST_COMPLETED)
    log.info("session ending (%s)", "exit requested" if stopping.done() else "input closed")
    try:
        await asyncio.wait_for(server.close(), CLEANUP_SECONDS)
    except TimeoutError:
        log.error("cleanup took longer than %.1f s; exiting anyway", CLEANUP_SECONDS)
    reading.cancel()
    stopping.cancel()
    for request in list(server.protocol._request_futures.values()):
        request.cancel()
    await _drain(writer, 0.3)


async def serve(tcp: tuple[str, int] | None) -> int:
    """Serve one client over stdio (or one TCP connection) and return the exit code."""
    settings, errors = initial_settings()
    server = SageServer(settings, errors)
    setup_logging(settings.paths.logs_dir, server.log_handler)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        loop.add_signal_handler(signum, server.request_exit, 0)
    log.info("sage-lsp %s started (pid %d)", server.version, os.getpid())
    if tcp is None:
        reader, writer = await open_stdio(sys.stdin.buffer, protect_stdout())
        await _run_session(server, reader, writer)
    else:
        finished = asyncio.Event()

        async def connected(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            listener.close()
            await _run_session(server, r, TransportWriter(w.transport))
            finished.set()

        listener = await asyncio.start_server(connected, *tcp)
        log.info("listening on %s:%d", *tcp)
        stop = asyncio.create_task(server.stopped())
        done = asyncio.create_task(finished.wait())
        await asyncio.wait({stop, done}, return_when=asyncio.FIRST_COMPLETED)
        if not done.done():
            await server.close()
    return server.exit_code or 0


def main(argv: list[str] | None = None) -> None:
    """Parse the arguments, serve, and exit with the session's exit code."""
    parser = argparse.ArgumentParser(prog="sage-lsp", description="The sage-lsp language server.")
    parser.add_argument("--stdio", action="store_true", help="serve over stdio (the default)")
    parser.add_argument("--tcp", action="store_true", help="serve one client over TCP")
    parser.add_argument("--host", default="127.0.0.1", help="TCP host (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=DEFAULT_TCP_PORT, help="TCP port")
    args = parser.parse_args(argv)
    code = asyncio.run(serve((args.host, args.port) if args.tcp else None))
    logging.shutdown()
    with contextlib.suppress(Exception):
        sys.stderr.flush()
    # Nothing else may keep the process: VS Code kills a server 2 s after asking it to stop.
    os._exit(code)
