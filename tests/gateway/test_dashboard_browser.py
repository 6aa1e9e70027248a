"""The dashboard in Debian's Chromium (playwright-core from the VS Code extension, driven by
dashboard_browser.mjs), against an in-process gateway: in front of the fake vLLM, and in front
of a real vLLM serving the tiny model.

What a user does and sees: a wrong key is refused with a message and the key is asked for; the
model is listed, Start makes it ready with its port, a chat request shows in the recent requests
with its TTFT, the service's log tail opens, Stop stops it."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.gateway.conftest import FAKE_MODEL, RunningGateway

pytestmark = pytest.mark.slow

Start = Callable[..., RunningGateway]

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
SCRIPT = HERE / "dashboard_browser.mjs"
CHROMIUM = Path("/usr/bin/chromium")
PLAYWRIGHT = REPO / "editors" / "vscode" / "node_modules" / "playwright-core"
ARTIFACTS = REPO / "test-artifacts" / "dashboard"


@pytest.fixture(scope="module")
def node() -> str:
    """Node (the one the extension's tests use, on PATH) with playwright-core and Chromium;
    skips without them (fails with SAGE_REQUIRE_ALL=1)."""
    found = shutil.which("node")
    problem = (
        "node is missing" if found is None
        else f"{CHROMIUM} is missing (make browser)" if not CHROMIUM.exists()
        else f"{PLAYWRIGHT} is missing (make vscode)" if not PLAYWRIGHT.is_dir()
        else None
    )  # fmt: skip
    if problem is not None or found is None:
        if os.environ.get("SAGE_REQUIRE_ALL") == "1":
            pytest.fail(str(problem))
        pytest.skip(str(problem))
    return found


def drive(node: str, running: RunningGateway, model: str, start_seconds: float) -> dict[str, Any]:
    """Run the browser scenario against ``running``; what the page showed."""
    options = {
        "url": running.url,
        "key": running.gateway.key,
        "model": model,
        "startSeconds": start_seconds,
        "artifacts": str(ARTIFACTS),
    }
    done = subprocess.run(
        [node, str(SCRIPT), json.dumps(options)],
        capture_output=True,
        text=True,
        timeout=start_seconds + 180,
        check=False,
    )
    lines = done.stdout.strip().splitlines()
    seen: dict[str, Any] = json.loads(lines[-1]) if lines else {}
    assert done.returncode == 0, f"{done.stderr[-3000:]}\nseen so far: {seen}"
    return seen


def check_seen(seen: dict[str, Any]) -> None:
    """What every run of the scenario must have shown."""
    assert "refused" in seen["wrongKeyMessage"] and "invalid_api_key" not in seen["wrongKeyMessage"]
    assert "Incorrect API key" in seen["wrongKeyMessage"]
    assert seen["keyFormShown"] and seen["mainHiddenOnWrongKey"] and seen["keyFormHidden"]
    assert seen["fragmentKept"] == "" and seen["fragmentAfterLoad"] == ""  # the key leaves the URL
    assert seen["initialState"] == "stopped" and seen["startedState"] == "ready"
    assert seen["port"] == seen["servicePort"] and int(seen["port"]) >= 1024
    assert seen["holders"] == "this gateway" and re.fullmatch(r"\d+ (s|min \d+ s)", seen["uptime"])
    assert seen["chatStatus"] == 200 and seen["requestStatus"] == "200"
    assert re.fullmatch(r"\d+ ms|\d+\.\d+ s", seen["requestTtft"]), seen["requestTtft"]
    assert int(seen["requestTokens"]) > 0 and float(seen["requestRate"]) > 0
    assert seen["chartLine"].count(",") == 60  # one point per 5 s of the last 5 minutes
    assert seen["stoppedState"] == "stopped" and seen["servicesAfterStop"] == 0
    assert seen["noticeAfterStop"] == ""
    # the last lines read stay (those of the stop included, if a refresh caught them)
    assert "has no service" in seen["logPathAfterStop"]
    assert seen["log"].splitlines()[-1] in seen["logAfterStop"]


@pytest.mark.usefixtures("fake_vllm")
def test_dashboard_in_chromium(node: str, start_gateway: Start) -> None:
    running = start_gateway()
    seen = drive(node, running, FAKE_MODEL, 30)
    check_seen(seen)
    assert "fake vllm: serving" in seen["log"] and seen["logName"] == FAKE_MODEL
    assert int(seen["requestTokens"]) == 40  # the fake streams 40 tokens, max_tokens or not


@pytest.mark.vllm
def test_dashboard_in_chromium_on_a_real_vllm(
    node: str, real_env: str, start_gateway: Start
) -> None:
    running = start_gateway(startup_timeout=300)
    seen = drive(node, running, real_env, 300)
    check_seen(seen)
    assert "Uvicorn running" in seen["log"] or "Application startup complete" in seen["log"]
    assert 0 < int(seen["requestTokens"]) <= 8
