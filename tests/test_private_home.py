"""``$SAGE_HOME`` is private whatever the umask: what sage-lsp creates there (chat history, logs
and their rotations, indexes with their SQLite journals, the service registry, locks and logs)
is 0700 for folders and 0600 for files, and what the user put there keeps its mode.

Every test runs under umask 022, the usual default, which gave 0644 files and 0755 folders."""

from __future__ import annotations

import json
import logging
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest

from sage_lsp import paths, protocol
from sage_lsp.paths import create_private_file, make_private_dir, private_umask, write_private_text
from sage_lsp.rag.index import DocIndex
from sage_lsp.server.logs import PrivateRotatingFileHandler
from tests.rag.test_index import make_docs
from tests.support.ports import closed_port
from tests.support.rpc_client import RpcClient
from tests.test_repl import ask, spawn

ROOT = Path(__file__).resolve().parents[1]
FAKE_VLLM = ROOT / "tests" / "support" / "fake_vllm"


@pytest.fixture(autouse=True)
def umask_022() -> Iterator[None]:
    """Run the test, and the processes it starts, under umask 022."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def modes(home: Path) -> dict[Path, int]:
    """The permission bits of ``home`` and of everything under it (links not followed)."""
    found = {home: stat.S_IMODE(home.lstat().st_mode)}
    for path in home.rglob("*"):
        found[path] = stat.S_IMODE(path.lstat().st_mode)
    return found


def assert_private(home: Path, before: dict[Path, int]) -> None:
    """What was made since ``before`` is 0700 (folders) or 0600 (files); what was there then
    has the mode it had."""
    wrong = []
    for path, mode in modes(home).items():
        wanted = before.get(path, 0o700 if path.is_dir() else 0o600)
        if mode != wanted:
            wrong.append(f"{path.relative_to(home)}: {mode:o}, wanted {wanted:o}")
    assert not wrong, "\n".join(wrong)


def user_files(home: Path) -> dict[Path, int]:
    """What a user put in ``home`` before sage-lsp ran: a config file; their modes."""
    (home / "config.toml").write_text('system_prompt = "Be brief."\n', encoding="utf-8")
    return modes(home)


def sage(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sage_lsp.cli", *args], env={**os.environ, **(env or {})},
        capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def test_private_helpers_leave_what_exists_as_it_is(tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "kept").write_text("the user's")
    before = modes(mine)
    create_private_file(mine / "kept")
    create_private_file(mine / "a" / "b" / "new")
    write_private_text(mine / "kept.json", "{}")
    write_private_text(mine / "kept.json", "[]")
    assert (mine / "kept").read_text() == "the user's" and (mine / "kept.json").read_text() == "[]"
    assert make_private_dir(mine / "a" / "c") == mine / "a" / "c"
    assert_private(mine, before)


def test_private_umask_takes_every_bit_from_group_and_others(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(paths, "_STARTED_WITH", [])  # this process keeps its umask after
    assert private_umask() == 0o022
    assert os.umask(0o022) == 0o077
    os.umask(0o227)
    private_umask()
    assert os.umask(0o022) == 0o277, "a stricter umask stays as strict"


def test_log_and_its_rotations_are_private(tmp_path: Path) -> None:
    handler = PrivateRotatingFileHandler(tmp_path / "logs" / "lsp.log", maxBytes=200, backupCount=2)
    make_private_dir(tmp_path / "logs")
    record = logging.makeLogRecord({"msg": "a line of the log " * 4})
    for _ in range(10):
        handler.emit(record)
    handler.close()
    assert sorted(p.name for p in (tmp_path / "logs").iterdir()) == [
        "lsp.log", "lsp.log.1", "lsp.log.2"
    ]  # fmt: skip
    assert_private(tmp_path / "logs", {})


def test_an_index_and_its_journal_files_are_private(tmp_path: Path, sage_home: Path) -> None:
    before = modes(sage_home)
    index = DocIndex(sage_home, "mine")
    index.ingest(make_docs(tmp_path / "docs"))
    with index.connect() as db:
        db.execute("INSERT INTO meta VALUES ('written', 'now')")
        assert index.db_path.with_name("mine.sqlite-wal").is_file()
        assert index.db_path.with_name("mine.sqlite-shm").is_file()
        assert_private(sage_home, before)


@pytest.mark.slow
def test_sage_chat_and_ingest_create_only_private_files(tmp_path: Path, sage_home: Path) -> None:
    before = user_files(sage_home)
    answer = sage("chat", "--index", "docs-public", "-q", "How does the supervisor stop vLLM?")
    assert answer.returncode == 0 and "sources:" in answer.stdout, answer.stderr
    docs = make_docs(tmp_path / "docs")
    done = sage("chat", "ingest", "--source", str(docs), "--index", "mine")
    assert done.returncode == 0, done.stderr
    assert (sage_home / "cache" / "chat" / "mine.manifest.json").is_file()
    assert_private(sage_home, before)


@pytest.mark.slow
def test_a_file_the_user_asks_for_elsewhere_keeps_their_umask(
    tmp_path: Path, sage_home: Path
) -> None:
    before = user_files(sage_home)
    target = tmp_path / "project" / "pipelines" / "logs.sage.yaml"
    done = sage("pipeline", "build", "--goal", "logs", "--output", str(target))
    assert done.returncode == 0, done.stderr
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert stat.S_IMODE(target.parent.stat().st_mode) == 0o755
    assert_private(sage_home, before)


@pytest.mark.slow
def test_the_repl_history_is_private(sage_home: Path) -> None:
    before = user_files(sage_home)
    child = spawn()
    ask(child, "my password is hunter2", "You said")
    child.sendcontrol("d")
    child.expect(pexpect.EOF)
    child.close()
    assert "hunter2" in (sage_home / "chat_history").read_text()
    assert_private(sage_home, before)


@pytest.mark.slow
async def test_a_language_server_session_creates_only_private_files(
    tmp_path: Path, sage_home: Path
) -> None:
    before = user_files(sage_home)
    docs = make_docs(tmp_path / "docs")
    client = await RpcClient.start()
    await client.initialize({"backend": "mock", "index": "docs-public"})
    chat = await client.request(protocol.CHAT, {"message": "How does the supervisor stop vLLM?"})
    assert chat["result"]["sources"]
    ingest = await client.request(protocol.INDEX_INGEST, {"source": str(docs), "index": "mine"})
    assert ingest["result"]["added"] == 5
    assert await client.close() == 0
    assert (sage_home / "logs" / "lsp.log").is_file()
    assert_private(sage_home, before)


@pytest.mark.slow
def test_a_managed_service_leaves_only_private_files(sage_home: Path) -> None:
    model = sage_home / "finetune_output" / "tiny"
    (model / "merged_model").mkdir(parents=True)
    (model / "merged_model" / "config.json").write_text("{}")
    (model / "finetune_meta.json").write_text(json.dumps({"model": "base/model"}))
    before = user_files(sage_home)
    env = {"PYTHONPATH": f"{FAKE_VLLM}{os.pathsep}{ROOT}", "FAKE_VLLM_MODE": "ok"}
    answer = sage("chat", "--backend", "finetune", "--finetune-model", "tiny",
                  "--finetune-port", str(closed_port()), "-q", "hello", env=env)  # fmt: skip
    assert answer.returncode == 0, answer.stderr
    assert list((sage_home / "run").iterdir()) and list((sage_home / "logs" / "services").iterdir())
    assert_private(sage_home, before)


@pytest.mark.slow
def test_a_merged_model_is_private(tmp_path: Path, sage_home: Path) -> None:
    model = sage_home / "finetune_output" / "m"
    (model / "lora_weights").mkdir(parents=True)
    (model / "lora_weights" / "adapter_config.json").write_text('{"r": 8}\n')
    (model / "lora_weights" / "adapter_model.safetensors").write_bytes(b"weights")
    (model / "finetune_meta.json").write_text(json.dumps({"model": str(tmp_path)}))
    merge = tmp_path / "merge-python"  # the merge child, writing as a library would (umask)
    merge.write_text(
        '#!/bin/sh\nout="$8"\nmkdir -p "$out/sub"\necho "{}" > "$out/config.json"\n'
        'echo w > "$out/model.safetensors"\necho t > "$out/sub/tokenizer.json"\n'
        'echo "{}" > "$out/sage_merge.json"\n'
    )
    merge.chmod(0o755)
    before = user_files(sage_home)
    done = sage("finetune", "merge", "m", env={"SAGE_MERGE_PYTHON": str(merge)})
    assert done.returncode == 0, done.stderr
    assert (model / "merged_model" / "sub" / "tokenizer.json").is_file()
    assert_private(sage_home, before)
