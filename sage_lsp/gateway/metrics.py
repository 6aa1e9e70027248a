"""The gateway's Prometheus metrics (``GET /metrics``), in a registry of its own."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

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

    def render(self, up: dict[str, bool]) -> bytes:
        """The Prometheus text, with ``sage_service_up`` set from ``up`` (model -> ready)."""
        self.service_up.clear()
        for model, ready in up.items():
            self.service_up.labels(model=model).set(1 if ready else 0)
        return generate_latest(self.registry)
