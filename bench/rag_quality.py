"""Retrieval quality: sage-lsp's default retriever versus SAGE's hash embedding, same corpus.

The corpus is documentation installed with sage-lsp's dependencies, nothing downloaded: one
Markdown file per module and per class of pygls, lsprotocol, typer, rich, prompt_toolkit,
httpx2, openai, filelock, psutil, yaml, hypothesis, anyio, attrs, packaging, pluggy,
platformdirs and pytest, written from their docstrings (qualified name as the title, each
documented function, method and attribute as a section), plus the Markdown and
reStructuredText files they ship. Left out: test suites, vendored code, openai's generated
``types`` and its ``AsyncX`` classes, whose docstrings repeat those of ``X`` word for word.

Each question is labelled with the document(s) that answer it; the labels were fixed before
either retriever ran. Some questions are written by hand for well-known tasks ("how do I make
a file lock with a timeout" -> filelock's lock class). The others are derived, two per package
where it has them, from documents taken in hash order: a sentence from inside a docstring
(never a summary line), cut to its first six content words after its first two words, with
every word of the object's own name dropped; labelled with the documents that contain the
sentence (one found in more than three is not used). A label can miss a document that answers
too; that counts against both retrievers alike.

Both retrievers get the same chunks (sage-lsp's chunker, 800 characters, 160 overlap). The
baseline is SAGE's ``sage chat`` default, re-implemented: each lower-cased token of
``[\\w\\u4e00-\\u9fa5]+`` is hashed with SHA-256, each of the digest's eight 4-byte words
(little-endian) adds 1 to bucket ``word % 384``, the vector is L2-normalised, and the chunks of
highest cosine to the question win (exact search). hit@4: one of the first four chunks comes
from a labelled document; MRR@10: the mean reciprocal rank of the first such chunk among the
first ten (0 when there is none).

Three small tiers show what a user sees on a folder of their own (each question's labels were
fixed when the documents were written, before any retriever ran; ``bench/data/rag/``): *small*,
three corpora of 1, 4 and 6 short documents written for the benchmark, with plain questions;
*bilingual*, five Chinese documents holding Latin-script terms (efSearch, LoRA, Docker), asked in
Chinese; *docs-public*, sage-lsp's own documentation (the default index) with the questions users
ask about sage-lsp: starting the server, choosing a backend, the finetune flow, stopping
services, ingest. Each is indexed and asked the same way, by both retrievers. With the ranking
before (words in more than 5 % of the chunks dropped from the question), sage-lsp's hit@4 was
46.4 % on *small* (MRR@10 0.464: most questions found nothing), 0 % on *bilingual* and 93.8 % on
*docs-public* (MRR@10 0.780).
"""

from __future__ import annotations

import ast
import hashlib
import inspect
import itertools
import json
import math
import re
import statistics
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sage_lsp.rag.chunking import SUFFIXES, Chunk, chunk_document
from sage_lsp.rag.index import DocIndex
from sage_lsp.rag.retrieve import packaged_docs

PACKAGES = (
    "pygls",
    "lsprotocol",
    "typer",
    "rich",
    "prompt_toolkit",
    "httpx2",
    "openai",
    "filelock",
    "psutil",
    "yaml",
    "hypothesis",
    "anyio",
    "attr",
    "packaging",
    "pluggy",
    "platformdirs",
    "_pytest",
)
"""Installed packages whose documentation makes the corpus."""
SKIP_PARTS = frozenset(["tests", "test", "vendor", "_vendor", "types"])
"""Folders left out: test suites, vendored code, openai's generated API types."""
TWINS_SKIPPED = frozenset(["openai"])
"""Packages whose ``AsyncX`` classes repeat the docstrings of ``X`` word for word: left out."""
CHUNK_SIZE = 800
CHUNK_OVERLAP = 160
K = 4
MRR_DEPTH = 10
DIM = 384
_SAGE_TOKEN = re.compile(r"[\w\u4e00-\u9fa5]+")
DATA = Path(__file__).resolve().parent / "data" / "rag"
"""The small tiers' documents and labelled questions."""
TIERS = ("small", "bilingual", "docs-public")


