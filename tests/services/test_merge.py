"""Merging LoRA adapters in a child process: what to merge, when, and how failures look.

The fast tests use fake adapter files and stand-in Pythons; the ``vllm`` ones merge a real tiny
model with the vLLM environment's Python and compare logits.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from sage_lsp.backends.base import ErrorKind
from sage_lsp.processes import create_time
from sage_lsp.services.merge import (
    MergeError,
    adapter_fingerprint,
    merge_needed,
    read_merge_record,
    resolve_base,
    run_merge,
)
from sage_lsp.services.store import MERGE_RECORD, FinetunedModel
from tests.services.conftest import TinyBuild, check_merge

# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def write_adapter(folder: Path, weights: bytes = b"weights-1", tokenizer: bool = False) -> Path:
    """A fake adapter: config plus arbitrary weight bytes."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "adapter_config.json").write_text('{"r": 8}\n', encoding="utf-8")
    (folder / "adapter_model.safetensors").write_bytes(weights)
    if tokenizer:
        (folder / "tokenizer.json").write_text("{}\n", encoding="utf-8")
    return folder


def make_model(root: Path, meta: dict[str, object] | None = None) -> FinetunedModel:
    """An empty model folder with ``finetune_meta.json``."""
    path = root / "finetune_output" / "m"
    path.mkdir(parents=True)
    meta = {"model": "Org/Base-1B"} if meta is None else meta
    (path / "finetune_meta.json").write_text(json.dumps(meta), encoding="utf-8")
    return FinetunedModel("m", path)


def write_merged(model: FinetunedModel, fingerprint: str | None) -> None:
    """A fake ``merged_model/``, with a record carrying ``fingerprint`` unless ``None``."""
    model.merged_dir.mkdir(parents=True, exist_ok=True)
    (model.merged_dir / "config.json").write_text("{}\n", encoding="utf-8")
    (model.merged_dir / "model.safetensors").write_bytes(b"old merged weights")
    if fingerprint is not None:
        record = {"adapter": "x", "fingerprint": fingerprint, "base": "b", "mergedAt": "t"}
        (model.merged_dir / MERGE_RECORD).write_text(json.dumps(record), encoding="utf-8")


def leftovers(model: FinetunedModel) -> list[str]:
    """Temporary or set-aside folders a merge left in the model folder."""
    return sorted(p.name for p in model.path.iterdir() if p.name.startswith(".merged_model."))


def fake_python(path: Path, body: str) -> str:
    """An executable shell script standing in for the merge Python."""
    path.write_text("#!/bin/sh\n" + body, encoding="utf-8")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def lock_of(model: FinetunedModel) -> Path:
    """The model's merge lock, where the manager keeps it: ``$SAGE_HOME/run/NAME.merge.lock``."""
    return model.path.parents[1] / "run" / f"{model.name}.merge.lock"


def merge(model: FinetunedModel, python: str, log_path: Path, **options: Any) -> bool:
    """``run_merge`` with the model's merge lock."""
    return run_merge(model, python, log_path, lock_path=lock_of(model), **options)


# --------------------------------------------------------------------------------------------
# Which adapter, and whether a merge is needed (no torch)
# --------------------------------------------------------------------------------------------


def test_adapter_source_prefers_lora_weights(tmp_path: Path) -> None:
    model = make_model(tmp_path)
    write_adapter(model.path / "checkpoints" / "checkpoint-1000")
    write_adapter(model.lora_dir)
    assert model.adapter_source() == model.lora_dir


def test_adapter_source_takes_the_highest_step_numerically(tmp_path: Path) -> None:
    model = make_model(tmp_path)
    for step in (500, 1000, 99):
        write_adapter(model.path / "checkpoints" / f"checkpoint-{step}")
    (model.path / "checkpoints" / "checkpoint-2000").mkdir()  # no adapter in it
    (model.path / "checkpoints" / "runs").mkdir()
    assert model.adapter_source() == model.path / "checkpoints" / "checkpoint-1000"


def test_adapter_source_none_without_adapter(tmp_path: Path) -> None:
    model = make_model(tmp_path)
    (model.lora_dir).mkdir()
    assert model.adapter_source() is None
    assert not merge_needed(model)


