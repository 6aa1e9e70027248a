"""Split documents into chunks: first at headings, then into overlapping windows that end at a
line or sentence end. Markdown (``.md .markdown .mdx``), reStructuredText (``.rst``) and plain
text (``.txt``) are understood."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from pathlib import PurePosixPath

MARKDOWN = (".md", ".markdown", ".mdx")
SUFFIXES = (*MARKDOWN, ".rst", ".txt")
"""The file types ingest reads."""

_MD_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_FENCE = re.compile(r"^\s*(```|~~~)")
_RST_UNDERLINE = re.compile(r"^([=\-~^\"'`#*+:.])\1{2,}\s*$")
_SENTENCE_END = re.compile("[.!?;](?=\\s|$)|[\u3002\uff01\uff1f\uff1b]")  # CJK stops need no space
MIN_CUT = 0.4
"""A window is cut back to a line or sentence end only past this share of its length."""


@dataclass(frozen=True)
class Section:
    """A run of text under one heading."""

    heading: str
    """The heading path, e.g. ``Install > From PyPI`` (empty before the first heading)."""
    anchor: str
    """The slug of the last heading, as a Markdown renderer makes it."""
    text: str
    """The section's text, heading line excluded."""
    start: int
    """Character offset of the text in the document."""


@dataclass(frozen=True)
class Chunk:
    """A piece of a document small enough to put in a prompt."""

    doc_path: str
    """The document's path relative to the ingested folder."""
    title: str
    """The document's title (its first top-level heading, else its file name)."""
    heading: str
    """The heading path of the section it comes from."""
    anchor: str
    """Slug of the section heading, for links (``path#anchor``)."""
    n: int
    """Its number within the document, from 0."""
    start: int
    """Character offset in the document."""
    text: str
    """The chunk's text."""


def slug(heading: str) -> str:
    """GitHub-style anchor: lower case, punctuation dropped, spaces to hyphens (CJK kept)."""
    text = unicodedata.normalize("NFKC", heading).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return re.sub(r"\s+", "-", text)


def _markdown_sections(text: str) -> list[tuple[int, str, int]]:
    """``(level, heading, offset of the line after it)`` for each heading outside code fences."""
    found: list[tuple[int, str, int]] = []
    in_fence = False
    offset = 0
    for line in text.splitlines(keepends=True):
        if _FENCE.match(line):
            in_fence = not in_fence
        elif not in_fence and (m := _MD_HEADING.match(line.rstrip("\n"))):
            found.append((len(m.group(1)), m.group(2).strip(), offset + len(line)))
        offset += len(line)
    return found


def _rst_sections(text: str) -> list[tuple[int, str, int]]:
    """Headings of reStructuredText: a line underlined (and maybe overlined) with punctuation."""
    lines = text.splitlines(keepends=True)
    levels: list[str] = []
    found = []
    offset = 0
    offsets = []
    for line in lines:
        offsets.append(offset)
        offset += len(line)
    for i in range(1, len(lines)):
        title, under = lines[i - 1].rstrip("\n"), lines[i].rstrip("\n")
        if (
            title.strip()
            and not _RST_UNDERLINE.match(title)
            and _RST_UNDERLINE.match(under)
            and len(under.strip()) >= len(title.strip())
        ):
            char = under.strip()[0]
            if char not in levels:
                levels.append(char)
            found.append((levels.index(char) + 1, title.strip(), offsets[i] + len(lines[i])))
    return found


def sections(text: str, suffix: str) -> tuple[str | None, list[Section]]:
    """The document's first top-level heading (if any) and its sections."""
    if suffix in MARKDOWN:
        marks = _markdown_sections(text)
    elif suffix == ".rst":
        marks = _rst_sections(text)
    else:
        marks = []
    title = next((heading for level, heading, _ in marks if level == 1), None)
    result: list[Section] = []
    first_end = len(text) if not marks else _line_start(text, marks[0][2])
    if text[:first_end].strip():
        result.append(Section("", "", text[:first_end], 0))
    path: list[tuple[int, str]] = []
    for i, (level, heading, after) in enumerate(marks):
        path = [(lvl, h) for lvl, h in path if lvl < level] + [(level, heading)]
        end = len(text) if i + 1 == len(marks) else _line_start(text, marks[i + 1][2])
        body = text[after:end]
        if body.strip() or i + 1 == len(marks):
            shown = " > ".join(h for lvl, h in path if (lvl, h) != (1, title))  # title apart
            result.append(Section(shown, slug(heading) if shown else "", body, after))
    return title, result


def _line_start(text: str, after_heading: int) -> int:
    """Where the heading line that ends at ``after_heading`` begins (and its underline, for RST)."""
    start = text.rfind("\n", 0, max(0, after_heading - 1)) + 1
    previous = text.rfind("\n", 0, max(0, start - 1)) + 1
    line = text[start:after_heading].rstrip("\n")
    if _RST_UNDERLINE.match(line) and previous < start:
        start = previous  # the title line above the underline
        above = text.rfind("\n", 0, max(0, start - 1)) + 1
        if above < start and _RST_UNDERLINE.match(text[above:start].rstrip("\n")):
            start = above  # an overline
    return start


def windows(text: str, size: int, overlap: int) -> list[tuple[int, str]]:
    """``(offset, text)`` windows of at most ``size`` characters, each cut back to a line end or
    sentence end when there is one past 40 % of the window; the next one starts about
    ``overlap`` characters before that end, at a line start when there is one near (a quote of
    it then begins with whole lines: a table row, a code line)."""
    result = []
    start = 0
    length = len(text)
    while start < length:
        end = min(start + size, length)
        if end < length:
            window = text[start:end]
            cut = window.rfind("\n")
            if cut < size * MIN_CUT:
                ends = [m.end() for m in _SENTENCE_END.finditer(window)]
                cut = ends[-1] if ends else -1
            if cut >= size * MIN_CUT:
                end = start + cut
        piece = text[start:end]
        if piece.strip():
            result.append((start, piece.strip()))
        if end >= length:
            break
        start = _next_start(text, start, end, overlap)
    return result


def _next_start(text: str, start: int, end: int, overlap: int) -> int:
    """Where the window after ``text[start:end]`` starts: ``overlap`` characters before
    ``end``, moved back to a line start in the window's second half, or else forward to the
    first line start before ``end``."""
    back = max(end - overlap, start + 1)
    before = text.rfind("\n", max((start + end) // 2, start + 1) - 1, back)
    if before != -1:
        return before + 1
    after = text.find("\n", back, end)
    return after + 1 if after != -1 and after + 1 < end else back


def chunk_document(
    doc_path: str, text: str, chunk_size: int = 800, chunk_overlap: int = 160
) -> list[Chunk]:
    """Every chunk of one document."""
    suffix = PurePosixPath(doc_path).suffix.lower()
    title, parts = sections(text, suffix)
    title = title or PurePosixPath(doc_path).stem.replace("_", " ").replace("-", " ")
    chunks: list[Chunk] = []
    for section in parts:
        for offset, piece in windows(section.text, chunk_size, chunk_overlap):
            chunks.append(
                Chunk(doc_path, title, section.heading, section.anchor, len(chunks),
                      section.start + offset, piece)
            )  # fmt: skip
    return chunks