# --- the baseline: SAGE's hash embedding -------------------------------------------------------


def hash_counts(text: str, dim: int = DIM) -> list[int]:
    """SAGE's hash embedding before normalisation: bucket counts of the tokens' SHA-256 words."""
    counts = [0] * dim
    lowered = text.lower()
    tokens = _SAGE_TOKEN.findall(lowered) or ([lowered] if lowered else [])
    for token in tokens:
        digest = hashlib.sha256(token.encode("utf-8")).digest()
        for offset in range(0, 32, 4):
            counts[int.from_bytes(digest[offset : offset + 4], "little") % dim] += 1
    return counts


def hash_embedding(text: str, dim: int = DIM) -> list[float]:
    """SAGE's ``hash`` embedding: :func:`hash_counts`, L2-normalised (all zeros stay zeros)."""
    counts = hash_counts(text, dim)
    norm = math.sqrt(sum(c * c for c in counts)) or 1.0
    return [c / norm for c in counts]


class HashIndex:
    """Exact cosine search over hash embeddings. The dot products are taken on the integer
    counts and divided by the norms afterwards, so numpy and pure Python rank alike."""

    def __init__(self, chunks: Sequence[Chunk]) -> None:
        self.chunks = list(chunks)
        rows = [hash_counts(c.text) for c in self.chunks]
        self.norms = [math.sqrt(sum(c * c for c in row)) or 1.0 for row in rows]
        try:
            import numpy
        except ImportError:
            self._np: Any = None
            self.columns = (
                [list(col) for col in zip(*rows, strict=True)] if rows else [[] for _ in range(DIM)]
            )
        else:
            self._np = numpy
            self.matrix = numpy.array(rows, dtype=numpy.int64).reshape(len(rows), DIM)
            self.norm_array = numpy.array(self.norms, dtype=numpy.float64)

    @property
    def engine(self) -> str:
        return "numpy" if self._np is not None else "pure Python"

    def search(self, query: str, k: int) -> list[Chunk]:
        """The ``k`` chunks of highest cosine; ties go to the earlier chunk."""
        q = hash_counts(query)
        q_norm = math.sqrt(sum(c * c for c in q)) or 1.0
        if self._np is not None:
            np = self._np
            scores = (self.matrix @ np.array(q, dtype=np.int64)) / (self.norm_array * q_norm)
            order = np.argsort(-scores, kind="stable")[:k].tolist()
        else:
            dots = [0] * len(self.chunks)
            for bucket, weight in enumerate(q):
                if weight:
                    column = self.columns[bucket]
                    for i, c in enumerate(column):
                        if c:
                            dots[i] += weight * c
            scores_py = [d / (n * q_norm) for d, n in zip(dots, self.norms, strict=True)]
            order = sorted(range(len(scores_py)), key=lambda i: -scores_py[i])[:k]
        return [self.chunks[i] for i in order]


# --- the corpus ---------------------------------------------------------------------------------


@dataclass
class Doc:
    """One corpus file and the docstring prose it was made from (for derived questions)."""

    path: str
    title: str
    text: str
    prose: list[tuple[str, str]]
    """``(name, docstring)`` of the object and its documented members, in order."""


def site_packages() -> Path:
    """The folder the corpus packages are installed in."""
    import filelock

    return Path(filelock.__file__).resolve().parents[1]


def _signature(node: ast.FunctionDef | ast.AsyncFunctionDef) -> str:
    args = node.args
    positional = [*args.posonlyargs, *args.args]
    if positional and positional[0].arg in ("self", "cls"):
        args = ast.arguments(
            posonlyargs=args.posonlyargs[1:] if args.posonlyargs else [],
            args=args.args[1:] if not args.posonlyargs else args.args,
            vararg=args.vararg,
            kwonlyargs=args.kwonlyargs,
            kw_defaults=args.kw_defaults,
            kwarg=args.kwarg,
            defaults=args.defaults,
        )
    try:
        text = ast.unparse(args)
    except Exception:
        text = "..."
    prefix = "async " if isinstance(node, ast.AsyncFunctionDef) else ""
    return f"{prefix}{node.name}({text})"