def test_fingerprint_covers_config_and_weights_only(tmp_path: Path) -> None:
    one = write_adapter(tmp_path / "one", b"abc", tokenizer=True)
    two = write_adapter(tmp_path / "two", b"abc")
    assert adapter_fingerprint(one) == adapter_fingerprint(two)
    (two / "README.md").write_text("notes", encoding="utf-8")
    assert adapter_fingerprint(one) == adapter_fingerprint(two)
    (two / "adapter_model.safetensors").write_bytes(b"abd")
    assert adapter_fingerprint(one) != adapter_fingerprint(two)
    (one / "adapter_model.bin").write_bytes(b"")
    assert adapter_fingerprint(one) != adapter_fingerprint(write_adapter(tmp_path / "x", b"abc"))


def test_merge_needed_without_merged_model(tmp_path: Path) -> None:
    model = make_model(tmp_path)
    write_adapter(model.lora_dir)
    assert merge_needed(model)


def test_merge_not_needed_when_record_matches(tmp_path: Path) -> None:
    model = make_model(tmp_path)
    write_adapter(model.lora_dir)
    write_merged(model, adapter_fingerprint(model.lora_dir))
    assert not merge_needed(model)
    assert model.state == "merged"


def test_merge_needed_when_adapter_changed(tmp_path: Path) -> None:
    model = make_model(tmp_path)
    write_adapter(model.lora_dir, b"first")
    write_merged(model, adapter_fingerprint(model.lora_dir))
    write_adapter(model.lora_dir, b"second")
    assert merge_needed(model)


def test_merge_needed_when_a_newer_source_appears(tmp_path: Path) -> None:
    model = make_model(tmp_path)
    write_adapter(model.path / "checkpoints" / "checkpoint-500", b"500")
    write_merged(model, adapter_fingerprint(model.path / "checkpoints" / "checkpoint-500"))
    assert not merge_needed(model)
    write_adapter(model.path / "checkpoints" / "checkpoint-1000", b"1000")
    assert merge_needed(model)


@pytest.mark.parametrize("damage", ["no record", "bad record", "no config"])
def test_merge_needed_when_merged_model_is_incomplete(tmp_path: Path, damage: str) -> None:
    model = make_model(tmp_path)
    write_adapter(model.lora_dir)
    write_merged(model, None if damage == "no record" else adapter_fingerprint(model.lora_dir))
    if damage == "bad record":
        (model.merged_dir / MERGE_RECORD).write_text("{not json", encoding="utf-8")
    if damage == "no config":
        (model.merged_dir / "config.json").unlink()
    assert merge_needed(model)


def test_resolve_base(tmp_path: Path) -> None:
    model = make_model(tmp_path)
    (tmp_path / "finetune_output" / "base").mkdir()
    assert resolve_base(model, "../base") == str(tmp_path / "finetune_output" / "base")
    assert resolve_base(model, "Qwen/Qwen2.5-Coder-1.5B-Instruct") == (
        "Qwen/Qwen2.5-Coder-1.5B-Instruct"
    )
    assert resolve_base(model, "/abs/base") == "/abs/base"
    assert resolve_base(model, "./missing") == str(model.path / "missing")


# --------------------------------------------------------------------------------------------
# run_merge failures (no torch)
# --------------------------------------------------------------------------------------------


def test_run_merge_without_peft_fails_clearly(tmp_path: Path) -> None:
    """The main environment has no peft: the child says so in one line, nothing is written."""
    model = make_model(tmp_path)
    write_adapter(model.lora_dir)
    log = tmp_path / "logs" / "merge-m.log"
    with pytest.raises(MergeError) as caught:
        merge(model, sys.executable, log, timeout=120)
    err = caught.value
    assert err.kind is ErrorKind.CONFIG
    assert err.message == (
        f"merge failed: peft is not installed in {sys.executable} — install sage-lsp[merge] "
        "there or set SAGE_MERGE_PYTHON"
    )
    assert err.log_path == log
    assert err.exit_code not in (None, 0)
    assert err.message in err.log_tail
    text = log.read_text(encoding="utf-8")
    assert err.message in text
    assert "=== merge m at" in text
    assert not model.merged_dir.exists()
    assert leftovers(model) == []


