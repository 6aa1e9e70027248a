"""Looking at ports and servers on 127.0.0.1: is a port free, is vLLM healthy, what it serves.

Standard library only: the supervisor imports this and must start fast and stay small.
"""

from __future__ import annotations

import contextlib
import enum
import json
import socket
import urllib.error
import urllib.request

HOST = "127.0.0.1"


def port_free(port: int) -> bool:
    """Whether a server could listen on ``port`` now (TIME_WAIT leftovers do not count)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


class Answer(enum.Enum):
    """What ``/v1/models`` said about a model: it is served, the server answered otherwise (not
    listed, 401, not OpenAI), nothing answered (refused: dead), or no answer in time (slow)."""

    SERVES = "serves"
    OTHER = "other"
    DOWN = "down"
    SLOW = "slow"


class Slow(Exception):
    """The server took longer than the timeout."""


def call(
    port: int, path: str, api_key: str | None, timeout: float, body: object | None = None
) -> tuple[int, bytes]:
    """GET ``path`` (POST with ``body`` as JSON): status and body; status 0 when nothing
    answered; :class:`Slow` on a timeout."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"http://{HOST}:{port}{path}", data=data)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if api_key:
        request.add_header("Authorization", f"Bearer {api_key}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return int(response.status), response.read()
    except urllib.error.HTTPError as exc:
        with contextlib.suppress(OSError):
            return int(exc.code), exc.read()
        return int(exc.code), b""
    except TimeoutError as exc:
        raise Slow from exc
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, TimeoutError):
            raise Slow from exc
        return 0, b""
    except (OSError, ValueError):
        return 0, b""


def healthy(port: int, timeout: float = 2.0) -> bool:
    """Whether ``/health`` answers 200."""
    try:
        return call(port, "/health", None, timeout)[0] == 200
    except Slow:
        return False


def _model_ids(status: int, body: bytes) -> list[str] | None:
    if status != 200:
        return None
    try:
        data = json.loads(body)
        return [str(item["id"]) for item in data["data"]]
    except (ValueError, KeyError, TypeError):
        return None


def serves(port: int, name: str, api_key: str | None, timeout: float = 2.0) -> bool:
    """Whether the server on ``port`` serves the model ``name`` (a live check, not /health)."""
    return check(port, name, api_key, timeout) is Answer.SERVES


def check(port: int, name: str, api_key: str | None, timeout: float = 2.0) -> Answer:
    """Ask ``/v1/models`` whether ``name`` is served, telling a dead server from a slow one."""
    try:
        status, body = call(port, "/v1/models", api_key, timeout)
    except Slow:
        return Answer.SLOW
    if status == 0:
        return Answer.DOWN
    return Answer.SERVES if name in (_model_ids(status, body) or []) else Answer.OTHER
