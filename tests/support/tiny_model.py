"""Build a tiny finetuned model in SAGE's layout, offline; or check a merge of one.

Run with a Python that has torch, transformers, tokenizers and peft (``.venv-vllm``)::

    python tests/support/tiny_model.py SAGE_HOME NAME
    python tests/support/tiny_model.py --check-merge MODEL_DIR [--adapter DIR]

The first form writes ``SAGE_HOME/base_models/tiny-llama/`` (a 2-layer Llama, hidden size 128,
4 heads of 32, a byte-level BPE tokenizer of about 1000 tokens with a chat template and
Qwen2.5-Coder's fill-in-the-middle tokens) and
``SAGE_HOME/finetune_output/NAME/`` with ``finetune_meta.json``, ``training_config.json``,
``logs/``, ``checkpoints/checkpoint-500/``, ``checkpoints/checkpoint-1000/`` and
``lora_weights/``: three different LoRA adapters (r=8 on q_proj and v_proj) trained a few AdamW
steps each with a fixed seed. It prints a JSON summary.

The second form loads the base plus an adapter (default: ``MODEL_DIR/lora_weights``) and
``MODEL_DIR/merged_model``, runs the same input through them and prints JSON with
``max_abs_diff_merged_vs_adapter`` and ``max_abs_diff_merged_vs_base``.

:func:`derive` makes a second model of the same base from one of the first's checkpoints (two
adapters of one base, for adapter mode).
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

SEED = 1234
VOCAB_SIZE = 1000
SEQ_LEN = 64
BATCH = 8
# Training steps at which each adapter is saved; all three differ.
STEPS = {"checkpoint-500": 4, "checkpoint-1000": 10, "lora_weights": 14}
CHECK_TEXT = "def merge(base, adapter):\n    return base + adapter  # tiny model\n"

BOS, EOS, PAD, IM_START = "<s>", "<|im_end|>", "<pad>", "<|im_start|>"
FIM_TOKENS = ("<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>", "<|file_sep|>")
"""Qwen2.5-Coder's fill-in-the-middle tokens: the tokenizer has them, as Qwen's does, so inline
completion picks the Qwen template from the tokenizer config."""
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
CORPUS_MODULES = (
    "json",
    "pathlib",
    "collections",
    "functools",
    "itertools",
    "textwrap",
    "argparse",
    "subprocess",
    "shutil",
    "string",
)


def corpus() -> list[str]:
    """Docstrings of a few stdlib modules and their public members: text plus some code."""
    import importlib

    texts: list[str] = []
    for name in CORPUS_MODULES:
        module = importlib.import_module(name)
        doc = inspect.getdoc(module)
        if doc:
            texts.append(doc)
        for attr in sorted(dir(module)):
            if attr.startswith("_"):
                continue
            doc = inspect.getdoc(getattr(module, attr, None))
            if doc and len(doc) > 40:
                texts.append(doc)
    return texts


def build_tokenizer(texts: list[str]) -> Any:
    """A byte-level BPE trained on ``texts``, wrapped as a ``PreTrainedTokenizerFast``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=[PAD, BOS, EOS, IM_START, *FIM_TOKENS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=BOS, eos_token=EOS, pad_token=PAD
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.model_max_length = 512
    return fast


def training_batches(tokenizer: Any, texts: list[str]) -> Any:
    """Token windows of ``SEQ_LEN`` from the corpus, as one tensor."""
    import torch

    ids: list[int] = []
    for text in texts:
        ids.extend(tokenizer(text)["input_ids"])
        ids.append(tokenizer.eos_token_id)
    count = len(ids) // SEQ_LEN
    return torch.tensor(ids[: count * SEQ_LEN]).view(count, SEQ_LEN)


def build(sage_home: Path, name: str) -> dict[str, Any]:
    """Write the base model and the model folder; return a summary."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    started = time.monotonic()
    torch.manual_seed(SEED)
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    texts = corpus()
    tokenizer = build_tokenizer(texts)

    base_dir = sage_home / "base_models" / "tiny-llama"
    model_dir = sage_home / "finetune_output" / name
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=512,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
        dtype="float32",
    )
    base = LlamaForCausalLM(config).to(torch.float32)
    parameters = sum(p.numel() for p in base.parameters())
    base.save_pretrained(base_dir, safe_serialization=True)
    tokenizer.save_pretrained(base_dir)

    lora = LoraConfig(
        r=8,
        lora_alpha=16,
        target_modules=["q_proj", "v_proj"],
        lora_dropout=0.05,
        bias="none",
        task_type="CAUSAL_LM",
    )
    model = get_peft_model(base, lora)
    data = training_batches(tokenizer, texts)
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=1e-2, weight_decay=0.0
    )
    generator = torch.Generator().manual_seed(SEED)
    model.train()
    step = 0
    losses: list[float] = []
    saved: dict[str, str] = {}
    for target, until in sorted(STEPS.items(), key=lambda item: item[1]):
        while step < until:
            rows = torch.randint(0, data.shape[0], (BATCH,), generator=generator)
            batch = data[rows]
            loss = model(input_ids=batch, labels=batch).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            losses.append(round(float(loss.detach()), 4))
            step += 1
        out = model_dir / target if target == "lora_weights" else model_dir / "checkpoints" / target
        model.save_pretrained(out, safe_serialization=True)
        if target == "lora_weights":
            tokenizer.save_pretrained(out)
        else:
            global_step = int(target.split("-")[1])
            (out / "trainer_state.json").write_text(
                json.dumps({"global_step": global_step, "train_steps_run": until}) + "\n",
                encoding="utf-8",
            )
        saved[target] = str(out)

    training_config = {
        "model_name": str(base_dir),
        "lora_r": 8,
        "lora_alpha": 16,
        "lora_dropout": 0.05,
        "lora_target_modules": ["q_proj", "v_proj"],
        "learning_rate": 1e-2,
        "seed": SEED,
        "steps": STEPS,
    }
    (model_dir / "training_config.json").write_text(
        json.dumps(training_config, indent=2) + "\n", encoding="utf-8"
    )
    (model_dir / "logs").mkdir(exist_ok=True)
    (model_dir / "logs" / "train.log").write_text(
        "".join(f"step {i + 1} loss {v}\n" for i, v in enumerate(losses)), encoding="utf-8"
    )
    meta = {
        "task_type": "code_understanding",
        "model": str(base_dir.resolve()),
        "framework": "peft",
        "format": "alpaca",
        "dataset": "stdlib-docstrings (built in)",
        "config": str((model_dir / "training_config.json").resolve()),
        "output_dir": str(model_dir.resolve()),
    }
    (model_dir / "finetune_meta.json").write_text(
        json.dumps(meta, indent=2) + "\n", encoding="utf-8"
    )
    return {
        "sage_home": str(sage_home),
        "name": name,
        "model_dir": str(model_dir),
        "base": str(base_dir),
        "vocab_size": len(tokenizer),
        "parameters": parameters,
        "adapters": saved,
        "losses": losses,
        "seconds": round(time.monotonic() - started, 2),
    }


def derive(sage_home: Path, name: str, new_name: str, checkpoint: str = "checkpoint-500") -> Path:
    """A second finetuned model of the same base: ``new_name`` whose adapter is ``checkpoint`` of
    model ``name`` (fewer training steps, so other weights). Returns its folder."""
    import shutil

    source = sage_home / "finetune_output" / name
    target = sage_home / "finetune_output" / new_name
    target.mkdir(parents=True)
    shutil.copy2(source / "finetune_meta.json", target / "finetune_meta.json")
    shutil.copytree(source / "checkpoints" / checkpoint, target / "lora_weights")
    return target


def check_merge(model_dir: Path, adapter: Path | None) -> dict[str, Any]:
    """Compare ``merged_model/`` with base+adapter and with the base on the same input."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(min(2, os.cpu_count() or 1))
    meta = json.loads((model_dir / "finetune_meta.json").read_text(encoding="utf-8"))
    adapter_dir = adapter or model_dir / "lora_weights"
    merged_dir = model_dir / "merged_model"
    tokenizer = AutoTokenizer.from_pretrained(merged_dir, local_files_only=True)
    ids = tokenizer(CHECK_TEXT, return_tensors="pt")["input_ids"]

    base = AutoModelForCausalLM.from_pretrained(
        meta["model"], local_files_only=True, dtype=torch.float32
    )
    with_adapter = PeftModel.from_pretrained(base, str(adapter_dir)).eval()
    merged = AutoModelForCausalLM.from_pretrained(
        merged_dir, local_files_only=True, dtype=torch.float32
    ).eval()
    with torch.no_grad():
        adapter_logits = with_adapter(input_ids=ids).logits
        with with_adapter.disable_adapter():
            base_logits = with_adapter(input_ids=ids).logits
        merged_logits = merged(input_ids=ids).logits
    return {
        "max_abs_diff_merged_vs_adapter": float((merged_logits - adapter_logits).abs().max()),
        "max_abs_diff_merged_vs_base": float((merged_logits - base_logits).abs().max()),
        "tokens": int(ids.shape[1]),
        "adapter": str(adapter_dir),
    }


def main(argv: list[str] | None = None) -> int:
    """Command line: build a tiny model, or check a merge."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("sage_home", nargs="?", type=Path)
    parser.add_argument("name", nargs="?")
    parser.add_argument("--check-merge", type=Path, metavar="MODEL_DIR")
    parser.add_argument("--adapter", type=Path, help="with --check-merge: the adapter to compare")
    ns = parser.parse_args(argv)
    if ns.check_merge is not None:
        result = check_merge(ns.check_merge, ns.adapter)
    elif ns.sage_home is not None and ns.name:
        result = build(ns.sage_home, ns.name)
    else:
        parser.error("give SAGE_HOME NAME, or --check-merge MODEL_DIR")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
