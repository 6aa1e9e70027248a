"""pytest-lsp fixtures: a real ``python -m sage_lsp`` subprocess and a client that records the
``sage/*`` notifications it receives."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities
from pytest_lsp.client import make_test_lsp_client

from sage_lsp import protocol

SERVER = [sys.executable, "-m", "sage_lsp"]


class Recorder:
    """What the server sent: chunks, status changes (as plain dicts)."""

    def __init__(self) -> None:
        self.chunks: list[dict[str, Any]] = []
        self.status: list[dict[str, Any]] = []


def as_dict(value: Any) -> Any:
    """pygls hands custom params over as namedtuples; make them plain data."""
    if hasattr(value, "_asdict"):
        return {k: as_dict(v) for k, v in value._asdict().items()}
    if isinstance(value, dict):
        return {k: as_dict(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [as_dict(v) for v in value]
    return value


def make_client() -> LanguageClient:
    client = make_test_lsp_client()
    record = Recorder()
    client.record = record  # type: ignore[attr-defined]

    @client.feature(protocol.CHAT_CHUNK)
    def on_chunk(params: Any) -> None:
        record.chunks.append(as_dict(params))

    @client.feature(protocol.STATUS_DID_CHANGE)
    def on_status(params: Any) -> None:
        record.status.append(as_dict(params))

    return client


CONFIG = ClientServerConfig(server_command=SERVER, client_factory=make_client)


async def request(client: LanguageClient, method: str, params: Any = None) -> Any:
    """Send a ``sage/*`` request and return its result as plain data."""
    return as_dict(await client.protocol.send_request_async(method, params))


def chunks_of(client: LanguageClient, chat_id: str, turn: int) -> list[dict[str, Any]]:
    record: Recorder = client.record  # type: ignore[attr-defined]
    return [c for c in record.chunks if c["chatId"] == chat_id and c["turn"] == turn]


@pytest_lsp.fixture(config=CONFIG)
async def client(lsp_client: LanguageClient) -> AsyncIterator[None]:
    """A mock-backend session, initialized like VS Code would (with workspace/configuration)."""
    lsp_client.set_configuration({"backend": "mock"}, section="sage")
    lsp_client.init_result = await lsp_client.initialize_session(  # type: ignore[attr-defined]
        types.InitializeParams(
            capabilities=client_capabilities("visual-studio-code"),
            initialization_options={"backend": "mock"},
        )
    )
    yield
    await lsp_client.shutdown_session()


@pytest_lsp.fixture(config=CONFIG)
async def pulling_client(lsp_client: LanguageClient) -> AsyncIterator[None]:
    """A session whose editor settings (pulled with workspace/configuration) differ from its
    initializationOptions."""
    lsp_client.set_configuration(
        {"backend": "vllm", "baseUrl": "http://127.0.0.1:9/v1", "topK": 99}, section="sage"
    )
    await lsp_client.initialize_session(
        types.InitializeParams(
            capabilities=client_capabilities("visual-studio-code"),
            initialization_options={"backend": "mock"},
        )
    )
    yield
    await lsp_client.shutdown_session()
