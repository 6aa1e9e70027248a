"""The gateway's Prometheus metrics (``GET /metrics``), in a registry of its own, followed by
each running service's own (vLLM's ``/metrics``) with a ``model`` label."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

import aiohttp
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from sage_lsp.gateway.upstream import service_get
from sage_lsp.services.registry import ServiceEntry

SCRAPE_SECONDS = 2.0
"""How long ``/metrics`` waits for a service's own metrics; a slower service is left out."""

TTFT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


class GatewayMetrics:
    """The contract's metrics: requests by model and status, time to first token, generated
    tokens, and whether each model's service is up."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "sage_requests", "Requests by model and HTTP status.", ["model", "status"],
            registry=self.registry,
        )  # fmt: skip
        self.ttft = Histogram(
            "sage_time_to_first_token_seconds",
            "Seconds from a request to its first streamed chunk (or its answer), by model.",
            ["model"], buckets=TTFT_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.tokens = Counter(
            "sage_generated_tokens",
            "Generated tokens by model (the usage, else the streamed chunks with text).",
            ["model"], registry=self.registry,
        )  # fmt: skip
        self.service_up = Gauge(
            "sage_service_up", "1 while the model's service is ready, else 0.", ["model"],
            registry=self.registry,
        )  # fmt: skip

    def render(self, up: dict[str, bool], services: dict[str, str]) -> bytes:
        """The Prometheus text, with ``sage_service_up`` set from ``up`` (model -> ready),
        then the services' own metrics (model -> their text), each sample labelled with its
        model."""
        self.service_up.clear()
        for model, ready in up.items():
            self.service_up.labels(model=model).set(1 if ready else 0)
        relayed = CollectorRegistry()
        relayed.register(Relabelled(services))
        return generate_latest(self.registry) + generate_latest(relayed)


class Relabelled(Collector):
    """The services' metrics as one set of families: a family that several services report
    holds the samples of each, told apart by their ``model`` label."""

    def __init__(self, texts: dict[str, str]) -> None:
        self.texts = texts

    def collect(self) -> Iterable[Metric]:
        """Each family once, with every service's samples."""
        families: dict[str, Metric] = {}
        for model, text in self.texts.items():
            try:
                parsed = list(text_string_to_metric_families(text))
            except ValueError:  # not Prometheus text: that service's metrics are left out
                continue
            for family in parsed:
                merged = families.setdefault(
                    family.name, Metric(family.name, family.documentation, family.type)
                )
                if merged.type != family.type:
                    continue
                for sample in family.samples:
                    labels = {**sample.labels, "model": model}
                    merged.add_sample(
                        sample.name, labels, sample.value, sample.timestamp, sample.exemplar
                    )
        return families.values()


async def scrape(client: aiohttp.ClientSession, services: list[ServiceEntry]) -> dict[str, str]:
    """The ``/metrics`` text of each ready service that answers within
    :data:`SCRAPE_SECONDS`, by service name."""

    async def one(entry: ServiceEntry) -> str | None:
        answer = await service_get(client, entry, "/metrics", SCRAPE_SECONDS)
        return answer.decode("utf-8", "replace") if answer is not None else None

    ready = [entry for entry in services if entry.state == "ready"]
    texts = await asyncio.gather(*(one(entry) for entry in ready))
    return {entry.name: text for entry, text in zip(ready, texts, strict=True) if text}
