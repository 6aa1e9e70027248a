"""The manager through its entry points: `sage chat --backend finetune`, `sage finetune`,
`sage services`, and the language server's sage/models, sage/services, sage/backend/*."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sage_lsp import protocol
from tests.services.test_manager import (
    MODEL,
    service_processes,
    wait_no_services,
)
from tests.support.ports import closed_port
from tests.support.rpc_client import RpcClient

# subprocess-heavy: in `make test`, not `make test-fast`
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("fake_vllm")]


def sage(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sage_lsp.cli", *args],
        capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def test_chat_finetune_answers_and_leaves_nothing(sage_home: Path) -> None:
    result = sage("chat", "--backend", "finetune", "--finetune-model", MODEL,
                  "--finetune-port", str(closed_port()), "-q", "hello")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("fake0 fake1")
    assert "[ready" in result.stderr
    wait_no_services(sage_home)


def test_missing_model_is_one_line_with_the_next_step() -> None:
    result = sage("finetune", "chat", "nope", "--port", str(closed_port()))
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert "finetuned model 'nope' not found" in line and "sage finetune list" in line
    result = sage("chat", "--backend", "finetune", "--finetune-model", "a/b", "-q", "x")
    assert result.returncode == 2
    assert "invalid finetune_model = 'a/b' (from command line --finetune-model)" in result.stderr


def test_finetune_list_and_merge_without_adapter(sage_home: Path) -> None:
    listed = sage("finetune", "list")
    assert listed.returncode == 0
    assert MODEL in listed.stdout and "base/model" in listed.stdout and "merged" in listed.stdout
    assert f"merged  {sage_home}" in listed.stdout  # STATE and PATH are separate columns
    merged = sage("finetune", "merge", MODEL)
    assert merged.returncode == 0 and "no adapter to merge" in merged.stdout


async def test_services_list_and_stop_while_a_session_holds_it(sage_home: Path) -> None:
    client = await RpcClient.start()
    await client.initialize({"backend": "finetune", "finetuneModel": MODEL,
                             "finetunePort": closed_port()})  # fmt: skip
    response = await client.request(protocol.BACKEND_START, {})
    assert "result" in response, response
    status = response["result"]
    assert status["state"] == "ready" and status["service"]["name"] == MODEL
    assert status["service"]["holders"] == 1 and status["service"]["owned"] is True
    models = (await client.request(protocol.MODELS, {}))["result"]["models"]
    assert models == [{"name": MODEL, "baseModel": "base/model", "state": "merged",
                       "path": models[0]["path"]}]  # fmt: skip
    services = (await client.request(protocol.SERVICES, {}))["result"]["services"]
    assert [s["name"] for s in services] == [MODEL] and "apiKey" not in services[0]
    listed = sage("services", "list")
    assert MODEL in listed.stdout and "ready" in listed.stdout
    stopped = sage("services", "stop", MODEL)
    assert stopped.returncode == 0 and f"stopped {MODEL}" in stopped.stdout
    assert "no services running" in sage("services").stdout
    assert sage("services", "stop", MODEL).returncode == 1
    await client.close()
    wait_no_services(sage_home)


async def test_backend_stop_releases_and_the_service_ends(sage_home: Path) -> None:
    client = await RpcClient.start()
    await client.initialize({"backend": "finetune", "finetuneModel": MODEL,
                             "finetunePort": closed_port()})  # fmt: skip
    answer = (await client.request(protocol.CHAT, {"message": "hi"}))["result"]
    assert answer["text"].startswith("fake0")
    states = [n["state"] for n in client.notifications[protocol.STATUS_DID_CHANGE]]
    assert states[0] == "starting" and states[-1] == "ready"
    assert any("starting" in (n.get("message") or "")
               for n in client.notifications[protocol.STATUS_DID_CHANGE])  # fmt: skip
    stopped = (await client.request(protocol.BACKEND_STOP, {}))["result"]
    assert stopped["state"] == "idle"
    wait_no_services(sage_home)
    await client.close()


async def test_language_server_killed_with_sigkill_still_stops_the_service(
    sage_home: Path,
) -> None:
    client = await RpcClient.start()
    await client.initialize({"backend": "finetune", "finetuneModel": MODEL,
                             "finetunePort": closed_port()})  # fmt: skip
    await client.request(protocol.BACKEND_START, {})
    assert service_processes(sage_home)
    client.process.kill()
    await client.process.wait()
    wait_no_services(sage_home, 10)
