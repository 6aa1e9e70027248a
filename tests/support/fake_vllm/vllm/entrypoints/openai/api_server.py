"""A fake ``python -m vllm.entrypoints.openai.api_server`` for fast tests of the manager.

It takes vLLM's arguments, reads its API key from ``VLLM_API_KEY`` when ``--api-key`` is not
given (as vLLM does), prints its arguments at start (as vLLM's "non-default args" line does)
and, like vLLM, leaves a child process in its process group (vLLM's engine core, whose command
line ends with ``fake-vllm-engine``). ``FAKE_VLLM_MODE`` picks its behaviour: ``ok`` (serve
after FAKE_VLLM_DELAY s), ``exit`` (fail at start with exit code 3), ``never`` (never become
ready), ``wrong-name`` (serve another model name), ``die-mid-stream`` (exit while streaming an
answer), ``ignore-term`` (serve, and ignore SIGTERM).

In every mode: ``FAKE_VLLM_TOKEN_DELAY`` (s, default 0.05) paces the streamed tokens; while the
file ``FAKE_VLLM_SLOW_FLAG`` names exists, ``/v1/models`` answers only after
``FAKE_VLLM_SLOW_SECONDS`` (default 4); ``FAKE_VLLM_SHOW_KEY=1`` prints the API key (a server
that logs its secrets); ``FAKE_VLLM_SPAM_BYTES=N`` prints N bytes of output once serving;
``--max-model-len N`` gives the model that context, as tests/support/openai_server.py does it
(reported in ``/v1/models``, counted by ``/tokenize``, a longer prompt refused).

LoRA as vLLM does it: ``--enable-lora``, ``--lora-modules NAME=PATH``, ``--max-lora-rank R``
and ``--max-loras N``; with ``VLLM_ALLOW_RUNTIME_LORA_UPDATING=True``, ``POST
/v1/load_lora_adapter {lora_name, lora_path, load_inplace}`` (refused: an adapter already loaded
without ``load_inplace``, a folder without ``adapter_config.json``, a rank ``r`` above R) and
``/v1/unload_lora_adapter``; adapters are listed in ``/v1/models`` with ``parent`` = the base.
``GET /metrics`` reports ``vllm:num_requests_running`` (streams in progress) and
``vllm:num_requests_waiting``. Admin calls are listed under ``admin`` in ``/_test/requests``
with the number of streams in flight when each came.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tests.support.openai_server import OpenAIServer, Reply, _Handler


@dataclass
class Lora:
    """What the server was started with."""

    base: str = ""
    """The served base's name: the ``parent`` of its adapters."""
    max_rank: int = 16
    """``--max-lora-rank`` (vLLM's default is 16)."""


LORA = Lora()
LORA_ADMIN = ("/v1/load_lora_adapter", "/v1/unload_lora_adapter")


