"""`sage chat` as a user runs it: a subprocess with real arguments, stdin, env and exit codes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.openai_server import OpenAIServer, Reply
from tests.support.ports import closed_port

pytestmark = pytest.mark.slow  # subprocess-heavy: in `make test`, not `make test-fast`


def sage(
    *args: str, stdin: str | None = None, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sage_lsp.cli", *args],
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=timeout,
    )


def assert_clean_failure(result: subprocess.CompletedProcess[str], code: int) -> str:
    assert result.returncode == code, result
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


def test_ask_on_the_mock_backend_answers_and_exits_0() -> None:
    result = sage("chat", "--ask", "what can you do?")
    assert result.returncode == 0, result.stderr
    assert "mock backend" in result.stdout
    assert "what can you do?" in result.stdout
    assert result.stderr == ""


def test_question_on_stdin_is_answered() -> None:
    result = sage("chat", stdin="a question from a pipe\n")
    assert result.returncode == 0, result.stderr
    assert "a question from a pipe" in result.stdout


def test_empty_stdin_is_a_usage_error() -> None:
    line = assert_clean_failure(sage("chat", stdin=""), 2)
    assert "no question on stdin" in line


def test_ask_a_real_server_streams_its_answer(openai_server: OpenAIServer) -> None:
    openai_server.reply = Reply(tokens=["The ", "answer ", "is ", "42."])
    result = sage(
        "chat", "--backend", "compatible", "--base-url", openai_server.base_url, "-q", "?"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "The answer is 42.\n"
    assert openai_server.requests[-1]["messages"][-1] == {"role": "user", "content": "?"}


def test_no_stream_prints_the_same_answer(openai_server: OpenAIServer) -> None:
    openai_server.reply = Reply(tokens=["The ", "answer."])
    result = sage(
        "chat", "--backend", "vllm", "--base-url", openai_server.base_url, "-q", "?", "--no-stream"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "The answer.\n"


def test_a_markdown_answer_is_plain_text_when_stdout_is_not_a_terminal(
    openai_server: OpenAIServer,
) -> None:
    openai_server.reply = Reply(tokens=["# Title\n\n", "```py\n", "x = 1\n", "```\n", "- a"])
    url = openai_server.base_url
    for flags in ((), ("--no-markdown",), ("--no-stream",)):
        result = sage("chat", "--backend", "compatible", "--base-url", url, "-q", "?", *flags)
        assert result.returncode == 0, result.stderr
        assert result.stdout == "# Title\n\n```py\nx = 1\n```\n- a\n"


def test_env_var_selects_the_backend(openai_server: OpenAIServer) -> None:
    env = {"SAGE_DEBUG_BACKEND": "compatible", "SAGE_BASE_URL": openai_server.base_url}
    result = sage("chat", "-q", "hello", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "Hello, world!\n"
    assert openai_server.requests


def test_flag_beats_env_beats_file(openai_server: OpenAIServer, sage_home: Path) -> None:
    (sage_home / "config.toml").write_text(
        f'backend = "compatible"\nbase_url = "{openai_server.base_url}"\nmodel = "file-model"\n'
    )
    file_only = sage("chat", "-q", "x")
    assert_clean_failure(file_only, 1)
    assert openai_server.requests[-1]["model"] == "file-model"
    with_env = sage("chat", "-q", "x", env={"SAGE_MODEL": "tiny-model"})
    assert with_env.returncode == 0, with_env.stderr
    assert openai_server.requests[-1]["model"] == "tiny-model"
    with_flag = sage("chat", "-q", "x", "--backend", "mock", env={"SAGE_DEBUG_BACKEND": "vllm"})
    assert with_flag.returncode == 0 and "mock backend" in with_flag.stdout
    assert len(openai_server.requests) == 2


def test_connection_refused_is_one_line_with_a_next_step() -> None:
    url = f"http://127.0.0.1:{closed_port()}/v1"
    line = assert_clean_failure(sage("chat", "--backend", "vllm", "--base-url", url, "-q", "x"), 1)
    assert line == (
        f"error: cannot reach {url}: connection refused — is the server running? try --backend mock"
    )


def test_unknown_model_and_server_error_exit_1(openai_server: OpenAIServer) -> None:
    url = openai_server.base_url
    line = assert_clean_failure(
        sage("chat", "--backend", "compatible", "--base-url", url, "--model", "nope", "-q", "x"), 1
    )
    assert "does not serve model 'nope'" in line
    openai_server.reply = Reply(status=503, error_message="overloaded")
    line = assert_clean_failure(
        sage("chat", "--backend", "compatible", "--base-url", url, "-q", "x"), 1
    )
    assert "HTTP 503" in line


def test_bad_setting_exits_2_and_names_it(sage_home: Path) -> None:
    line = assert_clean_failure(sage("chat", "--backend", "gpt", "-q", "x"), 2)
    assert "invalid backend = 'gpt' (from command line --backend)" in line
    (sage_home / "config.toml").write_text("finetune_port = 99999\n")
    line = assert_clean_failure(sage("chat", "-q", "x"), 2)
    assert f"invalid finetune_port = 99999 (from {sage_home / 'config.toml'})" in line


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b'backend = "mock"\nmodel = "caf\xe9"\n', "not UTF-8 text"),
        (b"backend = \n", "Invalid value"),
    ],
    ids=["bad-bytes", "bad-toml"],
)
def test_a_broken_config_file_exits_2_naming_it(
    sage_home: Path, content: bytes, reason: str
) -> None:
    path = sage_home / "config.toml"
    path.write_bytes(content)
    line = assert_clean_failure(sage("chat", "-q", "hi", "--backend", "mock"), 2)
    assert line.startswith(f"error: {path} is not valid TOML: ") and reason in line


def test_missing_key_for_openai_is_a_usage_error() -> None:
    line = assert_clean_failure(sage("chat", "--backend", "openai", "-q", "x"), 2)
    assert "needs an API key" in line and "OPENAI_API_KEY" in line


def test_debug_shows_the_traceback() -> None:
    url = f"http://127.0.0.1:{closed_port()}/v1"
    result = sage("chat", "--backend", "vllm", "--base-url", url, "-q", "x", "--debug")
    assert result.returncode == 1
    assert "Traceback" in result.stderr


@pytest.mark.parametrize("command", [["sage", "--help"], ["sage", "chat", "--help"]])
def test_console_script_help(command: list[str]) -> None:
    exe = Path(sys.executable).parent / command[0]
    result = subprocess.run([str(exe), *command[1:]], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "chat" in result.stdout
