"""Answers that read well: the mock quotes a passage with its lines, and ``sage chat`` renders an
answer's Markdown in a terminal while it streams (plain text elsewhere)."""

from __future__ import annotations

import asyncio
import io
import re

import pytest
from rich.console import Console

from sage_lsp.backends.base import ChatRequest, Message, Passage
from sage_lsp.backends.mock import QUOTE_CHARS, MockBackend, mock_answer, quote_markdown
from sage_lsp.cli import render, repl
from sage_lsp.cli.render import markdown_console
from sage_lsp.cli.repl import ChatSession
from sage_lsp.config import load_settings
from tests.support.terminal import screen

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
CSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
UP = "\x1b[1A\x1b[2K"


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


def answer(monkeypatch: pytest.MonkeyPatch, text: str, console: Console | None) -> str:
    """What ``sage chat`` writes for one question whose best passage is ``text`` (mock)."""
    monkeypatch.setattr(repl, "retrieve", lambda *args: [passage(text)])
    out = io.StringIO() if console is None else console.file
    session = ChatSession(load_settings(), MockBackend(delay=0), out, console)
    asyncio.run(session.ask("how do I start it?"))
    return written(out)


def terminal(height: int = 40) -> Console:
    """A terminal's console, 72 columns wide, writing to a StringIO."""
    return Console(file=io.StringIO(), force_terminal=True, width=72, height=height)


def written(out: object) -> str:
    assert isinstance(out, io.StringIO)
    return out.getvalue()


def test_plain_output_is_the_answer_as_it_streamed(monkeypatch: pytest.MonkeyPatch) -> None:
    out = answer(monkeypatch, DOC, None)
    request = ChatRequest((Message("user", "q"),), passages=(passage(DOC),))
    assert out == mock_answer(request) + "\nsources: [1] guide.md#setup\n"


def test_a_terminal_shows_the_answer_rendered(monkeypatch: pytest.MonkeyPatch) -> None:
    raw = answer(monkeypatch, "## Install\n\n" + DOC, terminal())
    shown = screen(raw)
    text = "\n".join(shown)
    assert "Install" in text and "## Install" not in CSI.sub("", raw)  # the heading's marks go
    assert "```" not in CSI.sub("", raw) and "|------|" not in text
    code = [line.strip() for line in shown]
    assert code.index("pip install sage-lsp") + 1 == code.index("sage lsp")
    assert any(re.fullmatch(r"\s*-q\s+ask one question", line) for line in shown)
    assert any(line.strip() == "• one" for line in shown)
    assert "sage chat --backend vllm" in text and "`" not in text  # inline code, rendered
    assert text.count("From the docs (Guide — Setup) [1]:") == 1
    assert text.count("Run it:") == 1 and text.count("(This is the mock backend") == 1
    assert shown[-2:] == ["sources: [1] guide.md#setup", ""]
    # about 100 words came in less than REFRESH_SECONDS: a redraw for each block, not each word
    assert raw.count("\r\x1b[2K") < 20


def test_an_answer_taller_than_the_terminal_is_all_shown_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(render, "REFRESH_SECONDS", 0)  # redrawn after each word
    code = "\n".join(f"step_{i:02}()" for i in range(36))
    raw = answer(monkeypatch, f"```python\n{code}\n```", terminal(height=12))
    shown = [line.strip() for line in screen(raw)]
    steps = [line for line in shown if line.startswith("step_")]
    assert steps == [f"step_{i:02}()" for i in range(len(steps))] and len(steps) == 36
    # while it grew, the live region was never taller than the screen (it can only be erased
    # as far up as the screen's top line)
    assert max(len(run) // len(UP) for run in re.findall(f"(?:{re.escape(UP)})+", raw)) <= 10


def test_a_stopped_answer_stays_on_screen(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(repl, "retrieve", lambda *args: [passage(DOC)])
    console = terminal()
    session = ChatSession(load_settings(), MockBackend(delay=0.01), console.file, console)

    async def stop_it() -> None:
        task = asyncio.ensure_future(session.ask("q"))
        await asyncio.sleep(0.3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(stop_it())
    raw = written(console.file)
    assert raw.endswith("\x1b[?25h") and "From the docs (Guide — Setup) [1]:" in screen(raw)
    assert "(This is the mock backend" not in CSI.sub("", raw)


def test_only_a_terminal_gets_rendered_answers() -> None:
    assert markdown_console(io.StringIO()) is None
