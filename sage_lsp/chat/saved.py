"""Conversations kept on disk, so that an editor's conversation outlives its server process.

An editor window reload ends ``sage lsp`` and starts a new one; the editor keeps the chat id
and asks the new server to go on with it. Each conversation is one private JSON file under
``SAGE_HOME/chats/`` (folder 0700, files 0600), written after each turn and removed by
``sage/chat/reset``; only the newest :data:`KEEP` files are kept.
"""

from __future__ import annotations

import contextlib
import json
import re
from pathlib import Path
from typing import Any

from sage_lsp.chat.conversation import Conversation, Turn
from sage_lsp.paths import write_private_text

KEEP = 200
"""How many conversations are kept; the least recently written go first."""

_SAFE_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


class SavedConversations:
    """The conversations of one ``SAGE_HOME``, a file each, named by chat id."""

    def __init__(self, folder: Path, keep: int = KEEP) -> None:
        self.folder = folder
        self.keep = keep

    def _file(self, chat_id: str) -> Path | None:
        """The file of ``chat_id``; None for an id that cannot name a file safely."""
        return self.folder / f"{chat_id}.json" if _SAFE_ID.fullmatch(chat_id) else None

    def save(self, conversation: Conversation) -> None:
        """Write ``conversation``'s turns (an empty one removes its file); never raises on I/O."""
        path = self._file(conversation.chat_id)
        if path is None:
            return
        if not conversation.turns:
            self.forget(conversation.chat_id)
            return
        turns = [
            {"user": t.user, "assistant": t.assistant, "complete": t.complete}
            for t in conversation.turns
        ]
        with contextlib.suppress(OSError):
            write_private_text(path, json.dumps({"chatId": conversation.chat_id, "turns": turns}))
            self._prune()

    def load(self, chat_id: str) -> list[Turn] | None:
        """The saved turns of ``chat_id``; None when there are none or the file is unreadable."""
        path = self._file(chat_id)
        if path is None:
            return None
        try:
            data: Any = json.loads(path.read_text(encoding="utf-8"))
            return [
                Turn(str(t["user"]), str(t["assistant"]), bool(t["complete"]))
                for t in data["turns"]
            ]
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def forget(self, chat_id: str) -> None:
        """Remove ``chat_id``'s file, if there is one."""
        path = self._file(chat_id)
        if path is not None:
            with contextlib.suppress(OSError):
                path.unlink(missing_ok=True)

    def _prune(self) -> None:
        """Remove all but the :attr:`keep` most recently written files."""
        files = sorted(self.folder.glob("*.json"), key=_mtime, reverse=True)
        for old in files[self.keep :]:
            with contextlib.suppress(OSError):
                old.unlink()


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0
