"""Chunking, ingest (incremental, deletions, unicode, empty and binary files), search, and
damaged or concurrent use of an index."""

from __future__ import annotations

import itertools
import sqlite3
import threading
from pathlib import Path

import pytest

from sage_lsp.rag.chunking import chunk_document, sections, windows
from sage_lsp.rag.index import DocIndex, RetrievalError, cjk_bigrams, match_query

GUIDE = """# Serving guide

Intro text about serving.

## Install

Run `make vllm-env` to build the environment. It takes about three minutes.

```python
# not a heading inside a fence
print("hello")
```

## Stopping

The supervisor sends SIGTERM to the process group, then SIGKILL after ten seconds.
"""

RST = """Lifecycle
=========

Sessions hold services.

Keep alive
----------

A service outlives its last holder by keepAliveSeconds.
"""

CHINESE = """# 检索

查询时 efSearch 默认为 96，可以在配置文件中修改。

## 分块

文档先按标题切分，再按窗口切分。
"""


def make_docs(root: Path) -> Path:
    root.mkdir()
    (root / "guide.md").write_text(GUIDE, encoding="utf-8")
    (root / "lifecycle.rst").write_text(RST, encoding="utf-8")
    (root / "zh").mkdir()
    (root / "zh" / "rag.md").write_text(CHINESE, encoding="utf-8")
    (root / "notes.txt").write_text("Plain notes: the port is 8000 by default.\n")
    (root / "empty.md").write_text("")
    (root / "image.md").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00binary")
    (root / "ignored.py").write_text("# not a doc\n")
    (root / ".hidden").mkdir()
    (root / ".hidden" / "secret.md").write_text("# Hidden\n\nnever indexed\n")
    return root


def test_markdown_sections_skip_fences_and_keep_the_title_apart() -> None:
    title, parts = sections(GUIDE, ".md")
    assert title == "Serving guide"
    assert [p.heading for p in parts] == ["", "Install", "Stopping"]
    assert [p.anchor for p in parts] == ["", "install", "stopping"]
    assert "not a heading inside a fence" in parts[1].text


def test_rst_sections() -> None:
    title, parts = sections(RST, ".rst")
    assert title == "Lifecycle"
    assert [p.heading for p in parts] == ["", "Keep alive"]
    assert "keepAliveSeconds" in parts[-1].text


def test_windows_overlap_and_cut_at_sentence_ends() -> None:
    text = " ".join(f"Sentence number {n} ends here." for n in range(60))
    pieces = windows(text, 200, 40)
    assert len(pieces) > 5
    assert all(len(p) <= 200 for _, p in pieces)
    assert all(p.endswith(".") for _, p in pieces[:-1]), "cut at a sentence end"
    for (a, first), (b, _) in itertools.pairwise(pieces):
        assert b < a + len(first), "neighbours overlap"


def test_windows_of_a_table_start_and_end_with_whole_rows() -> None:
    """A quote of any window reads as table rows, never from the middle of a cell."""
    rows = [f"| `file-{n}.log` | what service {n} wrote, kept for a week |" for n in range(40)]
    pieces = windows("\n".join(rows), 400, 120)
    assert len(pieces) > 5
    for _, piece in pieces:
        assert all(line in rows for line in piece.splitlines()), piece
    for (a, first), (b, _) in itertools.pairwise(pieces):
        assert b < a + len(first), "neighbours overlap"


def test_chunks_carry_their_place() -> None:
    chunks = chunk_document("docs/guide.md", GUIDE, chunk_size=200, chunk_overlap=40)
    stopping = [c for c in chunks if c.heading == "Stopping"]
    assert stopping and stopping[0].anchor == "stopping" and stopping[0].title == "Serving guide"
    assert GUIDE[stopping[0].start :].lstrip().startswith(stopping[0].text[:20])
    assert [c.n for c in chunks] == list(range(len(chunks)))


def test_cjk_bigrams_and_queries() -> None:
    assert cjk_bigrams("默认为") == "默认 认为"
    assert match_query("默认") == '"默认"'
    assert match_query("the and of") is None
    assert match_query('say "hi"') == '"say" OR "hi"'


def test_ingest_search_reingest_and_delete(tmp_path: Path, sage_home: Path) -> None:
    docs = make_docs(tmp_path / "docs")
    index = DocIndex(sage_home, "mine")
    first = index.ingest(docs)
    assert (first.added, first.skipped, first.removed) == (5, 1, 0)  # image.md is binary
    assert index.counts()[0] == 6
    [hit] = index.search("SIGKILL process group", 1)
    assert hit.doc_path == "guide.md" and hit.heading == "Stopping" and hit.score > 0
    assert index.search("默认", 1)[0].doc_path == "zh/rag.md"  # two CJK characters match
    assert index.search("keep alive holder", 1)[0].doc_path == "lifecycle.rst"
    assert not index.search("never indexed secret hidden", 4)
    manifest = index.manifest()
    assert manifest["index_name"] == "mine" and manifest["num_documents"] == 6
    assert manifest["chunk_size"] == 800 and manifest["source_dir"] == str(docs.resolve())

    again = index.ingest(docs)
    assert (again.added, again.updated, again.unchanged) == (0, 0, 6)
    (docs / "notes.txt").write_text("Plain notes: the port is 9000 now.\n")
    (docs / "guide.md").unlink()
    third = index.ingest(docs)
    assert (third.updated, third.removed, third.unchanged) == (1, 1, 4)
    assert not index.search("SIGKILL", 4)
    assert "9000" in index.search("port", 1)[0].text


def test_missing_and_damaged_indexes_are_clear_errors(sage_home: Path) -> None:
    with pytest.raises(RetrievalError, match="sage chat ingest --source DIR --index nope"):
        DocIndex(sage_home, "nope").search("x")
    damaged = DocIndex(sage_home, "damaged")
    damaged.db_path.parent.mkdir(parents=True)
    damaged.db_path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(RetrievalError, match="cannot be read") as err:
        damaged.search("x")
    assert "move the file away" in str(err.value)
    assert damaged.db_path.read_bytes().startswith(b"this is not"), "nothing was lost"
    with pytest.raises(RetrievalError, match="invalid index name"):
        DocIndex(sage_home, "../x")


def test_queries_while_ingesting(tmp_path: Path, sage_home: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    for n in range(200):
        (docs / f"doc{n}.md").write_text(f"# Doc {n}\n\nalpha beta gamma {n} " * 20)
    index = DocIndex(sage_home, "busy")
    (docs / "seed.md").write_text("# Seed\n\nalpha seed\n")
    index.ingest(docs, max_files=1)
    errors: list[BaseException] = []
    results: list[int] = []

    def query() -> None:
        try:
            for _ in range(50):
                results.append(len(index.search("alpha", 4)))
        except BaseException as exc:
            errors.append(exc)

    readers = [threading.Thread(target=query) for _ in range(3)]
    for reader in readers:
        reader.start()
    index.ingest(docs)
    for reader in readers:
        reader.join()
    assert not errors and results and all(r >= 1 for r in results)
    assert index.counts()[0] == 201
    with sqlite3.connect(index.db_path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_chinese_sentences_are_cut_after_a_full_stop() -> None:
    text = "这是第一句话。" * 60
    pieces = windows(text, 100, 20)
    assert len(pieces) > 3 and all(p.endswith("。") for _, p in pieces)
