"""Conversations kept on disk: what a new server process finds of an editor's conversation."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from sage_lsp.chat.conversation import Conversation, Turn
from sage_lsp.chat.saved import SavedConversations


def _conversation(chat_id: str, *answers: str) -> Conversation:
    conversation = Conversation("be brief", chat_id=chat_id)
    conversation.turns = [Turn(f"question {n}", a, complete=True) for n, a in enumerate(answers)]
    return conversation


def test_a_saved_conversation_comes_back_with_its_turns(tmp_path: Path) -> None:
    saved = SavedConversations(tmp_path / "chats")
    conversation = _conversation("abc123", "one", "two")
    conversation.turns.append(Turn("stopped here", "half an ans", complete=False))
    saved.save(conversation)
    assert SavedConversations(tmp_path / "chats").load("abc123") == conversation.turns


def test_the_files_are_private(tmp_path: Path) -> None:
    saved = SavedConversations(tmp_path / "chats")
    saved.save(_conversation("abc123", "one"))
    assert stat.S_IMODE(os.stat(tmp_path / "chats").st_mode) == 0o700
    assert stat.S_IMODE(os.stat(tmp_path / "chats" / "abc123.json").st_mode) == 0o600


def test_an_unknown_or_unsafe_id_has_nothing_and_writes_nothing(tmp_path: Path) -> None:
    saved = SavedConversations(tmp_path / "chats")
    assert saved.load("never-seen") is None
    for unsafe in ("../escape", "a/b", "", "x" * 65, "dot.json"):
        saved.save(_conversation(unsafe, "one"))
        assert saved.load(unsafe) is None
    assert not (tmp_path / "escape.json").exists()
    assert not any(tmp_path.rglob("*.json"))


def test_forget_and_an_empty_conversation_remove_the_file(tmp_path: Path) -> None:
    saved = SavedConversations(tmp_path / "chats")
    saved.save(_conversation("abc", "one"))
    saved.forget("abc")
    assert saved.load("abc") is None
    saved.save(_conversation("def", "one"))
    saved.save(_conversation("def"))
    assert saved.load("def") is None


def test_a_damaged_file_reads_as_no_conversation(tmp_path: Path) -> None:
    folder = tmp_path / "chats"
    folder.mkdir()
    (folder / "abc.json").write_text('{"turns": [{"user": "q"}]}')
    (folder / "def.json").write_text("not json")
    saved = SavedConversations(folder)
    assert saved.load("abc") is None
    assert saved.load("def") is None


def test_only_the_newest_conversations_are_kept(tmp_path: Path) -> None:
    saved = SavedConversations(tmp_path / "chats", keep=3)
    for n in range(5):
        saved.save(_conversation(f"c{n}", "answer"))
        os.utime(tmp_path / "chats" / f"c{n}.json", (1_000_000 + n, 1_000_000 + n))
    saved.save(_conversation("c5", "answer"))
    kept = sorted(path.stem for path in (tmp_path / "chats").glob("*.json"))
    assert kept == ["c3", "c4", "c5"]
