"""Asking a model's service (its vLLM) something on the side: its metrics, its models."""

from __future__ import annotations

import asyncio

import aiohttp

from sage_lsp.services.probe import HOST
from sage_lsp.services.registry import ServiceEntry


async def service_get(
    client: aiohttp.ClientSession, entry: ServiceEntry, path: str, timeout: float
) -> bytes | None:
    """The body of ``GET path`` of ``entry``'s service, asked with its key; None unless it
    answers 200 within ``timeout`` seconds."""
    try:
        async with client.get(
            f"http://{HOST}:{entry.port}{path}",
            headers={"Authorization": f"Bearer {entry.api_key}"},
            timeout=aiohttp.ClientTimeout(total=timeout),
        ) as answer:
            return await answer.read() if answer.status == 200 else None
    except (aiohttp.ClientError, asyncio.TimeoutError):
        return None
