"""Fill-in-the-middle templates of the code models SAGE knows, and how one is picked.

The tokens are the models' own (their tokenizer configs' added tokens): Qwen2.5-Coder's
``<|fim_prefix|>`` family, StarCoder2's ``<fim_prefix>`` family, DeepSeek-Coder's
``fim_begin`` family (written with full-width bars, U+FF5C, and U+2581 in place of ``_``) and
CodeLlama's ``<PRE>`` family. A model none of them fits is asked through chat
(:mod:`sage_lsp.completion.chat`).
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass

_DEEPSEEK = "<\uff5c{}\uff5c>"
"""A DeepSeek-Coder special token: ``{}`` is its name with U+2581 for each ``_``."""

AUTO = "auto"
"""The ``completion.fimTemplate`` value that picks by model name or tokenizer."""

CHAT = "chat"
"""The ``completion.fimTemplate`` value that always asks through chat."""


@dataclass(frozen=True)
class FimTemplate:
    """One model family's fill-in-the-middle format."""

    name: str
    """Its ``completion.fimTemplate`` name."""
    prefix: str
    """Written before the text before the cursor."""
    suffix: str
    """Written between the text before and the text after the cursor."""
    middle: str
    """Written after the text after the cursor: the model goes on from here."""
    stop: tuple[str, ...]
    """The family's end-of-text, file-separator and FIM tokens: where a completion ends. The
    first ones go to the server (it takes four stops at most), the engine watches for all."""
    names: str
    """A regular expression matched (case-insensitively) against the model's name."""

    def prompt(self, before: str, after: str) -> str:
        """The prompt that asks for the text between ``before`` and ``after``."""
        return f"{self.prefix}{before}{self.suffix}{after}{self.middle}"


def _deepseek(name: str) -> str:
    """DeepSeek-Coder's token ``name`` as its tokenizer writes it."""
    return _DEEPSEEK.format(name.replace("_", "\u2581"))


TEMPLATES: dict[str, FimTemplate] = {
    t.name: t
    for t in (
        FimTemplate(
            "qwen",
            "<|fim_prefix|>",
            "<|fim_suffix|>",
            "<|fim_middle|>",
            (
                "<|endoftext|>",
                "<|file_sep|>",
                "<|fim_prefix|>",
                "<|fim_suffix|>",
                "<|fim_middle|>",
                "<|fim_pad|>",
                "<|repo_name|>",
                "<|im_start|>",
                "<|im_end|>",
            ),
            r"qwen.*coder|codeqwen",
        ),
        FimTemplate(
            "starcoder",
            "<fim_prefix>",
            "<fim_suffix>",
            "<fim_middle>",
            (
                "<|endoftext|>",
                "<file_sep>",
                "<fim_prefix>",
                "<fim_suffix>",
                "<fim_middle>",
                "<fim_pad>",
                "<repo_name>",
            ),
            r"starcoder",
        ),
        FimTemplate(
            "deepseek",
            _deepseek("fim_begin"),
            _deepseek("fim_hole"),
            _deepseek("fim_end"),
            (
                _deepseek("end_of_sentence"),
                "<|EOT|>",
                _deepseek("fim_begin"),
                _deepseek("fim_hole"),
                _deepseek("fim_end"),
            ),
            r"deepseek.*coder",
        ),
        FimTemplate(
            "codellama",
            "<PRE> ",
            " <SUF>",
            " <MID>",
            ("<EOT>", "<PRE>", "<SUF>", "<MID>"),
            r"code-?llama",
        ),
    )
}
"""The templates by name."""


def by_model_name(model: str) -> FimTemplate | None:
    """The template whose model names match ``model`` (a name or a path), if one does."""
    for template in TEMPLATES.values():
        if re.search(template.names, model, re.IGNORECASE):
            return template
    return None


def by_tokens(tokens: Collection[str]) -> FimTemplate | None:
    """The template whose prefix, suffix and middle tokens the tokenizer has, if one's are."""
    for template in TEMPLATES.values():
        if {template.prefix.strip(), template.suffix.strip(), template.middle.strip()} <= set(
            tokens
        ):
            return template
    return None


def pick(setting: str, model: str | None, tokens: Collection[str]) -> FimTemplate | None:
    """The template for ``completion.fimTemplate`` = ``setting``: a named one, none for
    ``chat``, or for ``auto`` the one the tokenizer's ``tokens`` name, else the model's name
    matches; ``None`` asks through chat."""
    if setting == CHAT:
        return None
    if setting != AUTO:
        return TEMPLATES[setting]
    return by_tokens(tokens) or (by_model_name(model) if model else None)
