"""The user docs: what ships in the docs-public index, and where README and docs point.

``sage_lsp/docs`` (a link to ``docs/``) is what the default retrieval index is built from, so
answers cite it: it holds what users need, and nothing kept for maintainers (how the code
differs from the team's design contract lives in ARCHITECTURE.md). Links go to files in the
repository, never to design notes that are not in it.
"""

from __future__ import annotations

import re
from pathlib import Path

from sage_lsp.rag.retrieve import packaged_docs

REPO = Path(__file__).resolve().parents[1]
USER_DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
MAINTAINER_ONLY = re.compile(
    r"DESIGN\.md|design notes?\b|design contract|differ\w* from the contract"
    r"|^#+ (for maintainers|how the clients are tested)",
    re.IGNORECASE,
)
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def test_the_docs_public_corpus_is_the_docs_folder() -> None:
    assert packaged_docs().resolve() == (REPO / "docs").resolve()


def test_no_user_doc_carries_maintainer_notes() -> None:
    found = [
        f"{path.relative_to(REPO)}:{number}: {line.strip()}"
        for path in USER_DOCS
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if MAINTAINER_ONLY.search(line)
    ]
    assert found == [], "maintainer notes belong in ARCHITECTURE.md or maintainers/:\n" + "\n".join(
        found
    )


def test_local_links_of_the_user_docs_lead_to_files_in_the_repository() -> None:
    broken = [
        f"{path.relative_to(REPO)}: {target}"
        for path in [*USER_DOCS, REPO / "ARCHITECTURE.md"]
        for target in LINK.findall(path.read_text(encoding="utf-8"))
        if "://" not in target and not (path.parent / target).exists()
    ]
    assert broken == []


def test_architecture_says_where_to_add_a_method_a_backend_and_a_setting() -> None:
    text = (REPO / "ARCHITECTURE.md").read_text(encoding="utf-8")
    headings = re.findall(r"^### (.+)$", text, re.MULTILINE)
    assert {"A `sage/*` method", "A backend", "A setting"} <= set(headings)
