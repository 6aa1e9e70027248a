"""Optional dense retrieval: chunk embeddings fused with BM25 by reciprocal rank fusion.

Off by default (``embeddings = "none"``). ``endpoint`` asks an OpenAI-compatible
``/v1/embeddings`` (``embedding_base_url``, else ``base_url``); ``local`` loads an installed
sentence-transformers model (``embedding_model``: a folder or a name already in the local
cache; nothing is ever downloaded). Vectors are stored in the index database beside the chunks
they belong to, and the cosine search uses numpy (the ``dense`` extra).
"""

from __future__ import annotations

import importlib
import os
import sqlite3
from collections.abc import Sequence
from typing import Any, Protocol

from sage_lsp.core.errors import InvalidInput

RRF_K = 60
"""The constant of reciprocal rank fusion: score = sum of 1 / (RRF_K + rank)."""
BATCH = 64
"""Texts per embedding request."""


class EmbeddingError(InvalidInput):
    """Embeddings were asked for but cannot be made; the message says why and what to do."""


class Embedder(Protocol):
    """Turns texts into vectors."""

    model: str
    """Identifies the vectors: an index keeps the model its vectors came from."""

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One vector per text."""
        ...


class EndpointEmbedder:
    """Embeddings from an OpenAI-compatible ``/v1/embeddings`` endpoint (the official client)."""

    def __init__(self, base_url: str, model: str, api_key: str | None) -> None:
        import openai

        self.model = model
        self._errors = openai.OpenAIError
        self._client = openai.OpenAI(
            base_url=base_url, api_key=api_key or "EMPTY", max_retries=0, timeout=120
        )
        self._base_url = base_url

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """Embed in batches of :data:`BATCH`."""
        vectors: list[list[float]] = []
        for start in range(0, len(texts), BATCH):
            try:
                response = self._client.embeddings.create(
                    model=self.model, input=list(texts[start : start + BATCH]),
                    encoding_format="float",
                )  # fmt: skip
            except self._errors as exc:
                raise EmbeddingError(
                    f"{self._base_url}/embeddings failed for model {self.model!r}: {exc}"
                ) from None
            vectors += [list(item.embedding) for item in sorted(response.data, key=_index)]
        return vectors


def _index(item: Any) -> int:
    return int(item.index)


class LocalEmbedder:
    """Embeddings from an installed sentence-transformers model, loaded offline."""

    def __init__(self, model: str) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        try:
            library = importlib.import_module("sentence_transformers")
        except ImportError:
            raise EmbeddingError(
                "embeddings = 'local' needs sentence-transformers: pip install "
                "sentence-transformers (and a model that is already on this machine)"
            ) from None
        try:
            self._model = library.SentenceTransformer(model, local_files_only=True)
        except Exception as exc:  # the library raises many kinds for a missing model
            raise EmbeddingError(
                f"the embedding model {model!r} is not available offline ({exc})"
            ) from None
        self.model = model

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """Normalised vectors."""
        vectors = self._model.encode(list(texts), normalize_embeddings=True)
        return [list(map(float, v)) for v in vectors]


def _numpy() -> Any:
    try:
        import numpy
    except ImportError:
        raise EmbeddingError("dense retrieval needs numpy: pip install 'sage-lsp[dense]'") from None
    return numpy


def create_tables(db: sqlite3.Connection) -> None:
    """The table of chunk vectors (kept with the chunks they belong to)."""
    db.execute(
        "CREATE TABLE IF NOT EXISTS vectors(chunk_id INTEGER PRIMARY KEY, model TEXT, v BLOB)"
    )


def store(
    db: sqlite3.Connection, embedder: Embedder, chunk_ids: Sequence[int], texts: Sequence[str]
) -> None:
    """Embed chunks and store their vectors (float32)."""
    if not chunk_ids:
        return
    np = _numpy()
    vectors = embedder.embed(texts)
    db.executemany(
        "INSERT OR REPLACE INTO vectors VALUES (?, ?, ?)",
        [
            (cid, embedder.model, np.asarray(v, dtype="float32").tobytes())
            for cid, v in zip(chunk_ids, vectors, strict=True)
        ],
    )


def nearest(db: sqlite3.Connection, embedder: Embedder, query: str, limit: int) -> list[int]:
    """Chunk ids by cosine similarity to the query, best first (vectors of this model only)."""
    np = _numpy()
    rows = db.execute("SELECT chunk_id, v FROM vectors WHERE model = ?", (embedder.model,))
    ids, blobs = [], []
    for chunk_id, blob in rows:
        ids.append(chunk_id)
        blobs.append(blob)
    if not ids:
        return []
    matrix = np.frombuffer(b"".join(blobs), dtype="float32").reshape(len(ids), -1)
    q = np.asarray(embedder.embed([query])[0], dtype="float32")
    norms = np.linalg.norm(matrix, axis=1) * (np.linalg.norm(q) or 1.0)
    scores = matrix @ q / np.where(norms == 0, 1.0, norms)
    best = np.argsort(-scores)[:limit]
    return [int(ids[i]) for i in best]


def fuse(*rankings: Sequence[int], k: int = RRF_K) -> list[int]:
    """Reciprocal rank fusion of several rankings of chunk ids, best first."""
    scores: dict[int, float] = {}
    for ranking in rankings:
        for rank, chunk_id in enumerate(ranking, 1):
            scores[chunk_id] = scores.get(chunk_id, 0.0) + 1.0 / (k + rank)
    return sorted(scores, key=lambda cid: -scores[cid])