def test_failed_merge_leaves_existing_merged_model_untouched(tmp_path: Path) -> None:
    model = make_model(tmp_path)
    write_adapter(model.lora_dir, b"new")
    write_merged(model, "an older adapter")
    before = snapshot(model.merged_dir)
    log = tmp_path / "merge.log"
    log.write_text("an earlier run\n", encoding="utf-8")
    with pytest.raises(MergeError) as caught:
        merge(model, sys.executable, log, timeout=120)
    assert snapshot(model.merged_dir) == before
    assert leftovers(model) == []
    assert log.read_text(encoding="utf-8").startswith("an earlier run\n")  # appended
    assert "an earlier run" not in caught.value.log_tail


def test_base_missing_from_meta(tmp_path: Path) -> None:
    model = make_model(tmp_path, meta={"task_type": "x", "model": ""})
    write_adapter(model.lora_dir)
    log = tmp_path / "merge.log"
    with pytest.raises(MergeError) as caught:
        merge(model, sys.executable, log)
    assert "finetune_meta.json" in caught.value.message
    assert '"model"' in caught.value.message
    assert caught.value.exit_code is None
    assert not log.exists()  # no child was started
    assert not model.merged_dir.exists()


def test_no_adapter(tmp_path: Path) -> None:
    model = make_model(tmp_path)
    with pytest.raises(MergeError, match="no adapter to merge"):
        merge(model, sys.executable, tmp_path / "merge.log")


def test_missing_python(tmp_path: Path) -> None:
    model = make_model(tmp_path)
    write_adapter(model.lora_dir)
    with pytest.raises(MergeError) as caught:
        merge(model, str(tmp_path / "no-such-python"), tmp_path / "merge.log")
    assert caught.value.kind is ErrorKind.CONFIG
    assert "SAGE_MERGE_PYTHON" in caught.value.hint


def test_child_without_failure_line(tmp_path: Path) -> None:
    model = make_model(tmp_path)
    write_adapter(model.lora_dir)
    python = fake_python(tmp_path / "python", "echo 'Traceback: boom'\nexit 3\n")
    with pytest.raises(MergeError) as caught:
        merge(model, python, tmp_path / "merge.log")
    assert caught.value.message == "merge failed (exit 3)"
    assert caught.value.kind is ErrorKind.SERVER
    assert caught.value.exit_code == 3
    assert "Traceback: boom" in caught.value.log_tail


def test_child_passes_resolved_arguments(tmp_path: Path) -> None:
    base = tmp_path / "finetune_output" / "base"
    model = make_model(tmp_path, meta={"model": "../base"})
    base.mkdir()
    write_adapter(model.path / "checkpoints" / "checkpoint-500")
    write_adapter(model.path / "checkpoints" / "checkpoint-1000")
    args_file = tmp_path / "args"
    python = fake_python(
        tmp_path / "python",
        f'for a in "$@"; do echo "$a"; done > {args_file}\n'
        'echo "HF_HUB_OFFLINE=$HF_HUB_OFFLINE"\nexit 1\n',
    )
    with pytest.raises(MergeError) as caught:
        merge(model, python, tmp_path / "merge.log")
    assert args_file.read_text(encoding="utf-8").splitlines() == [
        "-m",
        "sage_lsp.services.merge_child",
        "--base",
        str(base),
        "--adapter",
        str(model.path / "checkpoints" / "checkpoint-1000"),
        "--output",
        str(model.merged_dir),
        "--lock",
        str(lock_of(model)),
        "--parent",
        str(os.getpid()),
        "--parent-started",
        repr(create_time(os.getpid())),
    ]
    assert "HF_HUB_OFFLINE=1" in caught.value.log_tail


def test_crash_during_swap_restores_previous_merge(tmp_path: Path) -> None:
    """A child that dies after moving merged_model aside: the parent puts it back."""
    model = make_model(tmp_path)
    write_adapter(model.lora_dir)
    write_merged(model, "old")
    before = snapshot(model.merged_dir)
    python = fake_python(
        tmp_path / "python",
        'out="$8"; d=$(dirname "$out"); n=$(basename "$out")\n'
        'mkdir "$d/.$n.tmp-$$"\nmv "$out" "$d/.$n.old-$$"\n'
        'echo "merge failed: simulated crash" >&2\nexit 1\n',
    )
    with pytest.raises(MergeError) as caught:
        merge(model, python, tmp_path / "merge.log")
    assert caught.value.message == "merge failed: simulated crash"
    assert snapshot(model.merged_dir) == before
    assert leftovers(model) == []


