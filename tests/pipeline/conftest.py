"""The pipeline tests use the language-server tests' pytest-lsp session (``client``)."""

from tests.lsp.conftest import client  # noqa: F401 - re-exported fixture
