"""Ports for tests that need a local address nothing answers on."""

from __future__ import annotations

import socket


def closed_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on: connecting to it is refused, and a
    server started by the test may bind it. The OS picks it and it is released at once, so
    another process could take it in between; the tests accept that small race."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
