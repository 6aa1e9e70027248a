"""Passages for a question: skip small talk, open (or build) the index, search, number the hits.

The default index ``docs-public`` is built from sage-lsp's own documentation, shipped in the
package, the first time it is needed and the user has none.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

from sage_lsp.config import DEFAULT_INDEX, Settings
from sage_lsp.core.types import Passage
from sage_lsp.rag.dense import Embedder, EmbeddingError, EndpointEmbedder, LocalEmbedder
from sage_lsp.rag.index import DocIndex, RetrievalError

"""Built from the package's docs on first use."""

_SMALL_TALK = re.compile(
    r"^\s*(hi|hello|hey|yo|thanks?|thank you|thx|ok(ay)?|cool|great|bye|goodbye|good "
    r"(morning|afternoon|evening|night)|how are you|who are you"
    r"|你好|您好|谢谢|多谢|再见|嗨|早上好|晚安)"
    "[\\s!.?,~\u3002\uff01\uff1f\uff0c]*$",  # also CJK punctuation
    re.IGNORECASE,
)


def is_small_talk(text: str) -> bool:
    """Greetings and thanks, which need no retrieval."""
    return bool(_SMALL_TALK.match(text))


def packaged_docs() -> Path:
    """The documentation folder shipped inside the package."""
    return Path(str(resources.files("sage_lsp") / "docs"))


def embedder_for(settings: Settings) -> Embedder | None:
    """The dense embedder the settings ask for (``None`` when ``embeddings`` is ``none``)."""
    if settings.embeddings == "none":
        return None
    if not settings.embedding_model:
        raise RetrievalError(f"embeddings = {settings.embeddings!r} needs embedding_model")
    url = None
    if settings.embeddings == "endpoint":
        url = settings.embedding_base_url or settings.base_url
        if not url:
            raise RetrievalError("embeddings = 'endpoint' needs embedding_base_url (or base_url)")
    try:
        return _embedder(settings.embeddings, settings.embedding_model, url, settings.api_key)
    except EmbeddingError as exc:
        raise RetrievalError(str(exc)) from None


@functools.lru_cache(maxsize=4)
def _embedder(kind: str, model: str, url: str | None, api_key: str | None) -> Embedder:
    """One embedder per configuration, kept between questions: a local model is loaded once
    and an endpoint's client keeps its connections (a failure is not kept)."""
    if kind == "local":
        return LocalEmbedder(model)
    assert url is not None
    return EndpointEmbedder(url, model, api_key)


def open_index(settings: Settings, name: str) -> DocIndex:
    """The index ``name`` with the configured embedder; ``docs-public`` is built from the
    package's docs if missing, or built again if an older sage-lsp made it."""
    index = DocIndex(settings.sage_home, name, embedder_for(settings))
    if name == DEFAULT_INDEX and index.outdated():
        index.remove()
    if not index.exists() and name == DEFAULT_INDEX:
        docs = packaged_docs()
        if not docs.is_dir():
            raise RetrievalError(f"the package's docs are missing ({docs}); reinstall sage-lsp")
        index.ingest(docs, max_file_mb=settings.ingest_max_file_mb)
    return index


def retrieve(settings: Settings, name: str | None, question: str, k: int) -> list[Passage]:
    """The ``k`` best passages for ``question`` from index ``name`` (none for small talk or
    when retrieval is off), numbered from 1."""
    if name is None or is_small_talk(question):
        return []
    index = open_index(settings, name)
    hits = index.search(question, k)
    source = index.manifest().get("source_dir") if hits else None
    root = Path(source) if isinstance(source, str) else None
    return [
        Passage(
            n, h.title, h.doc_path, h.heading, h.text, round(h.score, 4),
            (root / h.doc_path).as_uri() if root else None,
        )
        for n, h in enumerate(hits, 1)
    ]  # fmt: skip


def context_block(passages: Sequence[Passage]) -> str:
    """The passages as the prompt shows them, with the instruction to cite them."""
    parts = [
        "Answer from the retrieved context below when it is relevant, and cite the passages "
        "you use as [n]. If the context does not answer the question, say so."
    ]
    for p in passages:
        where = f"{p.title} — {p.heading}" if p.heading else p.title
        parts.append(f"[{p.n}] {where} ({p.path})\n{p.text}")
    return "\n\n".join(parts)
