"""Prometheus metrics of one app: request latency, scores per segment, the model, reloads.

The registry belongs to the app (created in ``create_app``), never to the module. With several
workers, ``segments serve`` sets ``PROMETHEUS_MULTIPROC_DIR`` so ``/metrics`` adds up every worker.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LATENCY_BUCKETS = (0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Why a model version was not swapped in (``service.lifecycle``); all shown from the start at 0.
REFUSAL_REASONS = (
    "integrity",
    "load_error",
    "no_explainer",
    "smoke_test",
    "download_error",
    "registry_unreachable",
    "cache",
)


class ServiceMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.latency = Histogram(
            "segments_http_request_duration_seconds",
            "Time from request start to the end of the response.",
            ["method", "route", "status"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.scores = Counter(
            "segments_scores_total",
            "Customers scored, by model version and assigned segment.",
            ["model_version", "segment"],
            registry=self.registry,
        )
        self.model_info = Gauge(
            "segments_model_info",
            "1 for the model version a worker serves, 0 for the ones it served before.",
            ["name", "version", "source"],
            registry=self.registry,
            multiprocess_mode="liveall",
        )
        self.model_version = Gauge(
            "segments_model_version",
            "Registry version of the model being served.",
            registry=self.registry,
            multiprocess_mode="liveall",
        )
        self.reloads = Counter(
            "segments_model_reloads_total",
            "Models loaded and swapped in.",
            registry=self.registry,
        )
        self.reload_failures = Counter(
            "segments_model_reload_failures_total",
            "Model versions refused or not reachable, by reason.",
            ["reason"],
            registry=self.registry,
        )
        for reason in REFUSAL_REASONS:
            self.reload_failures.labels(reason)

    def count_scores(self, version: str, segments: Iterable[int]) -> None:
        for segment in segments:
            self.scores.labels(version, str(segment)).inc()

    def close(self) -> None:
        """A worker going away takes its live gauges (the model it served) with it."""
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            multiprocess.mark_process_dead(os.getpid())

    def exposition(self) -> bytes:
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry)
        return generate_latest(self.registry)


class LatencyMiddleware:
    """Observes every HTTP request, labelled by route template (never the raw path)."""

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def observe_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, observe_status)
        finally:
            # A mount (the documentation's assets) leaves its path as the root path.
            route = scope.get("route")
            template = getattr(route, "path", None) or scope.get("root_path") or "unmatched"
            method = scope["method"] if scope["method"] in HTTP_METHODS else "other"
            self.metrics.latency.labels(method, template, str(status)).observe(
                time.perf_counter() - started
            )


# The methods a label may name. Any token is a method to HTTP, and a client sending a new one per
# request added a series each time (35,000 took /metrics to 75 MB and 5.5 s): every other is
# "other", as an unknown path is "unmatched".
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
