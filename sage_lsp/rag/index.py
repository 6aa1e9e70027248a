"""A retrieval index: one SQLite database per index with full-text search (FTS5, BM25 ranking).

``$SAGE_HOME/cache/chat/<name>.sqlite`` holds the documents (path, hash, title), their chunks
and an FTS5 table over chunk text, title and heading. Chinese, Japanese and Korean text is also
indexed as character bigrams (FTS5's tokenizer would keep a whole run of CJK characters as one
token, so ``默认`` would not find ``默认为``). ``<name>.manifest.json`` beside it carries SAGE's
manifest fields. Re-ingesting a folder re-processes only changed files and drops deleted ones.
Ingest reads only what is inside the folder (a link that leads out of it is left out) and no file
over the size limit (``ingest_max_file_mb``); both are reported as warnings. The index files are
private to the user (0600, the SQLite journal files too, in a 0700 folder).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import sqlite3
import stat
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import ClassVar

from sage_lsp.config import Settings, model_name
from sage_lsp.core.errors import InvalidInput
from sage_lsp.paths import create_private_file, make_private_dir, write_private_text
from sage_lsp.rag import dense
from sage_lsp.rag.chunking import SUFFIXES, Chunk, chunk_document
from sage_lsp.rag.dense import Embedder

SCHEMA_VERSION = 2
"""2: words are stemmed (FTS5's ``porter`` tokenizer); 1 did not stem."""
MIB = 1 << 20
"""The unit of ``ingest_max_file_mb``."""
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]+")
_WORD = re.compile(r"[^\W_]+", re.UNICODE)
STOPWORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "but",
        "by",
        "can",
        "do",
        "does",
        "for",
        "from",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "me",
        "my",
        "of",
        "on",
        "or",
        "so",
        "that",
        "the",
        "their",
        "them",
        "then",
        "there",
        "these",
        "this",
        "to",
        "use",
        "used",
        "using",
        "was",
        "we",
        "what",
        "when",
        "where",
        "which",
        "who",
        "why",
        "will",
        "with",
        "you",
        "your",
    ]
)
"""English words too common to help a query (they would only add noise to BM25)."""

Progress = Callable[[int, int, str], None]
"""``(files done, files in all, current file)``."""


class RetrievalError(InvalidInput):
    """An index that is missing or cannot be read; the message says what to do."""


@dataclass(frozen=True)
class Hit:
    """A chunk found by a search."""

    doc_path: str
    """Document path, relative to the ingested folder."""
    title: str
    """Document title."""
    heading: str
    """Section heading path."""
    anchor: str
    """Section anchor."""
    text: str
    """The chunk."""
    score: float
    """BM25 relevance (higher is better)."""


@dataclass
class IngestReport:
    """What an ingest did."""

    added: int = 0
    updated: int = 0
    removed: int = 0
    unchanged: int = 0
    skipped: int = 0
    chunks: int = 0
    seconds: float = 0.0
    bytes_read: int = 0
    warnings: list[str] = field(default_factory=list)
    """One line per file or folder left out, naming it and saying why."""


def cjk_bigrams(text: str) -> str:
    """Every pair of neighbouring CJK characters (a lone character stays itself)."""
    grams: list[str] = []
    for run in _CJK.findall(text):
        grams += [run] if len(run) == 1 else [run[i : i + 2] for i in range(len(run) - 1)]
    return " ".join(grams)


COSTLY_CHUNKS = 2000
"""A query term found in more chunks than this is costly to rank (FTS5 reads every chunk that
holds it to weigh it), and its low IDF adds little: it is left out of the query while
:data:`KEEP_TERMS` rarer terms found in the index remain. A bound on cost, not a share of the
corpus: on an index of up to this many chunks every word of the question counts."""
KEEP_TERMS = 2
_CJK_STOPWORDS = re.compile("为什么|什么|怎么|怎样|如何|多少|哪些|哪个|是否|请问|[的是吗呢了吧]")
"""Chinese question words and particles, cut out of a query's CJK text before its bigrams."""


