"""Dense retrieval from an OpenAI-compatible /v1/embeddings endpoint, fused with BM25."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from sage_lsp.config import load_settings
from sage_lsp.rag.dense import fuse
from sage_lsp.rag.index import RetrievalError
from sage_lsp.rag.retrieve import embedder_for, open_index, retrieve
from tests.rag.test_index import make_docs
from tests.support.openai_server import OpenAIServer


def test_reciprocal_rank_fusion() -> None:
    assert fuse([1, 2, 3], [3, 1]) == [1, 3, 2]
    assert fuse([], [5, 4]) == [5, 4]


def test_dense_finds_what_bm25_cannot(tmp_path: Path, sage_home: Path) -> None:
    docs = make_docs(tmp_path / "docs")
    (docs / "stop.md").write_text("# Stop\n\nTo stop a service use the stop command.\n")
    with OpenAIServer() as server:
        settings = load_settings(
            {"embeddings": "endpoint", "embedding_model": "fake-embed",
             "embedding_base_url": server.base_url}
        )  # fmt: skip
        index = open_index(settings, "dense")
        index.ingest(docs)
        assert any(r.get("model") == "fake-embed" for r in server.requests)
        with sqlite3.connect(index.db_path) as db:
            vectors = db.execute("SELECT count(*) FROM vectors").fetchone()[0]
            chunks = db.execute("SELECT count(*) FROM chunks").fetchone()[0]
        assert vectors == chunks > 0
        lexical = open_index(load_settings(), "dense").search("halt", 4)
        assert lexical == [], "BM25 alone knows no 'halt'"
        [best, *_] = retrieve(settings, "dense", "halt", 4)
        assert best.path == "stop.md" and best.n == 1


def test_dense_settings_need_a_model_and_an_endpoint(sage_home: Path) -> None:
    with pytest.raises(RetrievalError, match="needs embedding_model"):
        embedder_for(load_settings({"embeddings": "endpoint"}))
    with pytest.raises(RetrievalError, match="needs embedding_base_url"):
        embedder_for(load_settings({"embeddings": "endpoint", "embedding_model": "m"}))
