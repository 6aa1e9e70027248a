"""Shared fixtures: an isolated SAGE_HOME and the in-test OpenAI-compatible server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sage_lsp.config import SPECS
from tests.support.openai_server import OpenAIServer

SAGE_ENV_VARS = (*(var for spec in SPECS for var in spec.env), "OPENAI_API_KEY")


@pytest.fixture(autouse=True)
def sage_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own SAGE_HOME, no SAGE settings from the developer's environment, and
    retrieval off unless it asks for an index."""
    for var in SAGE_ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    home = tmp_path / "sage-home"
    home.mkdir()
    monkeypatch.setenv("SAGE_HOME", str(home))
    monkeypatch.setenv("SAGE_INDEX", "none")  # retrieval only where a test asks for it
    return home


@pytest.fixture
def openai_server() -> Iterator[OpenAIServer]:
    """A running OpenAI-compatible server serving one model, ``tiny-model``."""
    with OpenAIServer() as server:
        yield server