def query_terms(query: str) -> list[str]:
    """The query's words (without English stopwords) and CJK bigrams (without Chinese question
    words), in order, once each."""
    terms: list[str] = []
    for word in _WORD.findall(_CJK.sub(" ", query).lower()):
        if word not in STOPWORDS and word not in terms:
            terms.append(word)
    bigrams = cjk_bigrams(_CJK_STOPWORDS.sub(" ", query)).split()
    return terms + [g for g in dict.fromkeys(bigrams) if g not in terms]


def match_query(query: str, terms: list[str] | None = None) -> str | None:
    """An FTS5 query that matches any of the terms (by default, all of the query's)."""
    terms = query_terms(query) if terms is None else terms
    if not terms:
        return None
    return " OR ".join(_quoted(term) for term in terms)


def _quoted(term: str) -> str:
    """``term`` as an FTS5 string (a phrase of one token, operators taken literally)."""
    return '"' + term.replace('"', '""') + '"'


class _TermCounts:
    """How many chunks of one index hold each term, kept in the process until a document of
    the index is stored or dropped (by any process). A count over :data:`COSTLY_CHUNKS` is
    only known to be over it until it is asked for exactly (counting reads every chunk that
    holds the term)."""

    _by_index: ClassVar[dict[Path, _TermCounts]] = {}

    def __init__(self, generation: str | None) -> None:
        self.generation = generation
        self.counts: dict[str, int] = {}
        self.exact: set[str] = set()

    @classmethod
    def of(cls, db_path: Path, generation: str | None) -> _TermCounts:
        """The counts of the index at ``db_path`` as ingested last (``generation``)."""
        counts = cls._by_index.get(db_path)
        if counts is None or counts.generation != generation:
            counts = cls._by_index[db_path] = cls(generation)
        return counts

    def get(self, db: sqlite3.Connection, term: str, exact: bool = False) -> int:
        """The chunks holding ``term``: exact, or at most :data:`COSTLY_CHUNKS` and one."""
        if term not in self.counts or (exact and term not in self.exact):
            limit = "" if exact else f" LIMIT {COSTLY_CHUNKS + 1}"
            query = f"SELECT 1 FROM chunks_fts WHERE chunks_fts MATCH ?{limit}"
            self.counts[term] = db.execute(
                f"SELECT count(*) FROM ({query})", (_quoted(term),)
            ).fetchone()[0]
            if exact or self.counts[term] <= COSTLY_CHUNKS:
                self.exact.add(term)
        return self.counts[term]


def index_dir(sage_home: Path) -> Path:
    """Where indexes live."""
    return sage_home / "cache" / "chat"


