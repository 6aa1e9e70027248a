"""Ranking that holds on small corpora: a plain question finds its passage in a folder of four
short documents, Chinese questions with a Latin term and Latin questions over Chinese docs find
theirs, and the bundled docs answer "how do I start the language server"."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from sage_lsp.config import Settings
from sage_lsp.rag import index as index_module
from sage_lsp.rag.index import DocIndex, RetrievalError, match_query, query_terms
from sage_lsp.rag.retrieve import packaged_docs, retrieve

SMALL = {
    "install.md": "# Installing vecstore\n\nRun `pip install vecstore` to install the package. "
    "Python 3.10 or newer is required.\n",
    "search.md": "# Search settings\n\nThe efSearch parameter sets how many candidates the HNSW "
    "graph visits at query time. It defaults to 96; raise it for better recall at the cost of "
    "slower queries.\n",
    "zh/search.md": "# 检索参数\n\n查询时 efSearch 默认为 96，调大可以提高召回率，但查询会变慢。\n",
    "backup.md": "# Backups\n\nSnapshots are written every night to the backup folder. Restore "
    "one with `vecstore restore SNAPSHOT`; the server must be stopped first.\n",
}


@pytest.fixture
def small(tmp_path: Path, sage_home: Path) -> DocIndex:
    """The four documents, indexed."""
    for rel, text in SMALL.items():
        (tmp_path / "docs" / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "docs" / rel).write_text(text, encoding="utf-8")
    index = DocIndex(sage_home, "small")
    index.ingest(tmp_path / "docs")
    return index


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("How do I install vecstore?", "install.md"),
        ("Which Python version does the package need?", "install.md"),
        ("How often are snapshots taken and how can I restore one?", "backup.md"),
        ("What does raising efSearch change about recall?", "search.md"),
        ("Should the server be stopped before I restore a snapshot?", "backup.md"),
    ],
)
def test_plain_questions_find_their_document_in_a_small_corpus(
    small: DocIndex, question: str, expected: str
) -> None:
    hits = small.search(question, 4)
    assert hits, f"{question!r} found nothing"
    assert hits[0].doc_path == expected


def test_words_found_in_different_documents_still_find_them(small: DocIndex) -> None:
    """No chunk holds every word: the search falls back from all of them to any of them."""
    found = {hit.doc_path for hit in small.search("vecstore snapshot recall", 4)}
    assert {"install.md", "backup.md"} <= found


def test_a_chinese_question_naming_a_latin_term(small: DocIndex) -> None:
    hits = small.search("HNSW 索引的 efSearch 默认是多少？", 4)
    assert hits and hits[0].doc_path == "zh/search.md"


def test_a_latin_question_over_chinese_docs(tmp_path: Path, sage_home: Path) -> None:
    (tmp_path / "zh").mkdir()
    (tmp_path / "zh" / "a.md").write_text("# 检索\n\n查询时 efSearch 默认为 96。\n", "utf-8")
    (tmp_path / "zh" / "b.md").write_text("# 备份\n\n每天晚上写入 snapshot 文件。\n", "utf-8")
    index = DocIndex(sage_home, "zh")
    index.ingest(tmp_path / "zh")
    assert index.search("efSearch default value", 1)[0].doc_path == "a.md"
    assert index.search("when is a snapshot written", 1)[0].doc_path == "b.md"


def test_a_one_document_corpus(tmp_path: Path, sage_home: Path) -> None:
    (tmp_path / "one").mkdir()
    (tmp_path / "one" / "notes.md").write_text("# Notes\n\nThe port is 9000.\n", "utf-8")
    index = DocIndex(sage_home, "one")
    index.ingest(tmp_path / "one")
    assert index.search("which port does it listen on", 4)[0].doc_path == "notes.md"
    assert index.search("what is the port", 4)[0].doc_path == "notes.md"


def test_only_stopwords_find_nothing_and_syntax_is_quoted(small: DocIndex) -> None:
    assert not small.search("what is the", 4)
    assert query_terms("什么是 efSearch？") == ["efsearch"]  # question words are stopwords too
    assert match_query('say "hi" OR NOT') == '"say" OR "hi" OR "not"'


def test_the_bundled_docs_say_how_to_start_the_language_server(sage_home: Path) -> None:
    """The section that says how comes first (it came fourth), so the mock quotes it."""
    settings = Settings(sage_home=sage_home)
    passages = retrieve(settings, "docs-public", "How do I start the language server?", 4)
    best = passages[0]
    assert (best.path, best.heading) == ("protocol.md", "Starting the language server")


def test_an_older_docs_public_is_built_again(sage_home: Path) -> None:
    """Schema 2 stems words: the default index made by an older sage-lsp is rebuilt, another
    index says how to rebuild it."""
    settings = Settings(sage_home=sage_home)
    assert retrieve(settings, "docs-public", "start the language server", 4)
    for name in ("docs-public", "mine"):
        index = DocIndex(sage_home, name)
        if name == "mine":
            index.ingest(packaged_docs())
        with sqlite3.connect(index.db_path) as db:
            db.execute("UPDATE meta SET value = '1' WHERE key = 'schema'")
        assert index.outdated()
    assert retrieve(settings, "docs-public", "start the language server", 4)
    assert not DocIndex(sage_home, "docs-public").outdated()
    with pytest.raises(RetrievalError, match="another version of sage-lsp"):
        retrieve(settings, "mine", "start the language server", 4)


def test_a_word_added_later_is_found_by_the_same_process(tmp_path: Path, small: DocIndex) -> None:
    """Counts remembered from an earlier search do not hide a document ingested since."""
    assert not small.search("zeppelin", 4)
    (tmp_path / "docs" / "new.md").write_text("# New\n\nThe zeppelin lands at noon.\n", "utf-8")
    small.ingest(tmp_path / "docs")
    assert small.search("zeppelin", 4)[0].doc_path == "new.md"


def test_words_in_very_many_chunks(
    tmp_path: Path, sage_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past the cost bound a common word is left out while two rarer ones remain, and a question
    of common words alone still finds passages."""
    monkeypatch.setattr(index_module, "COSTLY_CHUNKS", 3)
    (tmp_path / "many").mkdir()
    for n in range(6):
        words = "Query settings." if n < 4 else "Query. The efSearch value is 96." * (n == 4)
        (tmp_path / "many" / f"d{n}.md").write_text(f"# Doc {n}\n\n{words}\n")
    index = DocIndex(sage_home, "many")
    index.ingest(tmp_path / "many")
    with index.connect() as db:
        assert index._selective_terms(db, query_terms("query settings efSearch")) == [
            "settings",
            "efsearch",
        ]
        assert index._selective_terms(db, query_terms("query settings value efSearch")) == [
            "value",
            "efsearch",
        ]
        assert index._selective_terms(db, query_terms("query settings")) == ["query", "settings"]
    assert index.search("query settings value efSearch", 1)[0].doc_path == "d4.md"
    assert len(index.search("query settings", 4)) == 4
