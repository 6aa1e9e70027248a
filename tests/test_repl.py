"""The interactive REPL in a real pseudo-terminal: words, slash commands, Ctrl-C and Ctrl-D."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest

from tests.support.openai_server import OpenAIServer, Reply
from tests.support.terminal import screen

pytestmark = pytest.mark.slow

PROMPT = "you>"
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\r")


def start(*args: str) -> pexpect.spawn:
    """``sage chat ARGS`` in a terminal of 40 lines, 200 columns."""
    env = {**os.environ, "TERM": "xterm", "NO_COLOR": "1", "PROMPT_TOOLKIT_NO_CPR": "1"}
    return pexpect.spawn(
        sys.executable,
        ["-m", "sage_lsp.cli", "chat", *args],
        env=env,
        encoding="utf-8",
        timeout=20,
        dimensions=(40, 200),
    )


def spawn(*args: str) -> pexpect.spawn:
    child = start(*args)
    child.expect_exact("Ctrl-D leaves.")
    child.expect_exact(PROMPT)
    return child


@pytest.fixture
def repl() -> Iterator[pexpect.spawn]:
    child = spawn()
    yield child
    child.close(force=True)


def ask(child: pexpect.spawn, line: str, until: str) -> str:
    """Send a line, wait for ``until`` in the output and then for the next prompt."""
    child.sendline(line)
    child.expect(loose(until))
    out = str(child.before) + str(child.after)
    child.expect_exact(PROMPT)
    return ANSI.sub("", out + str(child.before))


def loose(text: str) -> str:
    """A pattern matching ``text`` even where terminal styling codes sit between its letters."""
    return "(?:\x1b\\[[0-9;?]*[A-Za-z])*".join(re.escape(ch) for ch in text)


def test_banner_help_and_backend(repl: pexpect.spawn) -> None:
    assert "mock backend (offline" in ask(repl, "/backend", "(offline")
    for word in ("help", "?", "/help"):
        out = ask(repl, word, "/exit       leave")
        assert "/reset" in out and "/history" in out and "Ctrl-C stops an answer" in out


def test_history_and_reset(repl: pexpect.spawn) -> None:
    ask(repl, "first question", "You said: “first question”")
    ask(repl, "second question", "(turn 2)")
    history = ask(repl, "/history", "assistant: This is the mock backend (turn 2)")
    assert history.index("user: first question") < history.index("user: second question")
    assert "assistant: This is the mock backend (turn 1)" in history
    ask(repl, "third", "(turn 3)")
    ask(repl, "/reset", "New conversation.")
    ask(repl, "/history", "No messages yet.")
    ask(repl, "again", "(turn 1)")


def test_unknown_slash_command(repl: pexpect.spawn) -> None:
    ask(repl, "/frobnicate", "unknown command /frobnicate — type /help for the commands")


@pytest.mark.parametrize("word", ["exit", "quit", "q", "/exit"])
def test_exit_words(word: str) -> None:
    child = spawn()
    child.sendline(word)
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def test_ctrl_d_leaves_and_history_file_is_written(sage_home: Path) -> None:
    child = spawn()
    ask(child, "remember this line", "You said")
    child.sendcontrol("d")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    assert "remember this line" in (sage_home / "chat_history").read_text()


def test_ctrl_c_stops_the_answer_and_returns_to_the_prompt(openai_server: OpenAIServer) -> None:
    openai_server.reply = Reply(tokens=["slow "] * 2000, delay=0.02)
    child = spawn("--backend", "compatible", "--base-url", openai_server.base_url)
    child.sendline("tell me a long story")
    child.expect_exact("slow slow slow")
    child.sendintr()
    child.expect(loose("[stopped]"))
    child.expect_exact(PROMPT)
    record = openai_server.streams[-1]
    assert record.done.wait(2) and record.client_gone_at is not None
    openai_server.reply = Reply(tokens=["short ", "answer"])
    ask(child, "now briefly", "short answer")
    ask(child, "/history", "assistant: slow slow")
    assert openai_server.requests[-1]["messages"][2]["content"].startswith("slow slow")
    child.sendline("exit")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def test_backend_failure_in_the_repl_is_reported_and_the_repl_goes_on(
    openai_server: OpenAIServer,
) -> None:
    child = spawn("--backend", "compatible", "--base-url", openai_server.base_url)
    openai_server.reply = Reply(status=500, error_message="boom")
    out = ask(child, "hello", "HTTP 500")
    assert "error: " in out and "Traceback" not in out
    openai_server.reply = Reply(tokens=["fine"])
    ask(child, "hello again", "fine")
    child.close(force=True)


def test_sources_after_an_answer_and_on_request(tmp_path: Path) -> None:
    (tmp_path / "serving.md").write_text(
        "# Model services\n\n## Stopping\n\nThe supervisor stops vLLM when its last holder "
        "is gone: SIGTERM to the process group, then SIGKILL.\n"
    )
    (tmp_path / "notes.txt").write_text("Unrelated notes about colours and fonts.\n")
    ingest = [sys.executable, "-m", "sage_lsp.cli", "chat", "ingest", "--index", "notes"]
    subprocess.run([*ingest, "--source", str(tmp_path)], check=True, capture_output=True)
    child = spawn("--index", "notes")
    ask(child, "how does the supervisor stop vLLM?", "sources: [1] serving.md#stopping")
    out = ask(child, "/sources", "score")
    assert "[1] Model services — Stopping" in out and "serving.md" in out
    ask(child, "thanks!", "You said")
    ask(child, "/sources", "The last answer had no sources.")
    child.close(force=True)


def test_pipeline_command_and_intent(repl: pexpect.spawn) -> None:
    out = ask(repl, "/pipeline rerank passages with bge", "valid after 1 attempt(s)")
    assert "name: rag-rerank" in out and "sage.libs.rag.reranker.BGEReranker" in out
    out = ask(repl, "please build a pipeline that filters error logs", "valid after 1")
    assert "name: hello-world-log" in out
    ask(repl, "/pipeline", "usage: /pipeline DESCRIPTION")


def test_a_one_shot_answer_is_rendered_in_a_terminal_and_raw_with_no_markdown(
    tmp_path: Path,
) -> None:
    (tmp_path / "guide.md").write_text(
        "# Guide\n\n## Install\n\nRun:\n\n```bash\npip install sage-lsp\n```\n\n"
        "| flag | meaning |\n|------|---------|\n| -q   | ask one question |\n"
    )
    ingest = [sys.executable, "-m", "sage_lsp.cli", "chat", "ingest", "--index", "guide"]
    subprocess.run([*ingest, "--source", str(tmp_path)], check=True, capture_output=True)

    def shown(*flags: str) -> str:
        child = start("--index", "guide", "-q", "how do I install sage-lsp?", *flags)
        child.expect(pexpect.EOF)
        child.close()
        assert child.exitstatus == 0
        return "\n".join(screen(str(child.before)))

    rendered = shown()
    assert "pip install sage-lsp" in rendered and "ask one question" in rendered
    assert "```" not in rendered and "|------|" not in rendered and "`" not in rendered
    assert "sources: [1] guide.md#install" in rendered
    raw = shown("--no-markdown")
    assert "Run:\n\n```bash\npip install sage-lsp\n```\n\n| flag | meaning |" in raw
    assert "pick a backend: `sage chat --backend vllm`" in raw
    assert "sources: [1] guide.md#install" in raw
