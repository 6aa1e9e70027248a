"""The in-process server of tests/server, and the fake vLLM, the vLLM Python and the tiny model
of tests/services, for the completion tests."""

from tests.server.conftest import fresh, server
from tests.services.conftest import fake_vllm, tiny_build, vllm_python

__all__ = ["fake_vllm", "fresh", "server", "tiny_build", "vllm_python"]
