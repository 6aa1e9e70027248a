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
from functools import partial
from pathlib import Path

from sage_lsp.config import Settings, SettingsError, load_settings
from sage_lsp.paths import default_sage_home, private_umask
from sage_lsp.protocol import DEFAULT_TCP_PORT
from sage_lsp.server.app import SageServer
from sage_lsp.server.logs import setup_logging
from sage_lsp.server.transport import (
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


async def _run_session(
    server: SageServer, reader: asyncio.StreamReader, writer: Writer, first: bytes | None = None
) -> None:
    server.writer = writer
    server.protocol.set_writer(writer)
    reading = asyncio.create_task(read_messages(reader, server.protocol, first))
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


async def _serve_tcp(server: SageServer, host: str, port: int, token_file: Path | None) -> int:
    """Serve the one TCP client that sends the token (see :mod:`sage_lsp.server.tcp`); return
    the exit code: the session's, 1 when the port cannot be used, 2 for a bad token file."""
    from sage_lsp.server.tcp import OneClient, TokenError, create_token, read_token, token_path

    gate = OneClient(partial(_run_session, server))
    written: Path | None = None
    try:
        bound = await gate.bind(host, port)
        if token_file is None:
            written = where = token_path(server.session.settings.paths, bound)
            token = create_token(written)
        else:
            where, token = token_file, read_token(token_file)
    except (OSError, TokenError) as exc:
        gate.close()
        sys.stderr.write(f"error: cannot serve on {host}:{port}: {exc}\n")
        return 2 if isinstance(exc, TokenError) else 1
    try:
        await gate.listen(token, f"send the token in {where} as initializationOptions.authToken")
        log.info("listening on %s:%d; the token is in %s", host, bound, where)
        stop = asyncio.create_task(server.stopped())
        done = asyncio.create_task(gate.finished.wait())
        await asyncio.wait({stop, done}, return_when=asyncio.FIRST_COMPLETED)
        if gate.chosen:
            await done  # the session ends itself when asked to stop
        else:
            gate.close()
            await server.close()
    finally:
        if written is not None:
            written.unlink(missing_ok=True)
    return server.exit_code or 0


async def serve(tcp: tuple[str, int] | None, token_file: Path | None = None) -> int:
    """Serve one client over stdio (or over TCP, with a token) and return the exit code."""
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
        return await _serve_tcp(server, *tcp, token_file)
    return server.exit_code or 0


def main(argv: list[str] | None = None) -> None:
    """Parse the arguments, serve, and exit with the session's exit code."""
    private_umask()
    parser = argparse.ArgumentParser(prog="sage-lsp", description="The sage-lsp language server.")
    parser.add_argument("--stdio", action="store_true", help="serve over stdio (the default)")
    parser.add_argument("--tcp", action="store_true", help="serve one client over TCP")
    parser.add_argument("--host", default="127.0.0.1", help="TCP host (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=DEFAULT_TCP_PORT, help="TCP port")
    parser.add_argument(
        "--token-file",
        type=Path,
        help="with --tcp: the file holding the token clients must send (default: a fresh one "
        "in $SAGE_HOME/run/lsp-tcp-PORT.token)",
    )
    args = parser.parse_args(argv)
    if args.token_file is not None and not args.tcp:
        parser.error("--token-file needs --tcp")
    code = asyncio.run(serve((args.host, args.port) if args.tcp else None, args.token_file))
    logging.shutdown()
    with contextlib.suppress(Exception):
        sys.stderr.flush()
    # Nothing else may keep the process: VS Code kills a server 2 s after asking it to stop.
    os._exit(code)
