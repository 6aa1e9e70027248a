"""The merge child: merges a LoRA adapter into its base model with peft, torch and transformers.

:func:`sage_lsp.services.merge.run_merge` (the parent side, which never imports them) runs it with
a Python that has the ``merge`` extra::

    <python> -m sage_lsp.services.merge_child --base BASE --adapter ADAPTER_DIR --output OUT_DIR \
        [--lock LOCK_FILE] [--parent PID --parent-started CREATE_TIME] [--force]

It holds the model's cross-session merge lock (``--lock``) for its whole life, so one merge of a
model runs at a time; once it holds it, it removes what killed merges left, and merges only if
the merge is still needed (unless ``--force``). It ends, cleaning up, when the session that
started it (``--parent``, with its create time) is gone, also after a SIGKILL of it. It saves
into a temporary folder next to ``OUT_DIR``, writes the record file
(:data:`~sage_lsp.services.store.MERGE_RECORD`) last and then swaps the folder into place
(:func:`~sage_lsp.services.merge.swap_into_place`), so a crash never leaves a half-written
``merged_model/`` behind and an existing one stays untouched until the new one is complete. A
failure ends with one line on stderr starting with ``merge failed: `` that the parent turns into
a :class:`~sage_lsp.services.merge.MergeError`.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import importlib
import importlib.util
import itertools
import json
import os
import shutil
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from sage_lsp.processes import is_alive
from sage_lsp.services import cpus
from sage_lsp.services.merge import (
    FAILED,
    MERGE_MODULE,
    STOP_GRACE_SECONDS,
    UP_TO_DATE,
    adapter_fingerprint,
    clean_after,
    merge_current,
    merge_lock,
    swap_into_place,
    temp_dirs,
    temp_prefixes,
)
from sage_lsp.services.store import MERGE_RECORD

PARENT_POLL_SECONDS = 0.5
"""How often the child looks whether the session that started it is still there."""
_TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "tokenizer.model",
    "vocab.json",
    "spiece.model",
)
_REQUIRED_MODULES = ("peft", "torch", "transformers")
"""Checked in this order; the first one missing is named in the error."""


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


def _merge(base: str, adapter: Path, output: Path, session_alive: Callable[[], bool]) -> None:
    """Load, merge, save into a temporary folder, write the record, swap into place, unless
    the session that asked for the merge is gone by then."""
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

    tmp, old = temp_dirs(output, os.getpid())
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
        if not session_alive():  # nobody waits for it: stop as the watcher would
            raise KeyboardInterrupt
        swap_into_place(tmp, output, old)
    except BaseException:  # also a stop in mid-swap: the previous output is put back
        clean_after(output, os.getpid())
        raise
    print(f"merged into {output} in {time.monotonic() - started:.1f} s", flush=True)


def _clean_leftovers(output: Path) -> None:
    """Remove what killed merges of ``output`` left: their temporary folders, and copies of
    the output set aside in mid-swap (the newest one is put back first when ``output`` is
    missing). Called under the merge lock, so none of those merges still runs."""
    if not output.parent.is_dir():
        return
    tmp_prefix, old_prefix = temp_prefixes(output)
    found = [p for p in output.parent.iterdir() if p.name.startswith((tmp_prefix, old_prefix))]
    set_aside = sorted((p for p in found if p.name.startswith(old_prefix)), key=_mtime)
    if set_aside and not output.exists():
        newest = set_aside[-1]
        newest.rename(output)
        found.remove(newest)
        print(f"put back {newest.name} as {output.name} (a merge was killed in mid-swap)")
    for leftover in found:
        print(f"removing {leftover.name}, left by a merge that was killed", flush=True)
        shutil.rmtree(leftover, ignore_errors=True)


def _mtime(path: Path) -> float:
    """``path``'s modification time (0 if it is gone)."""
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _session_alive(pid: int, started: float) -> Callable[[], bool]:
    """Whether the session (process ``pid``, started at ``started``) still runs: by pid and
    create time, so a reused pid does not count; without psutil in this Python, by whether it
    is still our parent (a wrapper script between the two must then ``exec``)."""
    if importlib.util.find_spec("psutil") is None:
        return lambda: os.getppid() == pid
    return lambda: is_alive(pid, started)


def _watch_parent(alive: Callable[[], bool], pid: int, output: Path) -> None:
    """End this merge once the session that started it (process ``pid``) is no longer
    ``alive``, also when it was killed with SIGKILL: a SIGTERM to this process cleans up as a
    stop does; if that has not ended it after a while (stuck in native code), clean up and exit
    at once."""

    def watch() -> None:
        while alive():
            time.sleep(PARENT_POLL_SECONDS)
        print(f"the session that started this merge (pid {pid}) is gone: stopping", flush=True)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(10 * STOP_GRACE_SECONDS)
        clean_after(output, os.getpid())
        os._exit(1)

    threading.Thread(target=watch, name="merge-parent-watch", daemon=True).start()


def _merge_under_lock(ns: argparse.Namespace, session_alive: Callable[[], bool]) -> None:
    """Take the merge lock, clean up after killed merges, merge unless up to date."""
    output, adapter = ns.output.absolute(), ns.adapter.absolute()
    held = (
        merge_lock(ns.lock, output.parent.name, on_wait=_say_waiting)
        if ns.lock is not None
        else contextlib.nullcontext()
    )
    with held:
        _clean_leftovers(output)
        if not ns.force and merge_current(adapter, output):
            print(f"{UP_TO_DATE}{output} is a merge of {adapter} already", flush=True)
            return
        _merge(ns.base, adapter, output, session_alive)


def _say_waiting() -> None:
    print("another merge of this model is running: waiting for it to end", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """The child's entry point: merge ``--adapter`` into ``--base`` and write ``--output``.
    Returns the exit status; failures print one ``merge failed: ...`` line to stderr."""
    parser = argparse.ArgumentParser(
        prog=f"python -m {MERGE_MODULE}", description="Merge a LoRA adapter into its base model."
    )
    parser.add_argument("--base", required=True, help="base model: a local folder or a hub id")
    parser.add_argument("--adapter", required=True, type=Path, help="the LoRA adapter folder")
    parser.add_argument("--output", required=True, type=Path, help="where the merged model goes")
    parser.add_argument("--lock", type=Path, help="the model's merge lock, held while running")
    parser.add_argument("--parent", type=int, help="stop when this process (the session) ends")
    parser.add_argument("--parent-started", type=float, help="--parent's create time")
    parser.add_argument("--force", action="store_true", help="merge even when up to date")
    ns = parser.parse_args(argv)
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    cpus.restore()  # every core the session had, not only those it kept to
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # a stop cleans up like Ctrl-C
    watched = ns.parent is not None and ns.parent_started is not None  # not when run by hand
    session_alive = _session_alive(ns.parent, ns.parent_started) if watched else lambda: True
    if watched:
        _watch_parent(session_alive, ns.parent, ns.output.absolute())
    try:
        _merge_under_lock(ns, session_alive)
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
