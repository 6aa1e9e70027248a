"""The gateway in-process (uvicorn in a thread, on a free port) or as a ``sage serve`` process,
in front of the fake vLLM of tests/services."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx2
import openai
import pytest
import uvicorn

from sage_lsp.config import load_settings
from sage_lsp.gateway.app import Gateway
from sage_lsp.gateway.serve import ServeOptions, make_gateway, uvicorn_config
from tests.services.conftest import FAKE_MODEL, fake_vllm, tiny_build, vllm_python
from tests.services.test_real_vllm import real_env
from tests.support.ports import closed_port

__all__ = ["FAKE_MODEL", "fake_vllm", "real_env", "tiny_build", "vllm_python"]


@dataclass
class RunningGateway:
    """A gateway serving in this process."""

    gateway: Gateway
    server: uvicorn.Server
    thread: threading.Thread
    port: int

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.port}"

    def client(self, key: str | None = None) -> openai.OpenAI:
        """The openai SDK pointed at the gateway, with its key (or ``key``)."""
        return openai.OpenAI(base_url=self.url + "/v1", api_key=key or self.gateway.key)

    def http(self) -> httpx2.Client:
        """A plain HTTP client on the gateway."""
        return httpx2.Client(base_url=self.url, timeout=30, trust_env=False)

    def stop(self) -> None:
        """Stop serving (the lifespan releases the gateway's holds) and wait for it."""
        self.server.should_exit = True
        self.thread.join(30)


@pytest.fixture
def start_gateway() -> Iterator[Callable[..., RunningGateway]]:
    """Start gateways in this process (``ttl``, ``max_models`` and the services'
    ``startup_timeout`` as asked); they stop at the test's end."""
    started: list[RunningGateway] = []

    def start(ttl: float = 0.0, max_models: int = 0, startup_timeout: float = 8) -> RunningGateway:
        settings = load_settings(
            {"finetune_port": closed_port(), "vllm": {"startup_timeout_seconds": startup_timeout}}
        )
        options = ServeOptions(port=closed_port(), ttl=ttl, max_models=max_models)
        gateway = make_gateway(settings, options)
        server = uvicorn.Server(uvicorn_config(gateway, options))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while not server.started and thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert server.started, "the gateway did not start"
        running = RunningGateway(gateway, server, thread, options.port)
        started.append(running)
        return running

    yield start
    for running in started:
        running.stop()


def sage(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """Run the ``sage`` command of this environment to its end."""
    return subprocess.run(
        [sys.executable, "-m", "sage_lsp.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def spawn_serve(*args: str) -> subprocess.Popen[str]:
    """Start ``sage serve ARGS`` as a process of its own (its output to pipes)."""
    return subprocess.Popen(
        [sys.executable, "-m", "sage_lsp.cli", "serve", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ),
    )


def wait_health(port: int, process: subprocess.Popen[str], seconds: float = 20) -> None:
    """Wait until the gateway on ``port`` answers ``/health``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        try:
            if httpx2.get(f"http://127.0.0.1:{port}/health", trust_env=False).status_code == 200:
                return
        except httpx2.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError("the gateway did not answer /health")


def key_of(home: Path) -> str:
    """The default key file's key."""
    return (home / "run" / "gateway.key").read_text().strip()
