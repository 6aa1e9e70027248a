"""Ingest reads only what is inside the source folder and no file over the size limit: a link
out of the folder (``notes.md -> ~/.ssh/id_rsa``) and a huge file are left out, not read, and
named in a warning by the CLI and the language server."""

from __future__ import annotations

from pathlib import Path

import pytest

from sage_lsp import protocol
from sage_lsp.rag.index import MIB, DocIndex
from tests.rag.test_chat_rag import sage
from tests.rag.test_index import make_docs
from tests.support.rpc_client import RpcClient

SECRET = "BEGIN OPENSSH PRIVATE KEY zebraquagga"


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    """The test docs, plus links: one to a fake secret outside the folder, one to a folder
    outside it, one to a document inside it, one to itself."""
    docs = make_docs(tmp_path / "docs")
    secret = tmp_path / "ssh" / "id_rsa"
    secret.parent.mkdir()
    secret.write_text(SECRET, encoding="utf-8")
    (secret.parent / "keys.md").write_text(SECRET, encoding="utf-8")
    (docs / "notes.md").symlink_to(secret)
    (docs / "zh" / "ssh").symlink_to(secret.parent, target_is_directory=True)
    (docs / "guide-link.md").symlink_to(Path("guide.md"))
    (docs / "loop.md").symlink_to(Path("loop.md"))  # no file: ignored, like a broken link
    return docs


def test_links_out_of_the_source_are_left_out_and_named(docs: Path, sage_home: Path) -> None:
    index = DocIndex(sage_home, "mine")
    report = index.ingest(docs)
    assert index.search("zebraquagga OPENSSH") == []
    assert [w.split(":")[0] for w in report.warnings] == ["skipped notes.md", "skipped zh/ssh"]
    assert (
        "a link to" in report.warnings[0]
        and str(docs.parent / "ssh" / "id_rsa") in report.warnings[0]
    )
    paths = {hit.doc_path for hit in index.search("SIGKILL process group", k=10)}
    assert paths == {"guide.md", "guide-link.md"}, "a link inside the folder is read"


def test_a_document_that_became_a_link_out_is_dropped(tmp_path: Path, sage_home: Path) -> None:
    docs = make_docs(tmp_path / "docs")
    (docs / "notes.md").write_text(f"# Notes\n\n{SECRET}\n", encoding="utf-8")
    index = DocIndex(sage_home, "mine")
    index.ingest(docs)
    assert [hit.doc_path for hit in index.search("zebraquagga")] == ["notes.md"]
    (docs / "notes.md").unlink()
    (docs / "notes.md").symlink_to(tmp_path)
    report = index.ingest(docs)
    assert report.removed == 1 and index.search("zebraquagga") == []
    assert report.warnings and report.warnings[0].startswith("skipped notes.md: it is a link")


def test_a_file_over_the_limit_is_skipped_without_being_read(
    tmp_path: Path, sage_home: Path
) -> None:
    docs = make_docs(tmp_path / "docs")
    (docs / "big.md").write_text("# Big\n\n" + "walrus " * 300, encoding="utf-8")  # 2107 bytes
    index = DocIndex(sage_home, "mine")
    small = index.ingest(docs, max_file_mb=0.001)
    assert small.warnings == [
        "skipped big.md: 2,107 bytes, over the limit of 1,048 (ingest_max_file_mb = 0.001)"
    ]
    assert index.search("walrus") == [] and small.bytes_read < 1000, "big.md was not read"
    assert index.ingest(docs).warnings == [] and index.search("walrus")[0].doc_path == "big.md"


def test_the_default_limit_is_ten_mib(tmp_path: Path, sage_home: Path) -> None:
    docs = make_docs(tmp_path / "docs")
    with (docs / "huge.txt").open("wb") as sparse:  # a sparse file: no disk, no reading
        sparse.truncate(10 * MIB + 1)
    with (docs / "fits.txt").open("wb") as sparse:
        sparse.truncate(10 * MIB)
    report = DocIndex(sage_home, "mine").ingest(docs)
    assert report.warnings == [
        "skipped huge.txt: 10,485,761 bytes, over the limit of 10,485,760 (ingest_max_file_mb = 10)"
    ]
    assert report.skipped == 2, "fits.txt is read, found binary (NUL bytes)"


@pytest.mark.slow
def test_the_cli_prints_the_warnings_and_honours_the_setting(docs: Path, sage_home: Path) -> None:
    (docs / "big.md").write_text("# Big\n\n" + "walrus " * 300, encoding="utf-8")
    (sage_home / "config.toml").write_text("ingest_max_file_mb = 0.001\n", encoding="utf-8")
    done = sage("chat", "ingest", "--source", str(docs), "--index", "mine")
    assert done.returncode == 0, done.stderr
    warnings = [line for line in done.stderr.splitlines() if line.startswith("warning: ")]
    assert [w.split(":")[1].strip() for w in warnings] == [
        "skipped notes.md",
        "skipped zh/ssh",
        "skipped big.md",
    ]
    assert "2,107 bytes, over the limit of 1,048 (ingest_max_file_mb = 0.001)" in warnings[2]
    answer = sage("chat", "--index", "mine", "-q", "zebraquagga walrus")
    assert answer.returncode == 0 and "sources:" not in answer.stdout, "nothing found"


@pytest.mark.slow
async def test_the_language_server_returns_the_warnings(docs: Path) -> None:
    (docs / "big.md").write_text("# Big\n\n" + "walrus " * 300, encoding="utf-8")
    client = await RpcClient.start()
    await client.initialize({"backend": "mock", "index": "none", "ingestMaxFileMb": 0.001})
    response = await client.request(protocol.INDEX_INGEST, {"source": str(docs), "index": "m"})
    warnings = response["result"]["warnings"]
    assert [w.split(":")[0] for w in warnings] == [
        "skipped notes.md",
        "skipped zh/ssh",
        "skipped big.md",
    ]
    logged = [m["message"] for m in client.notifications["window/logMessage"]]
    assert any("skipped notes.md" in message for message in logged)
    chat = await client.request(protocol.CHAT, {"message": "zebraquagga walrus", "index": "m"})
    assert chat["result"]["sources"] == []
    await client.close()


def peak_rss_kib(pid: int) -> int:
    """The process's peak resident memory (``VmHWM``), in KiB."""
    status = Path(f"/proc/{pid}/status").read_text(encoding="utf-8")
    [line] = [line for line in status.splitlines() if line.startswith("VmHWM:")]
    return int(line.split()[1])


@pytest.mark.slow
async def test_a_huge_file_costs_the_language_server_no_memory(tmp_path: Path) -> None:
    """400 MiB cost the server 410 MB of memory before the limit; now it is not read."""
    docs = make_docs(tmp_path / "docs")
    with (docs / "dump.txt").open("wb") as sparse:
        sparse.truncate(400 * MIB)
    client = await RpcClient.start()
    await client.initialize({"backend": "mock", "index": "none"})
    before = peak_rss_kib(client.process.pid)
    response = await client.request(protocol.INDEX_INGEST, {"source": str(docs), "index": "m"})
    assert response["result"]["warnings"][0].startswith("skipped dump.txt: 419,430,400 bytes")
    assert peak_rss_kib(client.process.pid) - before < 20 * 1024
    await client.close()
