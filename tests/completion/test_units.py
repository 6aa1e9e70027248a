"""The completion package's parts: template choice, the block end, the chat answer's code, the
tokenizer config's tokens, the mock's completion."""

from __future__ import annotations

import json
from pathlib import Path

from sage_lsp.backends.mock import MOCK_TOKENS, mock_completion
from sage_lsp.completion.blocks import block_end
from sage_lsp.completion.chat import code_of
from sage_lsp.completion.templates import TEMPLATES, pick
from sage_lsp.config import FIM_TEMPLATES
from sage_lsp.services.managed_backend import added_tokens


def test_the_setting_names_every_template() -> None:
    assert ("auto", "chat", *TEMPLATES) == FIM_TEMPLATES


def test_auto_picks_by_tokenizer_before_the_name() -> None:
    starcoder = {"<fim_prefix>", "<fim_suffix>", "<fim_middle>"}
    assert pick("auto", "my-finetune", starcoder) == TEMPLATES["starcoder"]
    assert pick("auto", "Qwen2.5-Coder-7B", starcoder) == TEMPLATES["starcoder"]
    assert pick("auto", "/models/CodeLlama-13b", ()) == TEMPLATES["codellama"]
    assert pick("auto", "gpt-4o-mini", ()) is None
    assert pick("chat", "Qwen2.5-Coder-7B", MOCK_TOKENS) is None
    assert pick("deepseek", "gpt-4o-mini", ()) == TEMPLATES["deepseek"]


def test_the_block_ends_at_a_blank_line_then_a_dedent() -> None:
    assert block_end("x = 1\n\n    y = 2", "    ") is None  # same block
    assert block_end("x = 1\n  \ny = 2", "    ") == 5
    assert block_end("x = 1\n\n", "    ") is None  # not yet known
    assert block_end("def f():\n    pass\n\ndef g():", "") == 17
    assert block_end("def f():\n\n    pass", "") is None


def test_a_chat_answer_gives_its_first_fenced_block_or_itself() -> None:
    assert code_of("Sure:\n```py\nreturn 1\n```\nand\n```\nx\n```") == "return 1"
    assert code_of("~~~\na\n  b\n~~~") == "a\n  b"
    assert code_of("```\nunclosed") == "unclosed"
    assert code_of("return 1") == "return 1"


def test_the_tokenizer_config_names_the_added_tokens(tmp_path: Path) -> None:
    config = {
        "added_tokens_decoder": {
            "151659": {"content": "<|fim_prefix|>", "special": False},
            "151661": {"content": "<|fim_suffix|>", "special": False},
            "151660": {"content": "<|fim_middle|>", "special": False},
        },
        "additional_special_tokens": ["<|im_start|>"],
    }
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(config))
    listed = {"added_tokens": [{"id": 7, "content": "<|file_sep|>"}], "model": {}}
    (tmp_path / "tokenizer.json").write_text(json.dumps(listed))
    tokens = added_tokens(tmp_path)
    assert tokens == MOCK_TOKENS | {"<|im_start|>", "<|file_sep|>"}
    assert pick("auto", "sage_code_expert", tokens) == TEMPLATES["qwen"]
    assert added_tokens(tmp_path / "missing") == frozenset()
    (tmp_path / "tokenizer_config.json").write_text("[1]")
    (tmp_path / "tokenizer.json").unlink()
    assert added_tokens(tmp_path) == frozenset()


def test_the_mock_names_the_cursor_line() -> None:
    prompt = TEMPLATES["qwen"].prompt("a\nb\nc = ", "\nd\n")
    assert mock_completion(prompt) == "sage_mock_completion(line=3)"
