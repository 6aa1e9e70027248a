"""Merging a LoRA adapter into its base model, in a child process.

Two sides live here. The parent side (:func:`run_merge`, :func:`merge_needed`,
:func:`adapter_fingerprint`) never imports torch, transformers or peft. The child side is this
module run as a script with a Python that has the ``merge`` extra::

    <python> -m sage_lsp.services.merge --base BASE --adapter ADAPTER_DIR --output OUT_DIR \
        [--lock LOCK_FILE] [--parent PID --parent-started CREATE_TIME] [--force]

The child holds the model's cross-session merge lock (``--lock``) for its whole life, so one
merge of a model runs at a time; once it holds it, it removes what killed merges left, and merges
only if the merge is still needed (unless ``--force``). It ends, cleaning up, when the session
that started it (``--parent``, with its create time) is gone, also after a SIGKILL of it. It
saves into a temporary folder next to ``OUT_DIR``, writes the record file
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
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from sage_lsp.backends.base import BackendError, ErrorKind
from sage_lsp.processes import create_time, is_alive, stop_group
from sage_lsp.services import logfile
from sage_lsp.services.store import MERGE_RECORD, FinetunedModel

FAILED = "merge failed: "
"""Prefix of the one line a failing child prints to stderr."""
UP_TO_DATE = "merge not needed: "
"""Prefix of the line a child prints when, once it holds the lock, the merge is up to date."""
MERGE_TIMEOUT_SECONDS = 1800.0
"""How long a merge child may run before its process group is killed."""
POLL_SECONDS = 0.2
"""How often a parent waiting for a merge (or its lock) looks whether it was asked to stop."""
STOP_GRACE_SECONDS = 2.0
"""How long a stopped child gets to clean up after SIGTERM before SIGKILL."""
PARENT_POLL_SECONDS = 0.5
"""How often the child looks whether the session that started it is still there."""
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


def merge_current(adapter: Path, merged_dir: Path) -> bool:
    """Whether ``merged_dir`` is a complete merge of ``adapter`` as it is now: it has
    ``config.json`` and our record, and the record's fingerprint is the adapter's."""
    if not (merged_dir / "config.json").is_file():
        return False
    record = read_merge_record(merged_dir)
    return record is not None and record.get("fingerprint") == adapter_fingerprint(adapter)


def merge_needed(model: FinetunedModel) -> bool:
    """Whether ``model`` must be merged before it can be served merged: it has an adapter and
    ``merged_model/`` is missing, incomplete, not ours, or merged from a different adapter."""
    source = model.adapter_source()
    return source is not None and not merge_current(source, model.merged_dir)


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


def _temp_prefixes(out_dir: Path) -> tuple[str, str]:
    """Names of a child's temporary folder and of the output it set aside, less its pid."""
    return f".{out_dir.name}.tmp-", f".{out_dir.name}.old-"


def _temp_dirs(out_dir: Path, pid: int) -> tuple[Path, Path]:
    """The child's temporary folder and the place the previous output is moved aside to."""
    tmp, old = _temp_prefixes(out_dir)
    return out_dir.parent / f"{tmp}{pid}", out_dir.parent / f"{old}{pid}"


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


def merge_stopped(name: str) -> BackendError:
    """The error of a merge (or a wait for one) that its session stopped."""
    return BackendError(
        ErrorKind.INTERRUPTED,
        f"the merge of {name!r} was stopped",
        "it starts again the next time the model is used",
    )


@contextlib.contextmanager
def merge_lock(
    path: Path,
    name: str,
    stop: threading.Event | None = None,
    on_wait: Callable[[], None] | None = None,
) -> Iterator[None]:
    """Hold ``path``, the cross-session merge lock of model ``name``, waiting while another
    merge of it runs (``on_wait`` is called once if it has to wait). Setting ``stop`` ends the
    wait with :func:`merge_stopped`."""
    from filelock import FileLock, Timeout  # the child may run in a Python without it installed

    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    lock = FileLock(str(path), mode=0o600)
    waiting = False
    while True:
        try:
            lock.acquire(timeout=POLL_SECONDS if waiting else 0)
            break
        except Timeout:
            if stop is not None and stop.is_set():
                raise merge_stopped(name) from None
            if not waiting and on_wait is not None:
                on_wait()
            waiting = True
    try:
        yield
    finally:
        lock.release()


def _read_run_log(log_path: Path, offset: int) -> list[str]:
    """The lines written to the log from ``offset`` on (this run's part)."""
    try:
        with log_path.open("rb") as handle:
            handle.seek(offset)
            data = handle.read()
    except OSError:
        return []
    return data.decode("utf-8", errors="replace").splitlines()


def _sources(model: FinetunedModel, log_path: Path) -> tuple[Path, str]:
    """The adapter to merge and the base as the child gets it; a MergeError if either is
    missing."""
    adapter = model.adapter_source()
    if adapter is None:
        raise MergeError(
            ErrorKind.SERVER,
            f"merge failed: model {model.name!r} has no adapter to merge (no lora_weights/ and "
            f"no checkpoints/checkpoint-*/ with adapter_config.json in {model.path})",
            "finetune the model first",
            log_path=log_path,
        )
    if model.base_model is None:
        raise MergeError(
            ErrorKind.SERVER,
            f"merge failed: {model.path / 'finetune_meta.json'} does not name the base model "
            '(its "model" key is missing or empty)',
            'set "model" in finetune_meta.json to the base model\'s hub id or local path',
            log_path=log_path,
            details={"name": model.name},
        )
    return adapter, resolve_base(model, model.base_model)