def _public(name: str) -> bool:
    return not name.startswith("_") or name == "__init__"


def _attribute_docs(body: Sequence[ast.stmt]) -> list[tuple[str, str]]:
    """``name = ...`` or ``name: type`` followed by a string: Sphinx's attribute docstrings."""
    found = []
    for before, after in itertools.pairwise(body):
        if not (
            isinstance(after, ast.Expr)
            and isinstance(after.value, ast.Constant)
            and isinstance(after.value.value, str)
        ):
            continue
        target: ast.expr | None = None
        if isinstance(before, ast.AnnAssign):
            target = before.target
        elif isinstance(before, ast.Assign) and len(before.targets) == 1:
            target = before.targets[0]
        if isinstance(target, ast.Name) and _public(target.id):
            found.append((target.id, inspect.cleandoc(after.value.value)))
    return found


def _members(
    body: Sequence[ast.stmt], owner: str
) -> Iterable[tuple[str, str, str]]:  # (heading, signature line, docstring)
    attributes = dict(_attribute_docs(body))
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and _public(node.name):
            doc = ast.get_docstring(node)
            if doc:
                yield f"{owner}.{node.name}", _signature(node), doc
        elif isinstance(node, (ast.AnnAssign, ast.Assign)):
            target = node.target if isinstance(node, ast.AnnAssign) else node.targets[0]
            if isinstance(target, ast.Name) and target.id in attributes:
                yield f"{owner}.{target.id}", "", attributes.pop(target.id)


def _render(title: str, signature: str, doc: str, members: Iterable[tuple[str, str, str]]) -> str:
    parts = [f"# {title}", ""]
    if signature:
        parts += [f"`{signature}`", ""]
    if doc:
        parts += [doc, ""]
    for heading, sig, text in members:
        parts += [f"## {heading}", ""]
        if sig:
            parts += [f"`{sig}`", ""]
        parts += [text, ""]
    return "\n".join(parts)


def _module_docs(package: str, module: str, tree: ast.Module) -> list[Doc]:
    folder = module.replace(".", "/")
    docs = []
    members = list(_members(tree.body, module))
    own = ast.get_docstring(tree) or ""
    if own or members:
        docs.append(
            Doc(
                f"{folder}/index.md",
                module,
                _render(module, "", own, members),
                [(module, own), *((name, text) for name, _, text in members)],
            )
        )
    classes = {node.name for node in tree.body if isinstance(node, ast.ClassDef)}
    for node in tree.body:
        if not isinstance(node, ast.ClassDef) or not _public(node.name):
            continue
        if package in TWINS_SKIPPED and node.name.startswith("Async") and node.name[5:] in classes:
            continue  # the same docstrings as its synchronous twin
        qualified = f"{module}.{node.name}"
        own = ast.get_docstring(node) or ""
        members = list(_members(node.body, node.name))
        if not (own or members):
            continue
        bases = ", ".join(ast.unparse(b) for b in node.bases)
        signature = f"class {node.name}({bases})" if bases else f"class {node.name}"
        docs.append(
            Doc(
                f"{folder}/{node.name}.md",
                qualified,
                _render(qualified, signature, own, members),
                [(qualified, own), *((name, text) for name, _, text in members)],
            )
        )
    return docs


def corpus_docs() -> list[Doc]:
    """Every corpus document, in a fixed order (same installed packages, same corpus)."""
    root = site_packages()
    docs: dict[str, Doc] = {}
    for package in PACKAGES:
        base = root / package
        for path in sorted(base.rglob("*")):
            rel = path.relative_to(root)
            if SKIP_PARTS.intersection(rel.parts[1:-1]) or not path.is_file():
                continue
            if path.suffix == ".py":
                parts = list(rel.with_suffix("").parts)
                if parts[-1] == "__init__":
                    parts.pop()
                try:
                    tree = ast.parse(path.read_text(encoding="utf-8"))
                except (SyntaxError, UnicodeDecodeError, ValueError):
                    continue
                for doc in _module_docs(package, ".".join(parts), tree):
                    docs.setdefault(doc.path, doc)
            elif path.suffix.lower() in (".md", ".rst") and "license" not in path.name.lower():
                text = path.read_text(encoding="utf-8", errors="replace")
                shown = "/".join(part.lstrip(".") for part in rel.parts)  # no hidden folders
                docs.setdefault(shown, Doc(shown, shown, text, []))
    return [docs[p] for p in sorted(docs)]


