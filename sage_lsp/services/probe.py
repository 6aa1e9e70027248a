"""Looking at ports and servers on 127.0.0.1: is a port free, is vLLM healthy, what it serves.

Standard library only: the supervisor imports this and must start fast and stay small.
"""

from __future__ import annotations

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


def _get(port: int, path: str, api_key: str | None, timeout: float) -> tuple[int, bytes]:
    request = urllib.request.Request(f"http://{HOST}:{port}{path}")
    if api_key:
        request.add_header("Authorization", f"Bearer {api_key}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return int(response.status), response.read()
    except urllib.error.HTTPError as exc:
        return int(exc.code), b""
    except (OSError, ValueError):
        return 0, b""


def healthy(port: int, timeout: float = 2.0) -> bool:
    """Whether ``/health`` answers 200."""
    return _get(port, "/health", None, timeout)[0] == 200


def served_models(port: int, api_key: str | None, timeout: float = 2.0) -> list[str] | None:
    """The model ids ``/v1/models`` lists, or None if it does not answer as OpenAI would."""
    status, body = _get(port, "/v1/models", api_key, timeout)
    if status != 200:
        return None
    try:
        data = json.loads(body)
        return [str(item["id"]) for item in data["data"]]
    except (ValueError, KeyError, TypeError):
        return None


def serves(port: int, name: str, api_key: str | None, timeout: float = 2.0) -> bool:
    """Whether the server on ``port`` serves the model ``name`` (a live check, not /health)."""
    return name in (served_models(port, api_key, timeout) or [])
