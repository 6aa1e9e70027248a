"""Merging a LoRA adapter into its base model, in a child process.

Two sides live here. The parent side (:func:`run_merge`, :func:`merge_needed`,
:func:`adapter_fingerprint`) uses the standard library only: the main process never imports torch,
transformers or peft. The child side is this module run as a script with a Python that has the
``merge`` extra::

    <python> -m sage_lsp.services.merge --base BASE --adapter ADAPTER_DIR --output OUT_DIR

The child saves into a temporary folder next to ``OUT_DIR``, writes the record file
(:data:`~sage_lsp.services.store.MERGE_RECORD`) last and then swaps the folder into place, so a
crash never leaves a half-written ``merged_model/`` behind and an existing one stays untouched
until the new one is complete. A failure ends with one line on stderr starting with
``merge failed: `` that the parent turns into a :class:`MergeError`.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import hashlib
import importlib
import importlib.util
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sage_lsp.backends.base import BackendError, ErrorKind
from sage_lsp.services.store import MERGE_RECORD, FinetunedModel

FAILED = "merge failed: "
"""Prefix of the one line a failing child prints to stderr."""
LOG_TAIL_LINES = 40
"""How many lines of the merge log a :class:`MergeError` carries."""
MERGE_MODULE = "sage_lsp.services.merge"
"""The module the child runs (``python -m``)."""
_TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "tokenizer.model",
    "vocab.json",
    "spiece.model",
)
_REQUIRED_MODULES = ("peft", "torch", "transformers")
"""Checked in this order; the first one missing is named in the error."""


# --------------------------------------------------------------------------------------------
# Parent side: standard library and sage_lsp only.
# --------------------------------------------------------------------------------------------


class MergeError(BackendError):
    """A merge that failed, with where its log is and how it ended."""

    def __init__(
        self,
        kind: ErrorKind,
        message: str,
        hint: str = "",
        *,
        log_path: Path,
        log_tail: Sequence[str] = (),
        exit_code: int | None = None,
        details: Mapping[str, object] | None = None,
    ) -> None:
        merged_details: dict[str, object] = {
            "logPath": str(log_path),
            "logTail": list(log_tail),
            "exitCode": exit_code,
        }
        merged_details.update(details or {})
        super().__init__(kind, message, hint, merged_details)
        self.log_path = log_path
        """The merge log (the child's stdout and stderr, appended)."""
        self.log_tail: list[str] = list(log_tail)
        """The last lines this merge wrote to the log."""
        self.exit_code = exit_code
        """The child's exit status (negative: killed by that signal), or ``None`` if it never
        ran or was killed for taking too long."""


def _adapter_files(adapter_dir: Path) -> list[Path]:
    """The files that define an adapter: its config and its weights."""
    if not adapter_dir.is_dir():
        return []
    return sorted(
        p
        for p in adapter_dir.iterdir()
        if p.is_file() and (p.name == "adapter_config.json" or p.name.startswith("adapter_model."))
    )


def adapter_fingerprint(adapter_dir: Path) -> str:
    """SHA-256 over the names, sizes and contents of ``adapter_config.json`` and
    ``adapter_model.*`` in ``adapter_dir`` (other files, e.g. the tokenizer, do not count)."""
    digest = hashlib.sha256()
    for path in _adapter_files(adapter_dir):
        size = path.stat().st_size
        digest.update(f"{path.name}\0{size}\0".encode())
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        digest.update(b"\0")
    return digest.hexdigest()


def read_merge_record(merged_dir: Path) -> dict[str, object] | None:
    """The record a merge wrote into ``merged_dir``, or ``None`` when missing or unreadable."""
    try:
        data = json.loads((merged_dir / MERGE_RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def merge_needed(model: FinetunedModel) -> bool:
    """Whether ``model`` must be merged before it can be served merged: it has an adapter and
    ``merged_model/`` is missing, incomplete, not ours, or merged from a different adapter."""
    source = model.adapter_source()
    if source is None:
        return False
    if not (model.merged_dir / "config.json").is_file():
        return True
    record = read_merge_record(model.merged_dir)
    if record is None:
        return True
    return record.get("fingerprint") != adapter_fingerprint(source)


def resolve_base(model: FinetunedModel, base: str) -> str:
    """``base`` as the child gets it: ``~`` expanded, a relative path that exists (or starts with
    ``./`` or ``../``) made absolute against the model folder; anything else (a hub id) as is."""
    expanded = Path(base).expanduser()
    if expanded.is_absolute():
        return str(expanded)
    candidate = model.path / expanded
    if candidate.exists() or base.startswith(("./", "../", ".\\", "..\\")):
        return str(candidate.resolve())
    return base


def _package_root() -> Path:
    """The folder that holds the ``sage_lsp`` package (put on the child's ``PYTHONPATH``)."""
    return Path(__file__).resolve().parents[2]


def _child_env() -> dict[str, str]:
    """The child's environment: offline, unbuffered, able to import ``sage_lsp``."""
    env = dict(os.environ)
    root = str(_package_root())
    current = env.get("PYTHONPATH")
    env["PYTHONPATH"] = root if not current else os.pathsep.join([root, current])
    env["PYTHONUNBUFFERED"] = "1"
    env["HF_HUB_OFFLINE"] = "1"
    env["TRANSFORMERS_OFFLINE"] = "1"
    return env


def _temp_dirs(out_dir: Path, pid: int) -> tuple[Path, Path]:
    """The child's temporary folder and the place the previous output is moved aside to."""
    return (
        out_dir.parent / f".{out_dir.name}.tmp-{pid}",
        out_dir.parent / f".{out_dir.name}.old-{pid}",
    )


def _clean_after(out_dir: Path, pid: int) -> None:
    """Remove what a child ``pid`` that died mid-way left: its temporary folder, and put the
    previous output back if it was moved aside but not replaced."""
    tmp, old = _temp_dirs(out_dir, pid)
    shutil.rmtree(tmp, ignore_errors=True)
    if old.exists():
        if out_dir.exists():
            shutil.rmtree(old, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                old.rename(out_dir)


def _kill_group(proc: subprocess.Popen[bytes], grace: float = 5.0) -> None:
    """Stop the child's process group: SIGTERM, then SIGKILL after ``grace`` seconds."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 30.0)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _read_run_log(log_path: Path, offset: int) -> list[str]:
    """The lines written to the log from ``offset`` on (this run's part)."""
    try:
        with log_path.open("rb") as handle:
            handle.seek(offset)
            data = handle.read()
    except OSError:
        return []
    return data.decode("utf-8", errors="replace").splitlines()


def run_merge(model: FinetunedModel, python: str, log_path: Path, timeout: float = 1800) -> None:
    """Merge ``model``'s adapter into its base, writing ``merged_model/``, in a child process
    run with ``python`` (which needs the ``merge`` extra). The child's output is appended to
    ``log_path``. Raises :class:`MergeError` when the merge fails or takes longer than
    ``timeout`` seconds (the child's whole process group is then killed)."""
    name = model.name
    adapter = model.adapter_source()
    if adapter is None:
        raise MergeError(
            ErrorKind.SERVER,
            f"merge failed: model {name!r} has no adapter to merge (no lora_weights/ and no "
            f"checkpoints/checkpoint-*/ with adapter_config.json in {model.path})",
            "finetune the model first",
            log_path=log_path,
        )
    base = model.base_model
    if base is None:
        raise MergeError(
            ErrorKind.SERVER,
            f"merge failed: {model.path / 'finetune_meta.json'} does not name the base model "
            '(its "model" key is missing or empty)',
            'set "model" in finetune_meta.json to the base model\'s hub id or local path',
            log_path=log_path,
            details={"name": name},
        )
    base = resolve_base(model, base)
    out_dir = model.merged_dir
    args = [
        python,
        "-m",
        MERGE_MODULE,
        "--base",
        base,
        "--adapter",
        str(adapter),
        "--output",
        str(out_dir),
    ]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        offset = log.tell()
        stamp = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        log.write(f"=== merge {name} at {stamp}: {' '.join(args)}\n".encode())
        log.flush()
        try:
            proc = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=str(model.path),
                env=_child_env(),
                start_new_session=True,
            )
        except OSError as exc:
            raise MergeError(
                ErrorKind.CONFIG,
                f"merge failed: cannot run the merge Python {python}: {exc.strerror or exc}",
                "set SAGE_MERGE_PYTHON to a Python that has sage-lsp[merge] installed",
                log_path=log_path,
            ) from exc
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            _clean_after(out_dir, proc.pid)
            tail = _read_run_log(log_path, offset)[-LOG_TAIL_LINES:]
            raise MergeError(
                ErrorKind.TIMEOUT,
                f"merge failed: merging {name!r} took longer than {timeout:g} s and was stopped",
                f"see {log_path}; a larger timeout may help for big models",
                log_path=log_path,
                log_tail=tail,
            ) from None
        except BaseException:
            _kill_group(proc, grace=2.0)
            _clean_after(out_dir, proc.pid)
            raise
    lines = _read_run_log(log_path, offset)
    tail = lines[-LOG_TAIL_LINES:]
    if code != 0:
        _clean_after(out_dir, proc.pid)
        failed = [line.strip() for line in lines if line.startswith(FAILED)]
        if failed:
            message = failed[-1]
        elif code < 0:
            message = f"merge failed (killed by signal {-code})"
        else:
            message = f"merge failed (exit {code})"
        missing_extra = " is not installed in " in message
        hint = (
            f"install sage-lsp[merge] into {python}, or set SAGE_MERGE_PYTHON; log: {log_path}"
            if missing_extra
            else f"see {log_path}"
        )
        raise MergeError(
            ErrorKind.CONFIG if missing_extra else ErrorKind.SERVER,
            message,
            hint,
            log_path=log_path,
            log_tail=tail,
            exit_code=code,
        )
    if read_merge_record(out_dir) is None:
        raise MergeError(
            ErrorKind.SERVER,
            f"merge failed: the merge exited 0 but {out_dir / MERGE_RECORD} is missing",
            f"see {log_path}",
            log_path=log_path,
            log_tail=tail,
            exit_code=code,
        )


# --------------------------------------------------------------------------------------------
# Child side: run as ``python -m sage_lsp.services.merge``; torch & co. are imported only here.
# --------------------------------------------------------------------------------------------


class _ChildFailure(Exception):
    """A known merge failure: its text becomes the ``merge failed: ...`` line."""


def _import(name: str) -> Any:
    """Import ``name`` in the child, or fail with the line that names the missing extra."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise _ChildFailure(f"could not import {name} in {sys.executable}: {exc}") from exc


def _check_extra() -> None:
    """Fail with a clear line when peft, torch or transformers is missing in this Python."""
    for module in _REQUIRED_MODULES:
        if importlib.util.find_spec(module) is None:
            raise _ChildFailure(
                f"{module} is not installed in {sys.executable} — install sage-lsp[merge] "
                "there or set SAGE_MERGE_PYTHON"
            )


def _base_available(base: str) -> bool:
    """Whether ``base`` is a local folder or a hub id present in the local Hugging Face cache."""
    if Path(base).is_dir():
        return True
    if Path(base).is_absolute() or base.startswith((".", "~")):
        return False
    try:
        hub: Any = importlib.import_module("huggingface_hub")
        cached = hub.try_to_load_from_cache(base, "config.json")
    except Exception:
        return False
    return isinstance(cached, str)


def _not_offline(base: str) -> _ChildFailure:
    """The failure for a base model that cannot be loaded without the network."""
    return _ChildFailure(
        f"base model {base!r} is not available offline (not a folder, not in the Hugging Face "
        'cache) — download it once or set "model" in finetune_meta.json to a local path'
    )


def _short_reason(exc: BaseException) -> str:
    """One line out of a (possibly long, multi-line) exception message."""
    text = str(exc).strip() or type(exc).__name__
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    chosen = next((line for line in lines if "size mismatch" in line), lines[0])
    return chosen if len(chosen) <= 400 else chosen[:397] + "..."


def _version(text: str) -> tuple[int, ...]:
    """The leading numeric parts of a version string: ``"4.56.0.dev0"`` -> ``(4, 56, 0)``."""
    parts: list[int] = []
    for part in text.split("."):
        digits = "".join(itertools.takewhile(str.isdigit, part))
        if not digits:
            break
        parts.append(int(digits))
        if len(digits) < len(part):
            break
    return tuple(parts)


def _has_tokenizer(folder: Path) -> bool:
    """Whether ``folder`` holds tokenizer files."""
    return any((folder / name).is_file() for name in _TOKENIZER_FILES)


def _merge(base: str, adapter: Path, output: Path) -> None:
    """Load, merge, save into a temporary folder, write the record, swap into place."""
    _check_extra()
    if not (adapter / "adapter_config.json").is_file():
        raise _ChildFailure(f"no adapter in {adapter} (adapter_config.json is missing)")
    if not _base_available(base):
        raise _not_offline(base)
    torch = _import("torch")
    transformers = _import("transformers")
    peft = _import("peft")
    with contextlib.suppress(Exception):
        transformers.utils.logging.disable_progress_bar()

    started = time.monotonic()
    print(f"loading base {base}", flush=True)
    # transformers 4.56 renamed torch_dtype to dtype (the old name warns from then on).
    dtype_arg = "dtype" if _version(transformers.__version__) >= (4, 56) else "torch_dtype"
    try:
        config = transformers.AutoConfig.from_pretrained(base, local_files_only=True)
        base_model = transformers.AutoModelForCausalLM.from_pretrained(
            base, local_files_only=True, **{dtype_arg: torch.float32}
        )
    except OSError as exc:
        if not Path(base).is_dir():
            raise _not_offline(base) from exc
        raise _ChildFailure(
            f"cannot load the base model from {base}: {_short_reason(exc)}"
        ) from exc
    # Merged in float32 for accuracy; saved in the base's own half precision when it has one,
    # so the merged model is no larger than the base and is served in the same dtype.
    saved_dtype = getattr(config, "dtype", None) or getattr(config, "torch_dtype", None)
    if isinstance(saved_dtype, str):
        saved_dtype = getattr(torch, saved_dtype, None)

    print(f"applying adapter {adapter}", flush=True)
    fingerprint = adapter_fingerprint(adapter)  # of what is loaded, not of what is there later
    try:
        merged = peft.PeftModel.from_pretrained(base_model, str(adapter)).merge_and_unload()
    except (RuntimeError, ValueError, KeyError) as exc:
        raise _ChildFailure(
            f"the adapter does not fit the base model: {_short_reason(exc)}"
        ) from exc
    if saved_dtype in (torch.float16, torch.bfloat16):
        merged = merged.to(saved_dtype)

    tmp, old = _temp_dirs(output, os.getpid())
    output.parent.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        print(f"saving to {tmp}", flush=True)
        merged.save_pretrained(str(tmp), safe_serialization=True)
        source = adapter if _has_tokenizer(adapter) else Path(base)
        tokenizer_from = str(source) if source.is_dir() else base
        try:
            tokenizer = transformers.AutoTokenizer.from_pretrained(
                tokenizer_from, local_files_only=True
            )
        except (OSError, ValueError) as exc:
            raise _ChildFailure(
                f"cannot load the tokenizer from {tokenizer_from}: {_short_reason(exc)}"
            ) from exc
        tokenizer.save_pretrained(str(tmp))
        record = {
            "adapter": str(adapter),
            "fingerprint": fingerprint,
            "base": base,
            "mergedAt": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        }
        record_path = tmp / MERGE_RECORD
        with record_path.open("w", encoding="utf-8") as handle:
            json.dump(record, handle, indent=2)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        _swap_into_place(tmp, output, old)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    print(f"merged into {output} in {time.monotonic() - started:.1f} s", flush=True)


def _swap_into_place(tmp: Path, output: Path, old: Path) -> None:
    """Replace ``output`` by ``tmp``: move the old one aside, rename, delete the old one."""
    moved_aside = False
    if output.exists():
        output.rename(old)
        moved_aside = True
    try:
        tmp.rename(output)
    except OSError:
        if moved_aside:
            old.rename(output)
        raise
    if moved_aside:
        shutil.rmtree(old, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    """The child's entry point: merge ``--adapter`` into ``--base`` and write ``--output``.
    Returns the exit status; failures print one ``merge failed: ...`` line to stderr."""
    parser = argparse.ArgumentParser(
        prog=f"python -m {MERGE_MODULE}", description="Merge a LoRA adapter into its base model."
    )
    parser.add_argument("--base", required=True, help="base model: a local folder or a hub id")
    parser.add_argument("--adapter", required=True, type=Path, help="the LoRA adapter folder")
    parser.add_argument("--output", required=True, type=Path, help="where the merged model goes")
    ns = parser.parse_args(argv)
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    try:
        _merge(ns.base, ns.adapter.absolute(), ns.output.absolute())
    except _ChildFailure as exc:
        print(f"{FAILED}{exc}", file=sys.stderr, flush=True)
        return 2
    except KeyboardInterrupt:
        print(f"{FAILED}interrupted", file=sys.stderr, flush=True)
        return 130
    except Exception as exc:
        traceback.print_exc()
        print(f"{FAILED}{type(exc).__name__}: {_short_reason(exc)}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
