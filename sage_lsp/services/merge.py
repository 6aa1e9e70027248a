"""Merging a LoRA adapter into its base model, in a child process: the parent side.

:func:`run_merge` runs the child (:mod:`sage_lsp.services.merge_child`, the only code that imports
torch, transformers or peft) under the model's cross-session merge lock (:func:`merge_lock`) and
turns its failure into a :class:`MergeError`; :func:`merge_needed` and
:func:`adapter_fingerprint` say whether a merge is due. Both sides share the layout of a merge in
progress: a temporary folder next to ``merged_model/``, swapped into place when complete
(:func:`swap_into_place`), and what a merge killed mid-way leaves (:func:`clean_after`). This
module never imports torch, transformers or peft.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

from sage_lsp.core.errors import BackendError, ErrorKind, ServiceFailure
from sage_lsp.processes import create_time, stop_group
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
MERGE_MODULE = "sage_lsp.services.merge_child"
"""The module the child runs (``python -m``)."""


class MergeError(ServiceFailure):
    """A merge that failed, with where its log is and how it ended."""

    def __init__(
        self,
        kind: ErrorKind,
        message: str,
        hint: str = "",
        *,
        log_path: Path,
        log_lines: Sequence[str] = (),
        exit_code: int | None = None,
        details: Mapping[str, object] | None = None,
    ) -> None:
        self.log_tail = list(log_lines[-logfile.LOG_TAIL_LINES :])
        """The last lines this merge wrote to the log (of ``log_lines``, all it wrote)."""
        super().__init__(
            kind,
            message,
            hint,
            {**logfile.failure_details(log_path, self.log_tail, exit_code), **(details or {})},
        )
        self.log_path = log_path
        """The merge log (the child's stdout and stderr, appended)."""
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


def temp_prefixes(out_dir: Path) -> tuple[str, str]:
    """Names of a child's temporary folder and of the output it set aside, less its pid."""
    return f".{out_dir.name}.tmp-", f".{out_dir.name}.old-"


def temp_dirs(out_dir: Path, pid: int) -> tuple[Path, Path]:
    """The child's temporary folder and the place the previous output is moved aside to."""
    tmp, old = temp_prefixes(out_dir)
    return out_dir.parent / f"{tmp}{pid}", out_dir.parent / f"{old}{pid}"


def clean_after(out_dir: Path, pid: int) -> None:
    """Remove what a child ``pid`` that died mid-way left: its temporary folder, and put the
    previous output back if it was moved aside but not replaced (see :func:`swap_into_place`)."""
    tmp, old = temp_dirs(out_dir, pid)
    shutil.rmtree(tmp, ignore_errors=True)
    if old.exists():
        if out_dir.exists():
            shutil.rmtree(old, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                old.rename(out_dir)


def swap_into_place(tmp: Path, output: Path, old: Path) -> None:
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
        clean_after(self.out_dir, self.proc.pid)

    def lines(self) -> list[str]:
        """What this run wrote to the log."""
        return logfile.read_lines(self.log_path, offset=self.offset)

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
            log_lines=lines,
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
            log_lines=child.lines(),
        ) from None
    except BaseException:  # stopped, or Ctrl-C in `sage finetune merge`
        child.kill(grace=STOP_GRACE_SECONDS)
        raise
    if code != 0:
        clean_after(model.merged_dir, child.proc.pid)
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
            log_lines=lines,
            exit_code=code,
        )
    return True