def write_corpus(docs: Sequence[Doc], folder: Path) -> int:
    """Write the documents under ``folder``; their size in bytes."""
    size = 0
    for doc in docs:
        target = folder / doc.path
        target.parent.mkdir(parents=True, exist_ok=True)
        data = doc.text.encode("utf-8")
        target.write_bytes(data)
        size += len(data)
    return size


# --- the questions ------------------------------------------------------------------------------

HANDWRITTEN: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("how do I make a file lock with a timeout", ("filelock/_core/_lock/BaseFileLock.md",)),
    (
        "what exception is raised when a file lock cannot be acquired in time",
        ("filelock/_core/_errors/Timeout.md", "filelock/_core/_lock/BaseFileLock.md"),
    ),
    ("how much memory does a running process use", ("psutil/Process.md",)),
    ("system-wide CPU utilization as a percentage", ("psutil/index.md",)),
    ("iterate over all running processes on the machine", ("psutil/index.md",)),
    ("free and total space of a disk partition", ("psutil/index.md",)),
    (
        "parse a YAML document safely without constructing arbitrary Python objects",
        ("yaml/index.md",),
    ),
    (
        "draw a table with rows and columns in the terminal",
        ("rich/table/Table.md", "rich/table/Column.md"),
    ),
    (
        "show a progress bar while looping over a sequence",
        ("rich/progress/index.md", "rich/progress/Progress.md"),
    ),
    ("highlight source code with a colour theme in the terminal", ("rich/syntax/Syntax.md",)),
    ("render Markdown text in the console", ("rich/markdown/Markdown.md",)),
    ("pretty print a nested dictionary", ("rich/pretty/index.md",)),
    ("logging handler with coloured output", ("rich/logging/RichHandler.md",)),
    (
        "nicer tracebacks with syntax highlighting for uncaught exceptions",
        ("rich/traceback/index.md", "rich/traceback/Traceback.md"),
    ),
    (
        "ask the user for a line of input with autocompletion while typing",
        (
            "prompt_toolkit/shortcuts/prompt/PromptSession.md",
            "prompt_toolkit/shortcuts/prompt/index.md",
        ),
    ),
    (
        "bind a function to a keyboard shortcut like control-t",
        ("prompt_toolkit/key_binding/key_bindings/KeyBindings.md",),
    ),
    (
        "declare a command line option with a default value and help text",
        ("typer/params/index.md",),
    ),
    (
        "test a command line application by invoking it in isolation",
        ("typer/testing/CliRunner.md",),
    ),
    (
        "generate integers between a minimum and a maximum value for a property-based test",
        ("hypothesis/strategies/_internal/numbers/index.md",),
    ),
    ("limit how many examples hypothesis tries for a test", ("hypothesis/_settings/settings.md",)),
    (
        "separate timeouts for connecting and reading in an HTTP client",
        ("httpx2/_config/Timeout.md",),
    ),
    (
        "HTTP client with connection pooling and redirects",
        ("httpx2/_client/Client.md", "httpx2/_client/AsyncClient.md"),
    ),
    (
        "maximum number of connections kept alive in the pool",
        ("httpx2/_config/Limits.md",),
    ),
    (
        "stream the answer of a chat completion token by token",
        ("openai/resources/chat/completions/completions/Completions.md",),
    ),
    (
        "turn text into embedding vectors with the OpenAI API",
        ("openai/resources/embeddings/Embeddings.md",),
    ),
    ("upload a jsonl file for fine-tuning", ("openai/resources/files/Files.md",)),
    (
        "register a handler for an LSP feature such as completion in a language server",
        ("pygls/feature_manager/FeatureManager.md", "pygls/server/JsonRPCServer.md"),
    ),
    (
        "severity levels of a diagnostic: error, warning, information, hint",
        ("lsprotocol/types/DiagnosticSeverity.md",),
    ),
    (
        "edit that replaces a range of a text document with new text",
        ("lsprotocol/types/TextEdit.md",),
    ),
    (
        "parameters of a rename request with the new symbol name",
        ("lsprotocol/types/RenameParams.md",),
    ),
    (
        "which file system events to watch with a glob pattern",
        (
            "lsprotocol/types/FileSystemWatcher.md",
            "lsprotocol/types/DidChangeWatchedFilesRegistrationOptions.md",
        ),
    ),
    (
        "diagnostics published for a document URI and version",
        ("lsprotocol/types/PublishDiagnosticsParams.md",),
    ),
    (
        "compare two version numbers including pre-releases",
        ("packaging/version/Version.md",),
    ),
    (
        "check whether a version satisfies a specifier such as >=1.0",
        ("packaging/specifiers/SpecifierSet.md", "packaging/specifiers/Specifier.md"),
    ),
    (
        "directory where an application should store its user configuration files",
        (
            "platformdirs/index.md",
            "platformdirs/api/PlatformDirsABC.md",
            "platformdirs/unix/Unix.md",
            "platformdirs/windows/Windows.md",
        ),
    ),
    (
        "run a blocking function in a worker thread from async code",
        ("anyio/to_thread/index.md",),
    ),
    (
        "cancel an operation if it takes longer than a deadline",
        ("anyio/_core/_tasks/index.md", "anyio/_core/_tasks/CancelScope.md"),
    ),
    (
        "run a subprocess and wait for its output asynchronously",
        ("anyio/_core/_subprocesses/index.md",),
    ),
    (
        "define a class with typed attributes without writing __init__ by hand",
        ("attr/_next_gen/index.md", "attr/_make/index.md"),
    ),
    (
        "validator that checks an attribute is an instance of a type",
        ("attr/validators/index.md",),
    ),
    (
        "register a plugin object with hook implementations",
        ("pluggy/_manager/PluginManager.md",),
    ),
    (
        "temporary directory unique to each test function",
        ("_pytest/tmpdir/index.md", "_pytest/tmpdir/TempPathFactory.md"),
    ),
    (
        "capture what a test prints to stdout and stderr",
        ("_pytest/capture/index.md", "_pytest/capture/CaptureFixture.md"),
    ),
    (
        "run one test function several times with different arguments",
        ("_pytest/python/Metafunc.md",),
    ),
    (
        "set an environment variable for the duration of a test",
        ("_pytest/monkeypatch/MonkeyPatch.md", "_pytest/monkeypatch/index.md"),
    ),
    (
        "assert that code raises a specific exception",
        ("_pytest/raises/index.md", "_pytest/raises/RaisesExc.md"),
    ),
)
"""Questions written by hand, with the documents that answer them (checked by reading them)."""

