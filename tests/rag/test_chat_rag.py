"""Retrieval in chat: the REPL and one-shot CLI, the language server, the prompt."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from sage_lsp import protocol
from sage_lsp.backends.openai_compat import OpenAICompatibleBackend
from sage_lsp.chat.conversation import Conversation
from sage_lsp.chat.engine import ChatEngine
from sage_lsp.config import load_settings
from sage_lsp.rag.retrieve import retrieve
from tests.rag.test_index import make_docs
from tests.support.openai_server import OpenAIServer
from tests.support.rpc_client import RpcClient


def sage(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sage_lsp.cli", *args],
        capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def test_default_index_is_built_from_the_packaged_docs_and_cited(sage_home: Path) -> None:
    result = sage("chat", "--index", "docs-public", "-q", "How does the supervisor stop vLLM?")
    assert result.returncode == 0, result.stderr
    assert "From the docs (" in result.stdout and "[1]" in result.stdout
    # services.md explains it; the packaged docs change, so its rank among the four may too
    [sources] = [line for line in result.stdout.splitlines() if line.startswith("sources: [1] ")]
    assert "services.md#" in sources
    assert (sage_home / "cache" / "chat" / "docs-public.sqlite").is_file()
    shown = json.loads(sage("chat", "show").stdout)
    assert shown["index_name"] == "docs-public" and shown["num_chunks"] > 10


def test_small_talk_skips_retrieval() -> None:
    result = sage("chat", "--index", "docs-public", "-q", "thanks!")
    assert result.returncode == 0 and "sources:" not in result.stdout
    assert "You said" in result.stdout


def test_missing_index_names_the_ingest_command() -> None:
    result = sage("chat", "--index", "nope", "-q", "what is it?")
    assert result.returncode == 2
    assert "sage chat ingest --source DIR --index nope" in result.stderr
    assert "Traceback" not in result.stderr


def test_ingest_and_show_commands(tmp_path: Path) -> None:
    docs = make_docs(tmp_path / "docs")
    done = sage("chat", "ingest", "--source", str(docs), "--index", "mine", "--chunk-size", "400")
    assert done.returncode == 0, done.stderr
    assert "mine: 5 added, 0 updated, 0 removed, 0 unchanged, 1 skipped" in done.stdout
    again = sage("chat", "ingest", "--source", str(docs), "--index", "mine", "--chunk-size", "400")
    assert "6 unchanged" in again.stdout
    resized = sage("chat", "ingest", "--source", str(docs), "--index", "mine")
    assert "6 updated" in resized.stdout, "a new chunk size chunks every file again"
    manifest = json.loads(sage("chat", "show", "--index", "mine").stdout)
    assert manifest["num_documents"] == 6
    answer = sage("chat", "--index", "mine", "--top-k", "2", "-q", "SIGKILL process group")
    assert "sources: [1] guide.md#stopping" in answer.stdout
    bad = sage("chat", "ingest", "--source", str(tmp_path / "missing"), "--index", "x")
    assert bad.returncode == 2 and "is not a folder" in bad.stderr


async def test_prompt_numbers_the_passages_and_asks_for_citations(
    tmp_path: Path, sage_home: Path
) -> None:
    from sage_lsp.rag.index import DocIndex

    DocIndex(sage_home, "mine").ingest(make_docs(tmp_path / "docs"))
    passages = retrieve(load_settings(), "mine", "how is the process group stopped?", 3)
    assert [p.n for p in passages] == list(range(1, len(passages) + 1))
    with OpenAIServer() as server:
        engine = ChatEngine(OpenAICompatibleBackend("compatible", base_url=server.base_url))
        result = await engine.run_turn(Conversation("sys"), "how?", None, passages)
        system = server.requests[-1]["messages"][0]["content"]
    assert system.startswith("sys\n\n") and "cite the passages you use as [n]" in system
    assert "[1] Serving guide — Stopping (guide.md)" in system
    assert [s.n for s in result.passages] == [p.n for p in passages]


@pytest.mark.slow
async def test_language_server_retrieves_lists_and_ingests(tmp_path: Path) -> None:
    docs = make_docs(tmp_path / "docs")
    client = await RpcClient.start()
    await client.initialize({"backend": "mock", "index": "none"})
    plain = (await client.request(protocol.CHAT, {"message": "SIGKILL process group"}))["result"]
    assert plain["sources"] == []
    missing = await client.request(protocol.CHAT, {"message": "x", "index": "mine"})
    assert missing["error"]["code"] == protocol.INVALID_PARAMS
    assert "sage chat ingest" in missing["error"]["message"]

    ingest = await client.request(
        protocol.INDEX_INGEST,
        {"source": str(docs), "index": "mine", "chunkSize": 400, "workDoneToken": "t1"},
    )
    result = ingest["result"]
    assert result["added"] == 5 and result["index"]["numDocuments"] == 6
    kinds = [p["value"]["kind"] for p in client.notifications["$/progress"] if p["token"] == "t1"]
    assert kinds[0] == "begin" and kinds[-1] == "end" and "report" in kinds
    listed = (await client.request(protocol.INDEX_LIST, {}))["result"]["indexes"]
    assert [i["name"] for i in listed] == ["mine"]

    cited = await client.request(
        protocol.CHAT, {"message": "SIGKILL process group", "index": "mine", "topK": 2}
    )
    sources = cited["result"]["sources"]
    assert 1 <= len(sources) <= 2 and sources[0]["path"] == "guide.md"
    assert sources[0]["heading"] == "Stopping" and sources[0]["n"] == 1
    assert sources[0]["uri"] == (docs / "guide.md").resolve().as_uri()
    assert "[1]" in cited["result"]["text"]
    bad = await client.request(protocol.INDEX_INGEST, {"source": str(docs), "index": "../x"})
    assert bad["error"]["code"] == protocol.INVALID_PARAMS
    await client.close()


def test_the_cli_says_what_it_left_out_to_fit_a_small_model() -> None:
    with OpenAIServer(max_model_len=512) as server:
        result = sage(
            "chat", "--backend", "compatible", "--base-url", server.base_url,
            "--index", "docs-public", "-q", "How does the supervisor stop vLLM?",
        )  # fmt: skip
        assert server.prompt_tokens and server.prompt_tokens[-1] <= 512 - 128
    assert result.returncode == 0, result.stderr
    [note] = [line for line in result.stdout.splitlines() if line.startswith("[left out ")]
    assert note.endswith(
        "to fit tiny-model's context of 512 tokens (128 of them kept for the answer)]"
    )
    [sources] = [line for line in result.stdout.splitlines() if line.startswith("sources: ")]
    assert "[1] " in sources and "[4] " not in sources and "[4]" in note


@pytest.mark.slow
async def test_chat_result_names_what_was_left_out_to_fit(tmp_path: Path) -> None:
    with OpenAIServer(max_model_len=512) as server:
        client = await RpcClient.start()
        await client.initialize({"backend": "compatible", "baseUrl": server.base_url})
        answer = await client.request(
            protocol.CHAT, {"message": "How does the supervisor stop vLLM?", "index": "docs-public"}
        )
        await client.close()
    result = answer["result"]
    trimmed = result["trimmed"]
    assert trimmed["contextTokens"] == 512 and trimmed["reservedTokens"] == 128
    assert trimmed["promptTokens"] == server.prompt_tokens[-1] <= 512 - 128
    assert trimmed["turns"] == 0 and trimmed["cutChars"] == 0
    kept, dropped = result["sources"], trimmed["passages"]
    assert kept and dropped and len(kept) + len(dropped) == 4
    assert sorted(s["n"] for s in kept + dropped) == [1, 2, 3, 4]
    assert max(s["n"] for s in kept) < min(s["n"] for s in dropped)
    assert trimmed["note"].startswith("left out passage")
