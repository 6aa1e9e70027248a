"""`make help` (the default goal) lists every public target of the Makefile with its text."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_a_bare_make_lists_every_phony_target() -> None:
    makefile = (ROOT / "Makefile").read_text()
    [phony] = re.findall(r"^\.PHONY: (.*)$", makefile, re.MULTILINE)
    shown = subprocess.run(
        ["make", "--no-print-directory", "-s"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    listed = {line.split()[0]: line.split(None, 1)[1] for line in shown}
    assert sorted(listed) == sorted(phony.split())
    assert all(text.strip() for text in listed.values())
