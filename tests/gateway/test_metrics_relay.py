"""The services' own metrics in the gateway's ``/metrics``: each vLLM's samples under a
``model`` label, a family reported by two services listed once with both."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from sage_lsp.gateway.metrics import GatewayMetrics


def vllm_text(served: str, running: int, prompt_tokens: int) -> str:
    """What a vLLM's ``/metrics`` says, in short (names and labels as vLLM 0.32 writes them)."""
    return f"""# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{{engine="0",model_name="{served}"}} {running}.0
# HELP vllm:prompt_tokens_total Number of prefill tokens processed.
# TYPE vllm:prompt_tokens_total counter
vllm:prompt_tokens_total{{engine="0",model_name="{served}"}} {prompt_tokens}.0
# HELP vllm:e2e_request_latency_seconds Histogram of e2e request latency in seconds.
# TYPE vllm:e2e_request_latency_seconds histogram
vllm:e2e_request_latency_seconds_bucket{{engine="0",le="1.0",model_name="{served}"}} 2.0
vllm:e2e_request_latency_seconds_bucket{{engine="0",le="+Inf",model_name="{served}"}} 2.0
vllm:e2e_request_latency_seconds_count{{engine="0",model_name="{served}"}} 2.0
vllm:e2e_request_latency_seconds_sum{{engine="0",model_name="{served}"}} 0.5
"""


def test_each_services_metrics_carry_its_model() -> None:
    text = GatewayMetrics().render(
        {"alpha": True, "beta": True},
        {"alpha": vllm_text("alpha", 1, 12), "beta": vllm_text("beta", 0, 30)},
    )
    families = {f.name: f for f in text_string_to_metric_families(text.decode())}
    assert text.decode().count("# TYPE vllm:num_requests_running gauge") == 1
    running = {s.labels["model"]: s.value for s in families["vllm:num_requests_running"].samples}
    assert running == {"alpha": 1.0, "beta": 0.0}
    tokens = families["vllm:prompt_tokens"]
    assert tokens.type == "counter"
    assert {s.labels["model"]: s.value for s in tokens.samples} == {"alpha": 12.0, "beta": 30.0}
    latency = families["vllm:e2e_request_latency_seconds"]
    counts = [s for s in latency.samples if s.name.endswith("_count")]
    assert sorted(s.labels["model"] for s in counts) == ["alpha", "beta"]
    # the gateway's own metrics come first and stay as they were
    assert families["sage_service_up"].samples[0].labels == {"model": "alpha"}


def test_a_service_that_answers_nonsense_is_left_out() -> None:
    text = GatewayMetrics().render(
        {"alpha": True}, {"alpha": vllm_text("alpha", 0, 1), "broken": "<html>oops</html>"}
    )
    models = {
        s.labels.get("model")
        for family in text_string_to_metric_families(text.decode())
        for s in family.samples
        if family.name.startswith("vllm:")
    }
    assert models == {"alpha"}
