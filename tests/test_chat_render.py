"""Answers that read well: the mock quotes a passage with its lines."""

from __future__ import annotations

from sage_lsp.backends.base import ChatRequest, Message, Passage
from sage_lsp.backends.mock import QUOTE_CHARS, mock_answer, quote_markdown

DOC = """Run it:

```bash
pip install sage-lsp
sage lsp
```

| flag | meaning |
|------|---------|
| -q   | ask one question |

- one
- two"""


def passage(text: str) -> Passage:
    return Passage(1, "Guide", "guide.md", "Setup", text)


def test_the_mock_quotes_a_table_and_a_code_block_line_by_line() -> None:
    request = ChatRequest((Message("user", "how do I start it?"),), passages=(passage(DOC),))
    answer = mock_answer(request)
    assert answer.startswith(f"From the docs (Guide — Setup) [1]:\n\n{DOC}\n\n(This is the mock")
    lines = answer.splitlines()
    assert "| -q   | ask one question |" in lines and "pip install sage-lsp" in lines


def test_a_long_quote_is_cut_at_a_line_end_and_its_code_fence_closed() -> None:
    code = "\n".join(f"print({i})  # line {i}" for i in range(100))
    quote = quote_markdown(f"Example:\n\n```python\n{code}\n```\n\nAfter.")
    lines = quote.splitlines()
    assert lines[:3] == ["Example:", "", "```python"]
    assert lines[-3:] == ["```", "", "…"]
    assert all(line in code.splitlines() for line in lines[3:-3])
    assert QUOTE_CHARS - 30 < len("\n".join(lines[:-3])) <= QUOTE_CHARS
    nested = quote_markdown("- step\n\n  ```sh\n  make\n  make test", limit=25)
    assert nested == "- step\n\n  ```sh\n  make\n  ```\n\n…"


def test_a_first_line_longer_than_the_cap_is_cut_between_words() -> None:
    quote = quote_markdown("word " * 200 + "\nnext line")
    assert quote.endswith("word …") and "\n" not in quote and len(quote) <= QUOTE_CHARS + 2
