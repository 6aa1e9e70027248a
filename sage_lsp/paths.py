"""Where sage-lsp keeps its files: ``SAGE_HOME`` (``~/.sage`` by default) and what lives under it.

The layout is SAGE's, so models finetuned with SAGE are found where SAGE put them::

    $SAGE_HOME/config.toml                 settings (see docs/configuration.md)
    $SAGE_HOME/chat_history                the REPL's line-editing history
    $SAGE_HOME/logs/                       logs of sage-lsp itself
    $SAGE_HOME/cache/chat/                 retrieval indexes
    $SAGE_HOME/finetune_output/<name>/     finetuned models

What sage-lsp creates there is private to the user (folders 0700, files 0600) whatever the
umask: each entry point calls :func:`private_umask` first (the supervisor, vLLM and the merge
child inherit it), and the files written through this module get those modes explicitly. What
the user put there is left as it is; a file the user asks for elsewhere is written under
:func:`users_umask`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

SAGE_HOME_ENV = "SAGE_HOME"
PRIVATE_UMASK = 0o077
"""Bits no file or folder sage-lsp creates gives to the group or to others."""


_STARTED_WITH: list[int] = []
"""The umask the process had before :func:`private_umask` (empty until it is called)."""


def private_umask() -> int:
    """Make what this process and its children create private to the user (the process umask
    gains :data:`PRIVATE_UMASK`); returns the umask it had. Entry points call it first."""
    previous = os.umask(PRIVATE_UMASK)
    os.umask(previous | PRIVATE_UMASK)
    if not _STARTED_WITH:  # called again (``sage lsp`` runs the server's main): keep the first
        _STARTED_WITH.append(previous)
    return previous


@contextlib.contextmanager
def users_umask() -> Iterator[None]:
    """Create files with the umask the process started with, for a file the user asked for
    outside ``$SAGE_HOME`` (``sage pipeline build --output``). Not for threaded code: the umask
    belongs to the whole process."""
    if not _STARTED_WITH:
        yield
        return
    private = os.umask(_STARTED_WITH[0])
    try:
        yield
    finally:
        os.umask(private)


def make_private_dir(path: Path) -> Path:
    """Create ``path`` and its missing parents, each with mode 0700; folders that exist are
    left as they are."""
    missing: list[Path] = []
    folder = path
    while not os.path.lexists(folder):
        missing.append(folder)
        folder = folder.parent
    for folder in reversed(missing):
        with contextlib.suppress(FileExistsError):  # another process made it first
            folder.mkdir(mode=0o700)
    return path


def create_private_file(path: Path) -> Path:
    """Create ``path`` empty with mode 0600 (its folders 0700) unless it exists, so that the
    library that opens it next (prompt_toolkit's history, logging, SQLite) finds a private file."""
    make_private_dir(path.parent)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))
    return path


def write_private_text(path: Path, text: str) -> None:
    """Replace ``path`` at once with ``text`` (UTF-8) in a new file of mode 0600."""
    import tempfile  # not at the language server's start-up (it brings shutil, bz2, random)

    make_private_dir(path.parent)
    out = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed below, removed on failure
        "w", encoding="utf-8", dir=path.parent, prefix=f".{path.name}.", delete=False
    )  # mkstemp: mode 0600, a fresh name for each writer
    try:
        with out:
            out.write(text)
        Path(out.name).replace(path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(out.name)
        raise


def default_sage_home() -> Path:
    """Return ``$SAGE_HOME`` if set, else ``~/.sage``."""
    env = os.environ.get(SAGE_HOME_ENV)
    return Path(env).expanduser() if env else Path.home() / ".sage"


@dataclass(frozen=True)
class SagePaths:
    """The files and folders under one ``SAGE_HOME``."""

    home: Path

    @property
    def config_file(self) -> Path:
        """The user's settings file."""
        return self.home / "config.toml"

    @property
    def chat_history_file(self) -> Path:
        """Line-editing history of the ``sage chat`` REPL."""
        return self.home / "chat_history"

    @property
    def chats_dir(self) -> Path:
        """The editors' conversations, kept so that a new server process goes on with them."""
        return self.home / "chats"

    @property
    def logs_dir(self) -> Path:
        """Logs written by sage-lsp itself."""
        return self.home / "logs"

    @property
    def run_dir(self) -> Path:
        """The registry of running model services and its locks."""
        return self.home / "run"
