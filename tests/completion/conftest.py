"""The in-process server of tests/server for the completion tests."""

from tests.server.conftest import fresh, server

__all__ = ["fresh", "server"]
