"""Logging of the language server: a file under ``$SAGE_HOME/logs/`` (mode 0600, rotated) and
``window/logMessage``."""

from __future__ import annotations

import io
import logging
import logging.handlers
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lsprotocol import types

from sage_lsp.paths import create_private_file, make_private_dir

LOGGER = "sage_lsp"
"""Only this logger's records go to the editor (pygls logs every message it sends)."""

_MESSAGE_TYPES = {
    logging.ERROR: types.MessageType.Error,
    logging.WARNING: types.MessageType.Warning,
    logging.INFO: types.MessageType.Info,
    logging.DEBUG: types.MessageType.Log,
}


class EditorLogHandler(logging.Handler):
    """Sends log records to the editor as ``window/logMessage``, from a configurable level."""

    def __init__(self, notify: Callable[[str, Any], None], level_name: str) -> None:
        super().__init__()
        self._notify = notify
        self._sending = False
        self.set_level_name(level_name)

    def set_level_name(self, level_name: str) -> None:
        """Set the lowest level sent: ``error``, ``warning``, ``info`` or ``debug``."""
        self.setLevel(logging.getLevelName(level_name.upper()))

    def emit(self, record: logging.LogRecord) -> None:
        """Send one record (never from inside a send, which would loop)."""
        if self._sending:
            return
        self._sending = True
        try:
            kind = _MESSAGE_TYPES.get(record.levelno, types.MessageType.Log)
            self._notify(
                types.WINDOW_LOG_MESSAGE, {"type": kind.value, "message": self.format(record)}
            )
        except Exception:
            self.handleError(record)
        finally:
            self._sending = False


class PrivateRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """A rotating log whose files are private to the user (0600) whatever the umask: each
    new file, the first one and the one begun after a rotation, is created with that mode."""

    def _open(self) -> io.TextIOWrapper:
        create_private_file(Path(self.baseFilename))
        return super()._open()


def setup_logging(logs_dir: Path, editor: EditorLogHandler) -> Path:
    """Log everything at INFO and above to ``logs_dir/lsp.log``, ``sage_lsp`` also to the editor.

    Returns the log file's path. If the folder cannot be made, the file log is skipped.
    """
    path = logs_dir / "lsp.log"
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    logging.getLogger("pygls").setLevel(logging.WARNING)
    try:
        make_private_dir(logs_dir)
        handler = PrivateRotatingFileHandler(
            path, maxBytes=5_000_000, backupCount=3, encoding="utf-8"
        )
    except OSError:
        pass
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s")
        )
        root.addHandler(handler)
    logging.getLogger(LOGGER).addHandler(editor)
    return path