DERIVED_PER_PACKAGE = 2
DERIVED_WORDS = 6
MAX_LABELS = 3
_STOPWORD_TEXT = """
    a about above after again all also an and any are as at be because been before being below
    between both but by can could did do does doing done during each either else etc for
    from further had has have having he her here how i if in into is it its itself just may
    might more most must no nor not now of off on once one only or other our out over own per
    same shall she should so some such than that the their them then there these they this
    those through to too under until up upon us very via was we were what when where whether
    which while who whom why will with within without would yet you your"""
ENGLISH_STOPWORDS = frozenset(_STOPWORD_TEXT.split())
"""Dropped from derived questions (a generic English list, not the retriever's)."""
_PLAIN_WORD = re.compile(r"[A-Za-z][a-z'-]*[,.;:]?")
_QUERY_WORD = re.compile(r"[a-z][a-z'-]*[a-z]")
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")


@dataclass(frozen=True)
class Question:
    text: str
    labels: tuple[str, ...]
    kind: str
    """``hand`` or ``derived``."""
    source: str = ""
    """For a derived question, the sentence it was cut from."""


def _name_words(name: str) -> set[str]:
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name)
    return {w.lower() for w in re.split(r"[^A-Za-z0-9]+", spaced) if w}


def _sentences(docstring: str) -> list[str]:
    """Prose sentences of a docstring, its first (summary) sentence left out."""
    found = []
    for paragraph in re.split(r"\n\s*\n", docstring):
        lines = paragraph.splitlines()
        if not lines or any(
            line.startswith((" ", "\t", ">>>", ":", "..", "*", "-", "|", "#", "`"))
            for line in lines
        ):
            continue  # code, field lists, directives, bullets, tables
        found += _SENTENCE.split(" ".join(line.strip() for line in lines))
    return found[1:]