class FakeVllmHandler(_Handler):
    """Answers ``/v1/models`` late while the slow flag file exists; serves ``/metrics`` and
    vLLM's runtime LoRA admin calls."""

    def do_GET(self) -> None:
        flag = os.environ.get("FAKE_VLLM_SLOW_FLAG")
        if self.path.rstrip("/") == "/v1/models" and flag and Path(flag).exists():
            time.sleep(float(os.environ.get("FAKE_VLLM_SLOW_SECONDS", "4")))
        if self.path == "/metrics":
            self._metrics()
            return
        super().do_GET()

    def do_POST(self) -> None:
        if self.path not in LORA_ADMIN:
            super().do_POST()
            return
        owner = self.server.owner
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))) or b"{}")
        running = sum(1 for stream in owner.streams if not stream.done.is_set())
        owner.admin.append({"path": self.path, "body": body, "running": running})
        if not self._authorised():
            return
        if os.environ.get("VLLM_ALLOW_RUNTIME_LORA_UPDATING", "").lower() not in ("true", "1"):
            self._error(404, "Not Found")
            return
        name = str(body.get("lora_name") or "")
        if self.path == "/v1/unload_lora_adapter":
            if name not in owner.parents:
                self._error(404, f"The lora adapter '{name}' cannot be found.", "NotFoundError")
                return
            owner.models.remove(name)
            del owner.parents[name]
            self._text(f"Success: LoRA adapter '{name}' removed successfully.")
            return
        refusal = self._refusal(name, body)
        if refusal is not None:
            self._error(400, refusal, "InvalidUserInput")
            return
        if name not in owner.models:
            owner.models.append(name)
        owner.parents[name] = LORA.base
        self._text(f"Success: LoRA adapter '{name}' added successfully.")

    def _refusal(self, name: str, body: dict[str, object]) -> str | None:
        """Why vLLM would refuse this load, or None."""
        if name in self.server.owner.parents and not body.get("load_inplace"):
            return (
                f"The lora adapter '{name}' has already been loaded. If you want to load the "
                "adapter in place, set 'load_inplace' to True."
            )
        config = Path(str(body.get("lora_path"))) / "adapter_config.json"
        try:
            rank = int(json.loads(config.read_text())["r"])
        except (OSError, ValueError, KeyError, TypeError):
            return f"Loading lora {name} failed: No adapter found for {body.get('lora_path')}"
        if rank > LORA.max_rank:
            return f"LoRA rank {rank} is greater than max_lora_rank {LORA.max_rank}."
        return None

    def _text(self, text: str) -> None:
        data = text.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _metrics(self) -> None:
        running = sum(1 for stream in self.server.owner.streams if not stream.done.is_set())
        label = f'{{engine="0",model_name="{LORA.base}"}}'
        self._text(
            "# TYPE vllm:num_requests_running gauge\n"
            f"vllm:num_requests_running{label} {float(running)}\n"
            "# TYPE vllm:num_requests_waiting gauge\n"
            f"vllm:num_requests_waiting{label} 0.0\n"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--served-model-name", default=None)
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--api-key", default=None)
    parser.add_argument("--lora-modules", nargs="*", default=[])
    parser.add_argument("--enable-lora", action="store_true")
    parser.add_argument("--max-lora-rank", type=int, default=LORA.max_rank)
    parser.add_argument("--max-loras", type=int, default=1)
    parser.add_argument("--max-model-len", type=int, default=None)
    args, unknown = parser.parse_known_args()
    mode = os.environ.get("FAKE_VLLM_MODE", "ok")
    print(f"fake vllm: mode {mode}, args {vars(args)}, extra {unknown}", flush=True)
    api_key = args.api_key or os.environ.get("VLLM_API_KEY") or None
    if os.environ.get("FAKE_VLLM_SHOW_KEY") == "1":
        print(f"fake vllm: api key {api_key}", flush=True)
    # like vLLM's EngineCore: a child in the same process group
    engine = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(600)", "fake-vllm-engine"]
    )
    if mode == "ignore-term":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    time.sleep(float(os.environ.get("FAKE_VLLM_DELAY", "0.5")))
    if mode == "exit":
        print("fake error: the model could not be loaded", flush=True)
        engine.kill()
        sys.exit(3)
    if mode == "never":
        time.sleep(600)
    LORA.base, LORA.max_rank = args.served_model_name or args.model, args.max_lora_rank
    adapters = [module.split("=", 1)[0] for module in args.lora_modules]
    if adapters and not args.enable_lora:
        print("fake error: --lora-modules needs --enable-lora", flush=True)
        engine.kill()
        sys.exit(2)
    names = ["some-other-model"] if mode == "wrong-name" else [LORA.base, *adapters]
    server = OpenAIServer(
        models=names, api_key=api_key, port=args.port, max_model_len=args.max_model_len
    )
    server.parents = dict.fromkeys(adapters, LORA.base)
    server._httpd.RequestHandlerClass = FakeVllmHandler
    tokens = [f"fake{n} " for n in range(40)]
    delay = float(os.environ.get("FAKE_VLLM_TOKEN_DELAY", "0.05"))
    server.reply = Reply(tokens=tokens, delay=delay)
    if mode == "die-mid-stream":
        server.reply = Reply(tokens=tokens, delay=delay, disconnect_after=3)
    print("fake vllm: serving", names, flush=True)
    server.start()
    spam = int(os.environ.get("FAKE_VLLM_SPAM_BYTES", "0"))
    for _ in range(spam // 1000):
        print("x" * 999, flush=False)
    sys.stdout.flush()
    die_after_stream = mode == "die-mid-stream"
    while True:
        time.sleep(0.2)
        if die_after_stream and server.streams and server.streams[-1].done.is_set():
            os._exit(1)


if __name__ == "__main__":
    main()
