"""SAGE's blueprint library: ready plans the mock backend picks from by keywords.

The ids are SAGE's; ``rag-simple-demo`` is the default when no keyword matches.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from typing import Any

DEFAULT_BLUEPRINT = "rag-simple-demo"

_SINK = {"class": "sage.libs.io_utils.sink.TerminalSink", "params": {"show_context": True}}
_SOURCE = {
    "class": "sage.libs.io_utils.batch.JSONLBatch",
    "kind": "batch",
    "params": {"data_path": "data/questions.jsonl", "field_query": "query"},
}
_PROMPT = {"id": "build-prompt", "kind": "map", "class": "sage.libs.rag.promptor.QAPromptor",
           "params": {}, "summary": "Put the question and passages into the prompt."}  # fmt: skip
_GENERATE = {"id": "generate-answer", "kind": "map",
             "class": "sage.libs.rag.generator.OpenAIGenerator",
             "params": {"model_name": "sage_code_expert", "base_url": "http://127.0.0.1:8000/v1"},
             "summary": "Ask the model for the answer."}  # fmt: skip


def _retrieve(cls: str, **params: Any) -> dict[str, Any]:
    return {"id": "retrieve-docs", "kind": "map", "class": cls, "params": {"top_k": 4, **params},
            "summary": "Find the passages that answer the question."}  # fmt: skip


def _plan(
    name: str, description: str, stages: list[dict[str, Any]], **extra: Any
) -> dict[str, Any]:
    plan: dict[str, Any] = {
        "pipeline": {"name": name, "description": description, "version": "1.0.0", "type": "local"},
        "source": _SOURCE,
        "stages": stages,
        "sink": _SINK,
        "services": [],
        "monitors": [],
        "notes": [],
    }
    plan.update(extra)
    return plan


@dataclass(frozen=True)
class Blueprint:
    """A ready plan and the words that point to it."""

    id: str
    """SAGE's blueprint id."""
    keywords: tuple[str, ...]
    """Words (English and Chinese) that make it the pick."""
    plan: dict[str, Any]
    """The plan, as data."""


BLUEPRINTS: tuple[Blueprint, ...] = (
    Blueprint(
        "rag-simple-demo",
        ("rag", "question", "answer", "qa", "retrieval", "chroma", "问答", "检索"),
        _plan("rag-simple-demo", "Answer questions from documents with retrieval.",
              [_retrieve("sage.libs.rag.retriever.ChromaRetriever",
                         collection_name="docs", persistence_path="./chroma"),
               _PROMPT, _GENERATE]),
    ),
    Blueprint(
        "hello-world-batch",
        ("hello", "batch", "example", "simple", "demo", "示例"),
        _plan("hello-world-batch", "Read records in batches and print them.",
              [{"id": "uppercase", "kind": "map", "class": "sage.examples.hello.UpperCaseMap",
                "params": {}, "summary": "Turn each record into upper case."}],
              sink={"class": "sage.libs.io_utils.sink.PrintSink", "params": {}}),
    ),
    Blueprint(
        "hello-world-log",
        ("log", "logs", "logging", "filter", "errors", "日志"),
        _plan("hello-world-log", "Keep the error lines of a log and print them.",
              [{"id": "keep-errors", "kind": "filter", "class": "sage.examples.hello.ErrorFilter",
                "params": {"level": "ERROR"}, "summary": "Keep only error lines."}],
              source={"class": "sage.libs.io_utils.source.FileSource", "kind": "batch",
                      "params": {"data_path": "app.log"}},
              sink={"class": "sage.libs.io_utils.sink.PrintSink", "params": {}}),
    ),
    Blueprint(
        "rag-multimodal-fusion",
        ("multimodal", "image", "images", "fusion", "vision", "多模态", "图像"),
        _plan("rag-multimodal-fusion", "Retrieve text and image passages and fuse them.",
              [_retrieve("sage.libs.rag.retriever.MilvusDenseRetriever",
                         collection_name="multimodal", uri="./milvus.db"),
               _PROMPT, _GENERATE]),
    ),
    Blueprint(
        "rag-dense-milvus",
        ("milvus", "dense", "vector", "vectors", "embedding", "embeddings", "向量"),
        _plan("rag-dense-milvus", "Answer questions with dense retrieval from Milvus.",
              [_retrieve("sage.libs.rag.retriever.MilvusDenseRetriever",
                         collection_name="docs", uri="./milvus.db"),
               _PROMPT, _GENERATE]),
    ),
    Blueprint(
        "rag-rerank",
        ("rerank", "reranker", "rerank", "bge", "precision", "重排"),
        _plan("rag-rerank", "Retrieve, rerank with BGE, then answer.",
              [_retrieve("sage.libs.rag.retriever.ChromaRetriever",
                         collection_name="docs", persistence_path="./chroma", top_k=20),
               {"id": "rerank", "kind": "map", "class": "sage.libs.rag.reranker.BGEReranker",
                "params": {"model_name": "BAAI/bge-reranker-base", "top_k": 4},
                "summary": "Keep the four best passages."},
               _PROMPT, _GENERATE]),
    ),
)  # fmt: skip


def pick(description: str) -> Blueprint:
    """The blueprint whose keywords the description mentions most (the default on a tie at 0)."""
    text = description.lower()
    words = set(re.findall(r"[a-z]+", text))

    def hits(blueprint: Blueprint) -> int:
        return sum(1 for k in blueprint.keywords if (k in words if k.isascii() else k in text))

    best = max(BLUEPRINTS, key=hits)
    if hits(best) == 0:
        best = next(b for b in BLUEPRINTS if b.id == DEFAULT_BLUEPRINT)
    return best


def blueprint_plan(description: str, name: str | None = None) -> dict[str, Any]:
    """A copy of the picked blueprint's plan, renamed to ``name`` when given."""
    plan = copy.deepcopy(pick(description).plan)
    if name:
        plan["pipeline"]["name"] = name
    return plan
