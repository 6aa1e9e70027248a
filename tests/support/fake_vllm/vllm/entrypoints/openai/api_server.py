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
that logs its secrets); ``FAKE_VLLM_SPAM_BYTES=N`` prints N bytes of output once serving.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.support.openai_server import OpenAIServer, Reply, _Handler


class SlowModelsHandler(_Handler):
    """Answers ``/v1/models`` late while the slow flag file exists."""

    def do_GET(self) -> None:
        flag = os.environ.get("FAKE_VLLM_SLOW_FLAG")
        if self.path.rstrip("/") == "/v1/models" and flag and Path(flag).exists():
            time.sleep(float(os.environ.get("FAKE_VLLM_SLOW_SECONDS", "4")))
        super().do_GET()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--served-model-name", default=None)
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--api-key", default=None)
    parser.add_argument("--lora-modules", nargs="*", default=[])
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
    names = [args.served_model_name or args.model]
    names += [module.split("=", 1)[0] for module in args.lora_modules]
    if mode == "wrong-name":
        names = ["some-other-model"]
    server = OpenAIServer(models=names, api_key=api_key, port=args.port)
    server._httpd.RequestHandlerClass = SlowModelsHandler
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