def test_timeout_kills_the_process_group(tmp_path: Path) -> None:
    model = make_model(tmp_path)
    write_adapter(model.lora_dir)
    pid_file = tmp_path / "grandchild.pid"
    python = fake_python(
        tmp_path / "python",
        f'mkdir "$(dirname "$8")/.merged_model.tmp-$$"\nsleep 300 &\necho $! > {pid_file}\nwait\n',
    )
    started = time.monotonic()
    with pytest.raises(MergeError) as caught:
        merge(model, python, tmp_path / "merge.log", timeout=1)
    assert caught.value.kind is ErrorKind.TIMEOUT
    assert time.monotonic() - started < 15
    grandchild = int(pid_file.read_text(encoding="utf-8"))
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            if psutil.Process(grandchild).status() == psutil.STATUS_ZOMBIE:
                break
        except psutil.NoSuchProcess:
            break
        time.sleep(0.05)
    else:
        pytest.fail(f"grandchild {grandchild} survived the timeout")
    assert leftovers(model) == []


# --------------------------------------------------------------------------------------------
# Real merges of the tiny model (vLLM environment)
# --------------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.vllm
def test_tiny_model_layout(tiny_build: TinyBuild) -> None:
    model = FinetunedModel(tiny_build.name, tiny_build.model_dir)
    meta = model.meta
    assert set(meta) >= {"task_type", "model", "framework", "format", "dataset", "config"}
    assert meta["model"] == str(tiny_build.sage_home.resolve() / "base_models" / "tiny-llama")
    assert [c.name for c in model.checkpoints()] == ["checkpoint-500", "checkpoint-1000"]
    assert model.adapter_source() == model.lora_dir
    prints = {
        adapter_fingerprint(p)
        for p in (model.lora_dir, *model.checkpoints())  # three different adapters
    }
    assert len(prints) == 3
    assert model.state == "adapter"
    assert merge_needed(model)
    print(f"tiny model built in {tiny_build.seconds:.1f} s")


@pytest.mark.slow
@pytest.mark.vllm
def test_real_merge_matches_base_plus_adapter(
    tiny_model: FinetunedModel, vllm_python: Path
) -> None:
    log = tiny_model.path / "logs" / "merge.log"
    started = time.monotonic()
    merge(tiny_model, str(vllm_python), log)
    seconds = time.monotonic() - started
    record = read_merge_record(tiny_model.merged_dir)
    assert record is not None
    assert record["adapter"] == str(tiny_model.lora_dir)
    assert record["fingerprint"] == adapter_fingerprint(tiny_model.lora_dir)
    assert record["base"] == tiny_model.base_model
    assert not merge_needed(tiny_model)
    assert tiny_model.state == "merged"
    assert leftovers(tiny_model) == []
    for name in ("config.json", "tokenizer_config.json", "tokenizer.json"):
        assert (tiny_model.merged_dir / name).is_file(), name
    text = log.read_text(encoding="utf-8")
    for step in ("loading base", "applying adapter", "saving"):
        assert step in text
    diffs = check_merge(vllm_python, tiny_model)
    print(f"merge took {seconds:.1f} s; {diffs}")
    assert diffs["max_abs_diff_merged_vs_adapter"] < 1e-4
    assert diffs["max_abs_diff_merged_vs_base"] > 1e-3


@pytest.mark.slow
@pytest.mark.vllm
def test_changed_adapter_is_merged_again(tiny_model: FinetunedModel, vllm_python: Path) -> None:
    log = tiny_model.path / "logs" / "merge.log"
    merge(tiny_model, str(vllm_python), log)
    first = read_merge_record(tiny_model.merged_dir)
    assert first is not None and not merge_needed(tiny_model)

    older = tiny_model.path / "checkpoints" / "checkpoint-500"
    for name in ("adapter_config.json", "adapter_model.safetensors"):
        shutil.copyfile(older / name, tiny_model.lora_dir / name)
    assert merge_needed(tiny_model)

    merge(tiny_model, str(vllm_python), log)
    second = read_merge_record(tiny_model.merged_dir)
    assert second is not None
    assert second["fingerprint"] != first["fingerprint"]
    assert second["fingerprint"] == adapter_fingerprint(older)
    assert not merge_needed(tiny_model)
    assert leftovers(tiny_model) == []
    assert log.read_text(encoding="utf-8").count("=== merge ") == 2
    diffs = check_merge(vllm_python, tiny_model)
    print(f"after re-merge: {diffs}")
    assert diffs["max_abs_diff_merged_vs_adapter"] < 1e-4
    assert diffs["max_abs_diff_merged_vs_base"] > 1e-3


