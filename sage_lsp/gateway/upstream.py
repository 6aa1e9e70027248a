"""Asking a model's service (its vLLM) something on the side: its metrics, its models."""

from __future__ import annotations

import httpx2

from sage_lsp.services.probe import HOST
from sage_lsp.services.registry import ServiceEntry


async def service_get(
    client: httpx2.AsyncClient, entry: ServiceEntry, path: str, timeout: float
) -> httpx2.Response | None:
    """``GET path`` of ``entry``'s service with its key; None when it does not answer within
    ``timeout`` seconds (or at all)."""
    try:
        return await client.get(
            f"http://{HOST}:{entry.port}{path}",
            headers={"Authorization": f"Bearer {entry.api_key}"},
            timeout=timeout,
        )
    except httpx2.HTTPError:
        return None