class _Child:
    """A running merge child: its process (pid recorded with its create time), where it
    writes, and this run's part of the log."""

    def __init__(self, model: FinetunedModel, args: list[str], log_path: Path) -> None:
        self.name = model.name
        self.out_dir = model.merged_dir
        self.log_path = log_path
        logfile.cap(log_path)
        with logfile.open_log(log_path) as log:
            self.offset = log.tell()
            stamp = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
            log.write(f"=== merge {self.name} at {stamp}: {' '.join(args)}\n".encode())
            log.flush()
            try:
                self.proc = subprocess.Popen(
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
                    f"merge failed: cannot run the merge Python {args[0]}: {exc.strerror or exc}",
                    "set SAGE_MERGE_PYTHON to a Python that has sage-lsp[merge] installed",
                    log_path=log_path,
                ) from exc
        self.created = create_time(self.proc.pid)

    def wait(self, timeout: float, stop: threading.Event | None) -> int:
        """The child's exit status. Raises :class:`subprocess.TimeoutExpired` after
        ``timeout`` seconds and :func:`merge_stopped` once ``stop`` is set."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self.proc.wait(timeout=POLL_SECONDS)
            except subprocess.TimeoutExpired:
                if stop is not None and stop.is_set():
                    raise merge_stopped(self.name) from None
                if time.monotonic() >= deadline:
                    raise

    def kill(self, grace: float) -> None:
        """Stop the child's process group (SIGTERM, SIGKILL after ``grace`` seconds) and
        remove what it left."""
        stop_group(self.proc.pid, grace, leader_create_time=self.created)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=30)
        _clean_after(self.out_dir, self.proc.pid)

    def lines(self) -> list[str]:
        """What this run wrote to the log."""
        return _read_run_log(self.log_path, self.offset)

    def failure(self, code: int, python: str) -> MergeError:
        """The error of a child that exited with ``code`` (not 0)."""
        lines = self.lines()
        failed = [line.strip() for line in lines if line.startswith(FAILED)]
        if failed:
            message = failed[-1]
        elif code < 0:
            message = f"merge failed (killed by signal {-code})"
        else:
            message = f"merge failed (exit {code})"
        missing_extra = " is not installed in " in message
        hint = (
            f"install sage-lsp[merge] into {python}, or set SAGE_MERGE_PYTHON; log: {self.log_path}"
            if missing_extra
            else f"see {self.log_path}"
        )
        return MergeError(
            ErrorKind.CONFIG if missing_extra else ErrorKind.SERVER,
            message,
            hint,
            log_path=self.log_path,
            log_tail=lines[-LOG_TAIL_LINES:],
            exit_code=code,
        )


def run_merge(
    model: FinetunedModel,
    python: str,
    log_path: Path,
    *,
    lock_path: Path,
    timeout: float = MERGE_TIMEOUT_SECONDS,
    force: bool = False,
    stop: threading.Event | None = None,
) -> bool:
    """Merge ``model``'s adapter into its base, writing ``merged_model/``, in a child process
    run with ``python`` (which needs the ``merge`` extra). Returns False when the child, once
    it held the merge lock, found the merge up to date (another session did it; not with
    ``force``).

    The child holds the cross-session merge lock ``lock_path`` for its whole life and ends
    when this process does. Its output is appended to ``log_path`` (0600, rotated when over
    10 MB). Raises :class:`MergeError` when the merge fails or takes longer than ``timeout``
    seconds, and :func:`merge_stopped` once ``stop`` is set; the child's whole process group
    is stopped first."""
    adapter, base = _sources(model, log_path)
    args = [
        python, "-m", MERGE_MODULE, "--base", base, "--adapter", str(adapter),
        "--output", str(model.merged_dir), "--lock", str(lock_path),
        "--parent", str(os.getpid()), "--parent-started", repr(create_time(os.getpid())),
    ]  # fmt: skip
    if force:
        args.append("--force")
    child = _Child(model, args, log_path)
    try:
        code = child.wait(timeout, stop)
    except subprocess.TimeoutExpired:
        child.kill(grace=5.0)
        raise MergeError(
            ErrorKind.TIMEOUT,
            f"merge failed: merging {model.name!r} took longer than {timeout:g} s and was stopped",
            f"see {log_path}; a larger timeout may help for big models",
            log_path=log_path,
            log_tail=child.lines()[-LOG_TAIL_LINES:],
        ) from None
    except BaseException:  # stopped, or Ctrl-C in `sage finetune merge`
        child.kill(grace=STOP_GRACE_SECONDS)
        raise
    if code != 0:
        _clean_after(model.merged_dir, child.proc.pid)
        raise child.failure(code, python)
    lines = child.lines()
    if any(line.startswith(UP_TO_DATE) for line in lines):
        return False
    if read_merge_record(model.merged_dir) is None:
        raise MergeError(
            ErrorKind.SERVER,
            f"merge failed: the merge exited 0 but {model.merged_dir / MERGE_RECORD} is missing",
            f"see {log_path}",
            log_path=log_path,
            log_tail=lines[-LOG_TAIL_LINES:],
            exit_code=code,
        )
    return True


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
        if not session_alive():  # nobody waits for it: stop as the watcher would
            raise KeyboardInterrupt
        _swap_into_place(tmp, output, old)
    except BaseException:  # also a stop in mid-swap: the previous output is put back
        _clean_after(output, os.getpid())
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


def _clean_leftovers(output: Path) -> None:
    """Remove what killed merges of ``output`` left: their temporary folders, and copies of
    the output set aside in mid-swap (the newest one is put back first when ``output`` is
    missing). Called under the merge lock, so none of those merges still runs."""
    if not output.parent.is_dir():
        return
    tmp_prefix, old_prefix = _temp_prefixes(output)
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
        _clean_after(output, os.getpid())
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