@pytest.mark.slow
@pytest.mark.vllm
def test_checkpoints_only_merges_the_highest_step(
    tiny_model: FinetunedModel, vllm_python: Path
) -> None:
    shutil.rmtree(tiny_model.lora_dir)
    merge(tiny_model, str(vllm_python), tiny_model.path / "logs" / "merge.log")
    record = read_merge_record(tiny_model.merged_dir)
    newest = tiny_model.path / "checkpoints" / "checkpoint-1000"
    assert record is not None
    assert record["adapter"] == str(newest)
    assert record["fingerprint"] == adapter_fingerprint(newest)
    # No tokenizer in the checkpoint: it comes from the base.
    assert (tiny_model.merged_dir / "tokenizer.json").is_file()
    assert not merge_needed(tiny_model)


@pytest.mark.slow
@pytest.mark.vllm
def test_base_not_available_offline(tiny_model: FinetunedModel, vllm_python: Path) -> None:
    meta = tiny_model.meta
    meta["model"] = "no-such-org/no-such-model"
    (tiny_model.path / "finetune_meta.json").write_text(json.dumps(meta), encoding="utf-8")
    with pytest.raises(MergeError) as caught:
        merge(tiny_model, str(vllm_python), tiny_model.path / "logs" / "merge.log")
    assert caught.value.message == (
        "merge failed: base model 'no-such-org/no-such-model' is not available offline (not a "
        'folder, not in the Hugging Face cache) — download it once or set "model" in '
        "finetune_meta.json to a local path"
    )
    assert caught.value.kind is ErrorKind.SERVER
    assert not tiny_model.merged_dir.exists()
    assert leftovers(tiny_model) == []


@pytest.mark.slow
@pytest.mark.vllm
def test_adapter_that_does_not_fit(tiny_model: FinetunedModel, vllm_python: Path) -> None:
    config_path = tiny_model.lora_dir / "adapter_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config["r"] = 4  # the weights are rank 8
    config_path.write_text(json.dumps(config), encoding="utf-8")
    write_merged(tiny_model, "an earlier merge")
    before = snapshot(tiny_model.merged_dir)
    with pytest.raises(MergeError) as caught:
        merge(tiny_model, str(vllm_python), tiny_model.path / "logs" / "merge.log")
    message = caught.value.message
    assert message.startswith("merge failed: the adapter does not fit the base model: ")
    assert "size mismatch" in message
    assert "\n" not in message
    assert snapshot(tiny_model.merged_dir) == before
    assert leftovers(tiny_model) == []


def test_parent_side_never_imports_torch() -> None:
    """The main process imports this module but never torch, transformers or peft."""
    assert not {"torch", "transformers", "peft"} & set(sys.modules)


@pytest.mark.slow
@pytest.mark.vllm
def test_sage_finetune_merge_command(tiny_model: FinetunedModel, vllm_python: Path) -> None:
    import subprocess

    env = {**os.environ, "SAGE_HOME": str(tiny_model.path.parents[1]),
           "SAGE_MERGE_PYTHON": str(vllm_python)}  # fmt: skip

    def merge(*extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "sage_lsp.cli", "finetune", "merge", tiny_model.name, *extra],
            capture_output=True, text=True, env=env, timeout=300,
        )  # fmt: skip

    first = merge()
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("merged ") and (tiny_model.merged_dir / MERGE_RECORD).is_file()
    assert "[merging" in first.stderr
    again = merge()
    assert again.returncode == 0 and "is merged and up to date" in again.stdout
    forced = merge("--force")
    assert forced.returncode == 0 and forced.stdout.startswith("merged ")
    listed = subprocess.run([sys.executable, "-m", "sage_lsp.cli", "finetune", "list"],
                            capture_output=True, text=True, env=env, timeout=60)  # fmt: skip
    assert tiny_model.name in listed.stdout and "merged" in listed.stdout