def _derive(doc: Doc, normalised: dict[str, str]) -> Question | None:
    candidates = []
    for name, docstring in doc.prose:
        for sentence in _sentences(docstring):
            tokens = sentence.split()
            if not 10 <= len(tokens) <= 40:
                continue
            if sum(bool(_PLAIN_WORD.fullmatch(t)) for t in tokens) < 0.75 * len(tokens):
                continue
            dropped = _name_words(doc.title) | _name_words(name) | ENGLISH_STOPWORDS
            words: list[str] = []
            for word in _QUERY_WORD.findall(" ".join(tokens[2:]).lower()):
                if word not in dropped and word not in words:
                    words.append(word)
            if len(words) >= 4:
                candidates.append((sentence, " ".join(words[:DERIVED_WORDS])))
    if not candidates:
        return None
    sentence, query = candidates[len(candidates) // 2]
    needle = " ".join(sentence.split())
    labels = tuple(path for path, text in normalised.items() if needle in text)
    if not 1 <= len(labels) <= MAX_LABELS:
        return None
    return Question(query, labels, "derived", sentence)


def questions(docs: Sequence[Doc]) -> tuple[list[Question], int]:
    """The hand-written questions whose documents exist, then the derived ones; and how many
    hand-written ones were dropped because none of their documents is in the corpus."""
    present = {doc.path for doc in docs}
    result = []
    dropped = 0
    for text, labels in HANDWRITTEN:
        kept = tuple(p for p in labels if p in present)
        if kept:
            result.append(Question(text, kept, "hand"))
        else:
            dropped += 1
    normalised = {doc.path: " ".join(doc.text.split()) for doc in docs}
    for package in PACKAGES:
        mine = [d for d in docs if d.path.startswith(f"{package}/") and d.prose]
        mine.sort(key=lambda d: hashlib.sha256(d.path.encode()).hexdigest())
        found = 0
        for doc in mine:
            question = _derive(doc, normalised)
            if question is not None:
                result.append(question)
                found += 1
                if found == DERIVED_PER_PACKAGE:
                    break
    return result, dropped


# --- the run ------------------------------------------------------------------------------------


def _rank(paths: Sequence[str], labels: Sequence[str]) -> int | None:
    return next((i for i, p in enumerate(paths, 1) if p in labels), None)


def _scores(ranks: Sequence[int | None]) -> dict[str, float]:
    n = len(ranks) or 1
    return {
        "hit_at_4": sum(1 for r in ranks if r is not None and r <= K) / n,
        "mrr_at_10": sum(1 / r for r in ranks if r is not None) / n,
    }


def _chunks(source: Path) -> list[Chunk]:
    """Every chunk of the files under ``source``, as the baseline indexes them."""
    chunks: list[Chunk] = []
    for path in sorted(p for p in source.rglob("*") if p.suffix.lower() in SUFFIXES):
        rel = path.relative_to(source).as_posix()
        text = path.read_bytes().decode("utf-8-sig")
        chunks += chunk_document(rel, text, CHUNK_SIZE, CHUNK_OVERLAP)
    return chunks


def tier_corpora(tier: str) -> list[tuple[Path, list[Question]]]:
    """The folders of one small tier, each with its labelled questions."""
    if tier == "docs-public":
        asked = json.loads((DATA / "docs_public.json").read_text(encoding="utf-8"))
        return [
            (packaged_docs(), [Question(q["question"], tuple(q["labels"]), tier) for q in asked])
        ]
    folder = DATA / tier
    asked = json.loads((folder / "questions.json").read_text(encoding="utf-8"))
    by_corpus: dict[str, list[Question]] = {}
    for q in asked:
        by_corpus.setdefault(q.get("corpus", "docs"), []).append(
            Question(q["question"], tuple(q["labels"]), tier)
        )
    return [(folder / corpus, found) for corpus, found in by_corpus.items()]


def run_tier(tier: str) -> dict[str, Any]:
    """Index each corpus of a small tier both ways and ask its questions of both."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="sage-bench-tier-") as tmp:
        for n, (source, asked) in enumerate(tier_corpora(tier)):
            index = DocIndex(Path(tmp), f"tier{n}")
            index.ingest(source, chunk_size=CHUNK_SIZE, chunk_overlap=CHUNK_OVERLAP)
            baseline = HashIndex(_chunks(source))
            for q in asked:
                ours = [h.doc_path for h in index.search(q.text, MRR_DEPTH)]
                theirs = [c.doc_path for c in baseline.search(q.text, MRR_DEPTH)]
                rows.append(
                    {
                        "corpus": source.name,
                        "question": q.text,
                        "labels": list(q.labels),
                        "ours_rank": _rank(ours, q.labels),
                        "baseline_rank": _rank(theirs, q.labels),
                        "ours_top": ours[:K],
                    }
                )
    return {
        "questions": len(rows),
        "ours": _scores([r["ours_rank"] for r in rows]),
        "baseline": _scores([r["baseline_rank"] for r in rows]),
        "per_question": rows,
    }


def run() -> dict[str, Any]:
    """Build the corpus, index it both ways, ask every question of both; then the small
    tiers."""
    started = time.perf_counter()
    docs = corpus_docs()
    asked, dropped = questions(docs)
    corpus_seconds = time.perf_counter() - started
    with tempfile.TemporaryDirectory(prefix="sage-bench-rag-") as tmp:
        source = Path(tmp) / "corpus"
        size = write_corpus(docs, source)
        index = DocIndex(Path(tmp) / "home", "bench")
        report = index.ingest(source, chunk_size=CHUNK_SIZE, chunk_overlap=CHUNK_OVERLAP)

        started = time.perf_counter()
        chunks = _chunks(source)
        baseline = HashIndex(chunks)
        baseline_build = time.perf_counter() - started

        per_question = []
        ours_ms, base_ms = [], []
        for q in asked:
            t0 = time.perf_counter()
            ours = [h.doc_path for h in index.search(q.text, MRR_DEPTH)]
            t1 = time.perf_counter()
            theirs = [c.doc_path for c in baseline.search(q.text, MRR_DEPTH)]
            t2 = time.perf_counter()
            ours_ms.append((t1 - t0) * 1000)
            base_ms.append((t2 - t1) * 1000)
            per_question.append(
                {
                    "question": q.text,
                    "kind": q.kind,
                    "labels": list(q.labels),
                    "source": q.source,
                    "ours_rank": _rank(ours, q.labels),
                    "baseline_rank": _rank(theirs, q.labels),
                    "ours_top": ours[:K],
                    "baseline_top": theirs[:K],
                }
            )

    def summary(kind: str | None) -> dict[str, Any]:
        rows = [r for r in per_question if kind is None or r["kind"] == kind]
        return {
            "questions": len(rows),
            "ours": _scores([r["ours_rank"] for r in rows]),
            "baseline": _scores([r["baseline_rank"] for r in rows]),
        }

    overall = summary(None)
    return {
        "corpus": {
            "packages": list(PACKAGES),
            "documents": len(docs),
            "mb": size / 1e6,
            "chunks_ours": report.chunks,
            "chunks_baseline": len(chunks),
            "build_seconds": corpus_seconds,
        },
        "all": overall,
        "hand": summary("hand"),
        "derived": summary("derived"),
        "handwritten_dropped": dropped,
        "ours_beats_baseline": overall["ours"]["hit_at_4"] > overall["baseline"]["hit_at_4"],
        "ingest_seconds": report.seconds,
        "baseline_build_seconds": baseline_build,
        "baseline_engine": baseline.engine,
        "ours_query_ms_median": statistics.median(ours_ms) if ours_ms else 0.0,
        "baseline_query_ms_median": statistics.median(base_ms) if base_ms else 0.0,
        "per_question": per_question,
        "tiers": {tier: run_tier(tier) for tier in TIERS},
    }


def table(result: dict[str, Any]) -> list[str]:
    """Markdown for docs/benchmarks.md."""
    c = result["corpus"]
    lines = [
        f"Corpus: {c['documents']:,} documents, {c['mb']:.1f} MB, {c['chunks_ours']:,} chunks "
        f"(the baseline's chunking gave {c['chunks_baseline']:,}). "
        f"{result['all']['questions']} questions: {result['hand']['questions']} written by hand, "
        f"{result['derived']['questions']} derived.",
        "",
        "| retriever | questions | hit@4 | MRR@10 |",
        "|---|---|---:|---:|",
    ]
    names = {"all": "all", "hand": "hand-written", "derived": "derived"}
    for key, label in names.items():
        part = result[key]
        for who, title in (("ours", "sage-lsp default (SQLite FTS5, BM25)"),
                           ("baseline", "SAGE hash embedding (384 dims, cosine)")):  # fmt: skip
            s = part[who]
            lines.append(
                f"| {title} | {label} ({part['questions']}) | {s['hit_at_4']:.1%} "
                f"| {s['mrr_at_10']:.3f} |"
            )
    ours, base = result["all"]["ours"]["hit_at_4"], result["all"]["baseline"]["hit_at_4"]
    verdict = "beats" if result["ours_beats_baseline"] else "does NOT beat"
    lines += [
        "",
        f"sage-lsp's default {verdict} the baseline: hit@4 {ours:.1%} against {base:.1%}. "
        f"Ingest took {result['ingest_seconds']:.1f} s; a query took "
        f"{result['ours_query_ms_median']:.1f} ms (median) against "
        f"{result['baseline_query_ms_median']:.1f} ms for the baseline's exact search "
        f"({result['baseline_engine']}, vectors built in "
        f"{result['baseline_build_seconds']:.1f} s).",
    ]
    if result.get("tiers"):
        lines += ["", *tier_table(result["tiers"]), ""]
    example = next((q for q in result["per_question"] if q["kind"] == "derived"), None)
    if example:
        lines.append(
            f'A derived question: "{example["question"]}", from "{example["source"]}" '
            f"({', '.join(example['labels'])})."
        )
    if result["handwritten_dropped"]:
        lines.append(
            f"{result['handwritten_dropped']} hand-written questions were left out: none of "
            "their documents exists in the installed package versions."
        )
    return lines


TIER_GOAL = 0.9
"""hit@4 each small tier should reach."""


def tier_table(tiers: dict[str, Any]) -> list[str]:
    """Markdown: hit@4 and MRR@10 of both retrievers on each small tier."""
    lines = [
        f"Small tiers (goal: hit@4 of at least {TIER_GOAL:.0%} for sage-lsp on each):",
        "",
        "| tier | questions | sage-lsp hit@4 | sage-lsp MRR@10 | SAGE hash hit@4 "
        "| SAGE hash MRR@10 |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for tier, part in tiers.items():
        ours, base = part["ours"], part["baseline"]
        lines.append(
            f"| {tier} | {part['questions']} | {ours['hit_at_4']:.1%} | {ours['mrr_at_10']:.3f} "
            f"| {base['hit_at_4']:.1%} | {base['mrr_at_10']:.3f} |"
        )
    missed = [
        f"{tier}: {r['question']!r}"
        for tier, part in tiers.items()
        for r in part["per_question"]
        if r["ours_rank"] is None or r["ours_rank"] > K
    ]
    if missed:
        lines += [
            "",
            "sage-lsp missed (no labelled document in its first four): " + "; ".join(missed) + ".",
        ]
    return lines
