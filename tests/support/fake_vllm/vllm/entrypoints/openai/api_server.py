"""A fake ``python -m vllm.entrypoints.openai.api_server`` for fast tests of the manager.

It takes vLLM's arguments and, like vLLM, leaves a child process in its process group (vLLM's
engine core). ``FAKE_VLLM_MODE`` picks its behaviour: ``ok`` (serve after FAKE_VLLM_DELAY s),
``exit`` (fail at start with exit code 3), ``never`` (never become ready), ``wrong-name``
(serve another model name), ``die-mid-stream`` (exit while streaming an answer),
``ignore-term`` (serve, and ignore SIGTERM).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time

from tests.support.openai_server import OpenAIServer, Reply


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
    print(f"fake vllm: mode {mode}, model {args.model}, extra {unknown}", flush=True)
    # like vLLM's EngineCore: a child in the same process group
    engine = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
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
    server = OpenAIServer(models=names, api_key=args.api_key, port=args.port)
    tokens = [f"fake{n} " for n in range(40)]
    server.reply = Reply(tokens=tokens, delay=0.05)
    if mode == "die-mid-stream":
        server.reply = Reply(tokens=tokens, delay=0.05, disconnect_after=3)
    print("fake vllm: serving", names, flush=True)
    server.start()
    die_after_stream = mode == "die-mid-stream"
    while True:
        time.sleep(0.2)
        if die_after_stream and server.streams and server.streams[-1].done.is_set():
            os._exit(1)


if __name__ == "__main__":
    main()
