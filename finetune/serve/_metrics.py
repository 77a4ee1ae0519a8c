"""Prometheus metrics for the server: requests, tokens, latency and batch sizes, never any text.

Each app gets its own registry, so several servers in one process (tests, evaluation) keep separate counts.
Labels take only values the server chose (route templates, served model names, status codes): a client
cannot grow the number of series by sending odd paths or model names.
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)


class ServeMetrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "medtune_http_requests", "HTTP requests answered, by route template, method and status code.",
            ["route", "method", "status"], registry=self.registry,
        )
        self.request_latency = Histogram(
            "medtune_http_request_duration_seconds", "Time to the response headers, by route template.",
            ["route"], buckets=LATENCY_BUCKETS, registry=self.registry,
        )
        self.completions = Counter(
            "medtune_chat_completions", "Chat completions finished, by model, streaming and finish reason.",
            ["model", "stream", "finish_reason"], registry=self.registry,
        )
        self.prompt_tokens = Counter(
            "medtune_prompt_tokens", "Prompt tokens of finished chat completions.", ["model"], registry=self.registry
        )
        self.completion_tokens = Counter(
            "medtune_completion_tokens", "Generated tokens of finished chat completions.", ["model"],
            registry=self.registry,
        )
        self.generation_latency = Histogram(
            "medtune_chat_completion_duration_seconds",
            "From request validation to the last token (queueing included), by model.",
            ["model"], buckets=LATENCY_BUCKETS, registry=self.registry,
        )
        self.batch_size = Histogram(
            "medtune_generation_batch_size", "Requests decoded together in one batch, by model.",
            ["model"], buckets=BATCH_BUCKETS, registry=self.registry,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
