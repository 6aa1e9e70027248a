"""The rag_quality benchmark's baseline is SAGE's hash embedding as the facts describe it:
SHA-256 buckets of the lower-cased ``[\\w\\u4e00-\\u9fa5]+`` tokens, 384 dimensions,
L2-normalised; and its numpy and pure-Python searches rank alike."""

from __future__ import annotations

import hashlib
import math
import sys

import pytest

from bench.rag_quality import DIM, HashIndex, hash_counts, hash_embedding
from sage_lsp.rag.chunking import Chunk


def test_vector_has_384_dimensions_and_unit_length() -> None:
    for text in ("hello world", "FileLock timeout", "查询时 efSearch 默认为 96", "a"):
        vector = hash_embedding(text)
        assert len(vector) == DIM == 384
        assert math.isclose(math.sqrt(sum(v * v for v in vector)), 1.0)


def test_same_tokens_give_the_same_vector() -> None:
    assert hash_embedding("Hello, world!") == hash_embedding("hello world")
    assert hash_embedding("world hello") == hash_embedding("hello world")  # a bag of tokens
    assert hash_embedding("hello world") != hash_embedding("hello there")


def test_each_token_adds_its_eight_sha256_words() -> None:
    digest = hashlib.sha256(b"lock").digest()
    expected = [0] * DIM
    for offset in range(0, 32, 4):
        expected[int.from_bytes(digest[offset : offset + 4], "little") % DIM] += 1
    assert hash_counts("Lock") == expected
    assert sum(hash_counts("one two three")) == 3 * 8


def test_a_run_of_chinese_is_one_token_and_empty_text_is_zero() -> None:
    assert sum(hash_counts("默认为")) == 8  # SAGE's regex keeps a CJK run whole
    assert hash_embedding("") == [0.0] * DIM


def _chunks() -> list[Chunk]:
    texts = [
        "Acquire the lock with a timeout in seconds.",
        "The lock is released when the context exits.",
        "Render a table with rows and columns.",
        "Progress bars for long loops.",
        "timeout timeout timeout",
        "Acquire the lock with a timeout in seconds.",  # a tie with the first
    ]
    return [Chunk(f"d{i}.md", f"d{i}", "", "", 0, 0, t) for i, t in enumerate(texts)]


def test_numpy_and_pure_python_rank_alike(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("numpy")
    with_numpy = HashIndex(_chunks())
    monkeypatch.setitem(sys.modules, "numpy", None)  # import numpy now fails
    pure = HashIndex(_chunks())
    assert (with_numpy.engine, pure.engine) == ("numpy", "pure Python")
    for query in ("lock timeout", "table rows", "progress loops", "nothing matches here"):
        assert [c.doc_path for c in with_numpy.search(query, 6)] == [
            c.doc_path for c in pure.search(query, 6)
        ]
    top = pure.search("acquire the lock with a timeout in seconds", 2)
    assert [c.doc_path for c in top] == ["d0.md", "d5.md"]  # ties go to the earlier chunk
