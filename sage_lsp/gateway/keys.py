"""The gateway's API key: created on first start in ``$SAGE_HOME/run/gateway.key`` (0600)."""

from __future__ import annotations

import ipaddress
import secrets
from pathlib import Path

from sage_lsp.paths import write_private_text

KEY_FILE = "gateway.key"


def default_key_path(run_dir: Path) -> Path:
    """Where the gateway keeps its key unless ``--api-key-file`` names one."""
    return run_dir / KEY_FILE


def read_key(path: Path) -> str | None:
    """The key in ``path`` (its first line, stripped), or None if the file is missing or
    empty."""
    try:
        text = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    return text.splitlines()[0].strip() if text else None


def load_or_create_key(path: Path) -> str:
    """The key in ``path``; a missing or empty file gets a new random key (mode 0600)."""
    key = read_key(path)
    if key is None:
        key = "sage-" + secrets.token_urlsafe(32)
        write_private_text(path, key + "\n")
    return key


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address (or ``localhost``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
