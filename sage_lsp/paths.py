"""Where sage-lsp keeps its files: ``SAGE_HOME`` (``~/.sage`` by default) and what lives under it.

The layout is SAGE's, so models finetuned with SAGE are found where SAGE put them::

    $SAGE_HOME/config.toml                 settings (see docs/configuration.md)
    $SAGE_HOME/chat_history                the REPL's line-editing history
    $SAGE_HOME/logs/                       logs of sage-lsp itself
    $SAGE_HOME/cache/chat/                 retrieval indexes
    $SAGE_HOME/finetune_output/<name>/     finetuned models
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

SAGE_HOME_ENV = "SAGE_HOME"


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
    def logs_dir(self) -> Path:
        """Logs written by sage-lsp itself."""
        return self.home / "logs"

    @property
    def run_dir(self) -> Path:
        """The registry of running model services and its locks."""
        return self.home / "run"
