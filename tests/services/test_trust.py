"""Trust boundaries of managed services: a launched vLLM's key is never on a command line nor
in a log tail we send, and no key (nor any request) goes to a server we did not launch."""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psutil
import pytest

from sage_lsp import protocol
from sage_lsp.backends.base import BackendError, ErrorKind
from sage_lsp.services.managed_backend import finetune_backend
from sage_lsp.services.manager import Progress
from tests.services.test_manager import (
    MODEL,
    ask,
    settings,
    wait_no_services,
)

# subprocess-heavy: in `make test`, not `make test-fast`
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("fake_vllm")]


def group_command_lines(pgid: int) -> list[str]:
    """The command lines of every process in process group ``pgid``."""
    lines = []
    for process in psutil.process_iter(["pid", "cmdline"]):
        try:
            if os.getpgid(process.info["pid"]) == pgid:
                lines.append(" ".join(process.info["cmdline"] or []))
        except ProcessLookupError:
            continue
    return lines


async def test_the_key_is_in_vllms_environment_not_on_its_command_line(sage_home: Path) -> None:
    backend = finetune_backend(settings(), None)
    await backend.prepare()
    assert backend.handle and backend.handle.entry.pgid
    entry = backend.handle.entry
    key = entry.api_key
    lines = group_command_lines(entry.pgid)
    assert len(lines) >= 2, lines  # the API server and its engine
    assert all(key not in line for line in lines)
    cmdline = Path(f"/proc/{entry.pid}/cmdline").read_bytes()
    assert key.encode() not in cmdline and b"--api-key" not in cmdline
    assert psutil.Process(entry.pid).environ()["VLLM_API_KEY"] == key
    assert key not in Path(entry.log_path).read_text()
    assert oct(Path(entry.log_path).stat().st_mode)[-3:] == "600"
    assert (await ask(backend)).startswith("fake0")  # the fake vLLM took the key from its env
    await backend.aclose()
    wait_no_services(sage_home)


async def test_a_failed_start_sends_its_log_tail_with_the_key_masked(
    monkeypatch: pytest.MonkeyPatch, sage_home: Path
) -> None:
    monkeypatch.setenv("FAKE_VLLM_MODE", "exit")
    monkeypatch.setenv("FAKE_VLLM_SHOW_KEY", "1")  # a server that logs its key
    backend = finetune_backend(settings(), None)
    with pytest.raises(BackendError) as err:
        await backend.prepare()
    assert err.value.kind is ErrorKind.SERVICE_FAILED
    log = Path(err.value.details["logPath"]).read_text()
    found = re.search(r"fake vllm: api key (\w+)", log)
    assert found, log  # in the private log file, as the server wrote it
    key = found.group(1)
    tail = err.value.details["logTail"]
    assert "fake vllm: api key ***" in tail
    assert all(key not in line for line in tail)
    assert key not in str(err.value)
    await backend.aclose()
    wait_no_services(sage_home)


class Recorder(ThreadingHTTPServer):
    """A server on 127.0.0.1 that answers like an OpenAI server listing ``MODEL`` and records
    each request's path and Authorization header."""

    daemon_threads = True

    def __init__(self) -> None:
        self.seen: list[tuple[str, str | None]] = []
        super().__init__(("127.0.0.1", 0), _RecordingHandler)


class _RecordingHandler(BaseHTTPRequestHandler):
    server: Recorder

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _answer(self) -> None:
        self.server.seen.append((self.path, self.headers.get("Authorization")))
        body = b'{"object": "list", "data": [{"id": "%s"}]}' % MODEL.encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer


@pytest.fixture
def stranger() -> Iterator[Recorder]:
    """A server someone else started on the port the user asked for."""
    server = Recorder()
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


async def test_a_server_we_did_not_launch_gets_no_request_and_no_key(
    stranger: Recorder, sage_home: Path
) -> None:
    port = stranger.server_address[1]
    seen: list[Progress] = []
    config = settings(finetune_port=port, api_key="the-users-own-key")
    backend = finetune_backend(config, seen.append)
    await backend.prepare()
    assert backend.handle and backend.handle.port != port
    assert any(f"port {port} is taken; using {backend.handle.port}" in p.detail for p in seen)
    service = protocol.to_wire(backend.service())  # as sage/backend/status sends it
    assert service is not None and service["owned"] is True
    assert (await ask(backend)).startswith("fake0")
    await backend.aclose()
    assert stranger.seen == []
    wait_no_services(sage_home)