class DocIndex:
    """One index: its database and manifest."""

    def __init__(self, sage_home: Path, name: str, embedder: Embedder | None = None) -> None:
        self.embedder = embedder
        """Dense retrieval, when configured: vectors are made at ingest and fused at search."""
        try:
            self.name = model_name(name)
        except ValueError as exc:
            raise RetrievalError(f"invalid index name {name!r}: {exc}") from None
        self.db_path = index_dir(sage_home) / f"{self.name}.sqlite"
        self.manifest_path = index_dir(sage_home) / f"{self.name}.manifest.json"

    def exists(self) -> bool:
        """Whether the index has been built."""
        return self.db_path.is_file()

    def outdated(self) -> bool:
        """Whether the index was built by a version of sage-lsp with another schema."""
        if not self.exists():
            return False
        try:
            with contextlib.closing(
                sqlite3.connect(f"{self.db_path.as_uri()}?mode=ro", uri=True)
            ) as db:
                return self._meta(db, "schema") != str(SCHEMA_VERSION)
        except sqlite3.DatabaseError:
            return False  # damaged: searching it says so

    def remove(self) -> None:
        """Delete the index: its database (with SQLite's journal files) and manifest."""
        journals = [self.db_path.with_name(self.db_path.name + end) for end in ("-wal", "-shm")]
        for path in (self.db_path, *journals, self.manifest_path):
            path.unlink(missing_ok=True)

    @contextlib.contextmanager
    def connect(self, create: bool = False) -> Iterator[sqlite3.Connection]:
        """A connection; a damaged or missing database is a clear :class:`RetrievalError`."""
        if not create and not self.exists():
            raise RetrievalError(
                f"there is no index {self.name!r} (looked for {self.db_path}); build it with "
                f"`sage chat ingest --source DIR --index {self.name}`"
            )
        make_private_dir(self.db_path.parent)
        if create:
            create_private_file(self.db_path)  # SQLite gives its -wal and -shm files this mode
        db = sqlite3.connect(self.db_path, timeout=60, isolation_level=None)
        try:
            db.execute("PRAGMA busy_timeout = 60000")
            if create:
                db.execute("PRAGMA journal_mode = WAL")  # stays set in the file
                self._create(db)
            schema = self._meta(db, "schema")
            if schema != str(SCHEMA_VERSION):
                raise RetrievalError(
                    f"the index {self.name!r} at {self.db_path} was made by another version of "
                    f"sage-lsp (schema {schema}); rebuild it with "
                    f"`sage chat ingest --source DIR --index {self.name}`"
                )
            yield db
        except sqlite3.DatabaseError as exc:
            raise RetrievalError(
                f"the index {self.name!r} at {self.db_path} cannot be read ({exc}); move the "
                f"file away and rebuild it with `sage chat ingest --source DIR --index {self.name}`"
            ) from None
        finally:
            db.close()

    @staticmethod
    def _create(db: sqlite3.Connection) -> None:
        db.executescript(
            """
            CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT);
            CREATE TABLE IF NOT EXISTS documents(
                path TEXT PRIMARY KEY, sha256 TEXT, size INTEGER, title TEXT);
            CREATE TABLE IF NOT EXISTS chunks(
                id INTEGER PRIMARY KEY, doc_path TEXT, n INTEGER, title TEXT, heading TEXT,
                anchor TEXT, start INTEGER, text TEXT);
            CREATE INDEX IF NOT EXISTS chunks_by_doc ON chunks(doc_path);
            CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5(
                text, title, heading, cjk, tokenize = 'porter unicode61 remove_diacritics 2');
            """
        )
        db.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
        dense.create_tables(db)

    # --- ingest ------------------------------------------------------------------------------

    def ingest(
        self,
        source: Path,
        chunk_size: int = 800,
        chunk_overlap: int = 160,
        max_files: int | None = None,
        progress: Progress | None = None,
        max_file_mb: float = Settings.ingest_max_file_mb,
    ) -> IngestReport:
        """Bring the index up to date with ``source``: new and changed files are (re)chunked,
        unchanged ones kept, deleted ones dropped. Links that lead out of ``source`` and files
        over ``max_file_mb`` MiB are left out (not read) with a warning in the report."""
        if not source.is_dir():
            raise RetrievalError(f"{source} is not a folder")
        if chunk_size < 100 or not 0 <= chunk_overlap < chunk_size:
            raise RetrievalError("chunk size must be at least 100 and the overlap smaller than it")
        started = time.monotonic()
        files, warnings = source_files(source)
        files = files[:max_files]
        report = IngestReport(warnings=warnings)
        with self.connect(create=True) as db:
            shape = f"{chunk_size}/{chunk_overlap}"
            rechunk = self._meta(db, "chunking") not in (None, shape)
            db.execute("INSERT OR REPLACE INTO meta VALUES ('chunking', ?)", (shape,))
            known = dict(db.execute("SELECT path, sha256 FROM documents"))
            if rechunk:  # a new chunk size or overlap: every file is chunked again
                known = dict.fromkeys(known, "")
            seen: set[str] = set()
            for done, (rel, real) in enumerate(files, 1):
                if progress is not None:
                    progress(done, len(files), rel)
                data = _read(rel, real, max_file_mb, report)
                if data is None:
                    continue  # left out: a copy indexed before is dropped below
                seen.add(rel)
                report.bytes_read += len(data)
                digest = hashlib.sha256(data).hexdigest()
                if known.get(rel) == digest:
                    report.unchanged += 1
                    continue
                text = _decode(data)
                chunks = []
                if text is not None:
                    chunks = chunk_document(rel, text, chunk_size, chunk_overlap)
                self._store(db, rel, digest, len(data), chunks)
                report.chunks += len(chunks)
                if text is None:
                    report.skipped += 1  # binary: remembered, so it is not read again
                if rel in known:
                    report.updated += 1
                elif text is not None:
                    report.added += 1
            gone = [rel for rel in known if rel not in seen]
            if max_files is None and gone:
                db.execute("BEGIN IMMEDIATE")
                for rel in gone:
                    self._drop(db, rel)
                db.execute("COMMIT")
                report.removed = len(gone)
            self._embed_missing(db)
            documents, chunks_total = self._counts(db)
            db.execute("INSERT OR REPLACE INTO meta VALUES ('chunks', ?)", (str(chunks_total),))
        report.seconds = time.monotonic() - started
        self._write_manifest(source, chunk_size, chunk_overlap, documents, chunks_total)
        return report

    def _store(
        self, db: sqlite3.Connection, rel: str, digest: str, size: int, chunks: list[Chunk]
    ) -> None:
        """Replace the document ``rel`` (its SHA-256 and size) and its chunks in one
        transaction, with their vectors when dense retrieval is on."""
        title = chunks[0].title if chunks else PurePosixPath(rel).stem
        db.execute("BEGIN IMMEDIATE")
        try:
            self._drop(db, rel)
            db.execute("INSERT INTO documents VALUES (?, ?, ?, ?)", (rel, digest, size, title))
            new_ids: list[int] = []
            for c in chunks:
                cursor = db.execute(
                    "INSERT INTO chunks(doc_path, n, title, heading, anchor, start, text)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (c.doc_path, c.n, c.title, c.heading, c.anchor, c.start, c.text),
                )
                db.execute(
                    "INSERT INTO chunks_fts(rowid, text, title, heading, cjk)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (cursor.lastrowid, c.text, c.title, c.heading,
                     cjk_bigrams(f"{c.title} {c.heading} {c.text}")),
                )  # fmt: skip
                new_ids.append(int(cursor.lastrowid or 0))
            if self.embedder is not None:
                dense.store(db, self.embedder, new_ids, [c.text for c in chunks])
            db.execute("COMMIT")
        except dense.EmbeddingError as exc:
            db.execute("ROLLBACK")
            raise RetrievalError(str(exc)) from None
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def _embed_missing(self, db: sqlite3.Connection) -> None:
        """Vectors for chunks that have none from this model (an index built before)."""
        if self.embedder is None:
            return
        rows = db.execute(
            "SELECT id, text FROM chunks WHERE id NOT IN"
            " (SELECT chunk_id FROM vectors WHERE model = ?)",
            (self.embedder.model,),
        ).fetchall()
        for start in range(0, len(rows), 512):
            batch = rows[start : start + 512]
            db.execute("BEGIN IMMEDIATE")
            try:
                dense.store(db, self.embedder, [r[0] for r in batch], [r[1] for r in batch])
                db.execute("COMMIT")
            except dense.EmbeddingError as exc:
                db.execute("ROLLBACK")
                raise RetrievalError(str(exc)) from None

    @staticmethod
    def _drop(db: sqlite3.Connection, rel: str) -> None:
        """Remove the document ``rel`` and its chunks (in the caller's transaction), and mark
        the index changed: counts of terms remembered by searching processes are stale."""
        db.execute("INSERT OR REPLACE INTO meta VALUES ('generation', ?)", (str(time.time_ns()),))
        ids = [row[0] for row in db.execute("SELECT id FROM chunks WHERE doc_path = ?", (rel,))]
        db.executemany("DELETE FROM chunks_fts WHERE rowid = ?", [(i,) for i in ids])
        db.executemany("DELETE FROM vectors WHERE chunk_id = ?", [(i,) for i in ids])
        db.execute("DELETE FROM chunks WHERE doc_path = ?", (rel,))
        db.execute("DELETE FROM documents WHERE path = ?", (rel,))

    @staticmethod
    def _bm25(db: sqlite3.Connection, terms: list[str], limit: int) -> list[tuple[int, float]]:
        """The best ``limit`` chunks by BM25: those with every term first (a small set, quick
        to rank), then those with any of them."""
        found: list[tuple[int, float]] = []
        expressions = [match_query("", terms)]
        if len(terms) > 1:
            expressions.insert(0, " AND ".join(_quoted(t) for t in terms))
        for expression in expressions:
            if expression is None or len(found) >= limit:
                break
            seen = {rowid for rowid, _ in found}
            rows = db.execute(
                "SELECT rowid, -bm25(chunks_fts, 1.0, 2.0, 1.5, 1.0) FROM chunks_fts"
                " WHERE chunks_fts MATCH ? ORDER BY bm25(chunks_fts, 1.0, 2.0, 1.5, 1.0)"
                " LIMIT ?",
                (expression, limit),
            ).fetchall()
            found += [(int(r), float(score)) for r, score in rows if int(r) not in seen]
        return found[:limit]

    def _selective_terms(self, db: sqlite3.Connection, terms: list[str]) -> list[str]:
        """``terms`` found in the index, less those in more than :data:`COSTLY_CHUNKS` chunks
        while :data:`KEEP_TERMS` rarer ones remain (the rarest found always stay)."""
        counts = _TermCounts.of(self.db_path, self._meta(db, "generation"))
        found = [t for t in terms if counts.get(db, t)]
        costly = [t for t in found if counts.get(db, t) > COSTLY_CHUNKS]
        keep = max(0, KEEP_TERMS - (len(found) - len(costly)))
        rarest = sorted(costly, key=lambda t: counts.get(db, t, exact=True))[:keep]
        return [t for t in found if t not in costly or t in rarest]

    @staticmethod
    def _meta(db: sqlite3.Connection, key: str) -> str | None:
        row = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    @staticmethod
    def _counts(db: sqlite3.Connection) -> tuple[int, int]:
        documents = db.execute("SELECT count(*) FROM documents").fetchone()[0]
        chunks = db.execute("SELECT count(*) FROM chunks").fetchone()[0]
        return int(documents), int(chunks)

    def _write_manifest(
        self, source: Path, chunk_size: int, chunk_overlap: int, documents: int, chunks: int
    ) -> None:
        old = self.manifest()
        manifest = {
            "index_name": self.name,
            "db_path": str(self.db_path),
            "created_at": old.get("created_at") or time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "updated_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "source_dir": str(source.resolve()),
            "embedding": self._method(),
            "chunk_size": chunk_size,
            "chunk_overlap": chunk_overlap,
            "num_documents": documents,
            "num_chunks": chunks,
        }
        write_private_text(self.manifest_path, json.dumps(manifest, indent=2, ensure_ascii=False))

    def _method(self) -> dict[str, object]:
        """The manifest's ``embedding`` field: how this index retrieves."""
        params: dict[str, object] = {"engine": "sqlite-fts5", "cjk": "bigram"}
        if self.embedder is None:
            return {"method": "bm25", "params": params}
        params |= {"dense_model": self.embedder.model, "fusion": f"rrf(k={dense.RRF_K})"}
        return {"method": "bm25+dense", "params": params}

    def manifest(self) -> dict[str, object]:
        """The manifest, or ``{}`` if there is none."""
        try:
            data = json.loads(self.manifest_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    # --- search ------------------------------------------------------------------------------

    def search(self, query: str, k: int = 4) -> list[Hit]:
        """The ``k`` chunks that match ``query`` best: BM25 (titles and headings weigh more),
        fused with dense similarity by reciprocal rank fusion when an embedder is set."""
        with self.connect() as db:
            terms = self._selective_terms(db, query_terms(query))
            if not terms and self.embedder is None:
                return []
            pool = k if self.embedder is None else max(4 * k, 20)
            bm25 = self._bm25(db, terms, pool)
            scores = {int(rowid): float(score) for rowid, score in bm25}
            order = list(scores)
            if self.embedder is not None:
                try:
                    nearest = dense.nearest(db, self.embedder, query, pool)
                except dense.EmbeddingError as exc:
                    raise RetrievalError(str(exc)) from None
                fused = dense.fuse(order, nearest)
                scores = {cid: 1.0 / (dense.RRF_K + rank) for rank, cid in enumerate(fused, 1)}
                order = fused
            hits = []
            for chunk_id in order[:k]:
                row = db.execute(
                    "SELECT doc_path, title, heading, anchor, text FROM chunks WHERE id = ?",
                    (chunk_id,),
                ).fetchone()
                hits.append(Hit(row[0], row[1], row[2], row[3], row[4], scores[chunk_id]))
        return hits

    def counts(self) -> tuple[int, int]:
        """``(documents, chunks)``."""
        with self.connect() as db:
            return self._counts(db)


def source_files(source: Path) -> tuple[list[tuple[str, Path]], list[str]]:
    """What ingest reads under ``source``: for each file of a type it reads, outside hidden
    files and folders, its path relative to ``source`` and the file it resolves to, in path
    order; and a warning for each link that leads out of ``source`` (left out). Links to
    folders are not followed (the files of one inside ``source`` are read where they are)."""
    root = _real(source)
    found: list[tuple[Path, Path]] = []
    warnings: list[str] = []
    for folder, dirs, names in os.walk(source):
        here = Path(folder)
        dirs[:] = sorted(name for name in dirs if not name.startswith("."))
        for name in dirs:
            if (here / name).is_symlink() and not _real(here / name).is_relative_to(root):
                warnings.append(_outside(here / name, source, root))
        for name in sorted(names):
            path = here / name
            if name.startswith(".") or path.suffix.lower() not in SUFFIXES:
                continue
            real = _real(path)
            if not real.is_relative_to(root):
                warnings.append(_outside(path, source, root))
            elif real.is_file():
                found.append((path, real))
    found.sort()
    return [(path.relative_to(source).as_posix(), real) for path, real in found], warnings


def _real(path: Path) -> Path:
    """``path`` with every link resolved (a loop of links, which is no file, does not raise)."""
    return Path(os.path.realpath(path))


def _outside(link: Path, source: Path, root: Path) -> str:
    """The warning for a link that leads out of the ingested folder."""
    return (
        f"skipped {link.relative_to(source).as_posix()}: it is a link to "
        f"{_real(link)}, outside {root}"
    )


def _read(rel: str, path: Path, max_file_mb: float, report: IngestReport) -> bytes | None:
    """The file's bytes, or None with a warning in ``report`` when it is over ``max_file_mb``
    MiB (known from its size, before reading) or cannot be read. Never reads more than the
    limit and a byte, and follows no link (nor waits on a pipe) put in place of the file after
    it was listed."""
    limit = int(max_file_mb * MIB)
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        with os.fdopen(os.open(path, flags), "rb") as f:
            status = os.fstat(f.fileno())
            if not stat.S_ISREG(status.st_mode):
                raise OSError(errno.EINVAL, "not a regular file")
            size = status.st_size
            data = f.read(limit + 1) if size <= limit else b""
    except OSError as exc:
        report.warnings.append(f"skipped {rel}: it cannot be read ({exc.strerror or exc})")
        return None
    if size > limit or len(data) > limit:  # over the limit, or it grew after the check
        size = max(size, len(data))
        report.warnings.append(
            f"skipped {rel}: {size:,} bytes, over the limit of {limit:,} "
            f"(ingest_max_file_mb = {max_file_mb:g})"
        )
        return None
    return data


def _decode(data: bytes) -> str | None:
    """The file's text, or None for binary data."""
    if b"\x00" in data[:8192]:
        return None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None


def list_indexes(sage_home: Path) -> list[DocIndex]:
    """Every index under ``$SAGE_HOME/cache/chat``."""
    folder = index_dir(sage_home)
    if not folder.is_dir():
        return []
    return [DocIndex(sage_home, p.stem) for p in sorted(folder.glob("*.sqlite"))]
