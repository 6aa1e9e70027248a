"""The in-process server of tests/server, and the vLLM Python and tiny model of
tests/services, for the completion tests."""

from tests.server.conftest import fresh, server
from tests.services.conftest import tiny_build, vllm_python

__all__ = ["fresh", "server", "tiny_build", "vllm_python"]
