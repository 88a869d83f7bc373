"""The app factory: ``create_app(settings)`` wires settings, keys, model lifecycle and routers.

Nothing is created at import time. ``uvicorn --factory service.app:app_from_environment`` (what
``segments serve`` runs) builds the app from ``SEGMENTS_*`` environment variables.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator, Callable
from typing import Any

from asgi_correlation_id import CorrelationIdMiddleware
from fastapi import Depends, FastAPI

from feature_store.cohort import FilterValuesCache
from feature_store.engine import SessionFactory
from service.auth import API_KEY_HEADER
from service.bodies import BodyLimits
from service.cache import LocalModelCache
from service.discoveries import DiscoveryRunner
from service.drift import DriftMonitor, TrafficReservoir, watch_drift
from service.idempotency import IdempotencyStore
from service.ingestion import HttpIngestion
from service.keys import ApiKeys
from service.lifecycle import ModelHolder, ModelLoader, poll
from service.members import SegmentMembers
from service.metrics import LatencyMiddleware, ServiceMetrics
from service.middleware import (
    BodySizeLimitMiddleware,
    HeadAsGetMiddleware,
    HeaderSizeLimitMiddleware,
    IngestionAdmissionMiddleware,
)
from service.online import OnlineVectors
from service.problems import (
    REQUEST_ID_HEADER,
    Problem,
    install_problem_handlers,
    no_repeated_query_parameter,
    request_id_or_new,
)
from service.registry import ModelSource, RegistrySource
from service.routers import discoveries, docs, health, ingest, model, score, segments, webhooks
from service.scoring import Scorer
from service.settings import Settings
from service.ui import install_ui

# The routes whose bodies are events to store: their bytes in flight are bounded per worker
# (``IngestionAdmissionMiddleware``), each with a budget of its own. The webhook reads its body
# before it can check Stripe's signature, so anyone can fill its budget; the keyed route's is its
# senders' alone (a hostile client's review: a few stalled webhook bodies, no key, answered every
# keyed POST /v1/events 503 for as long as it held them).
EVENTS_PATHS = ("/v1/events",)
WEBHOOK_PATHS = ("/v1/webhooks/stripe",)

DESCRIPTION = f"""
Assigns customers to the segments discovered from their billing and usage events, and explains why.

Every `/v1` route needs an API key in the `{API_KEY_HEADER}` header, or as `Authorization: Bearer`
(`SEGMENTS_API_KEYS`): scope
`score` for the scoring routes, `read` for the catalog and the model, `discover` for discovery
jobs, `ingest` for sending events (`POST /v1/events`; the Stripe webhook is authenticated by its
signature instead). Errors are RFC 9457
problem documents (`application/problem+json`) with a stable `code`. See `docs/service.md`.
"""


def create_app(
    settings: Settings,
    *,
    source: ModelSource | None = None,
    after_model_swap: Callable[[], None] | None = None,
) -> FastAPI:
    """Build the service; ``source`` replaces the MLflow registry (tests use their own);
    ``after_model_swap`` runs each time a model is put in service (``app_from_environment``)."""
    metrics = ServiceMetrics()
    holder = ModelHolder(after_model_swap)
    loader = ModelLoader(
        source or RegistrySource(settings),
        LocalModelCache(settings.model_cache_dir, settings.model_cache_key_file),
        holder,
        metrics,
        settings.model_alias,
    )
    online = OnlineVectors(settings.online_store_path)
    sessions = SessionFactory(threads=1)
    runner = DiscoveryRunner.from_settings(settings)
    traffic = TrafficReservoir(settings.traffic_reservoir_size)
    drift = DriftMonitor(holder, online, traffic, metrics.registry, settings.drift_sample)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        poller = asyncio.create_task(poll(loader, settings.poll_interval_seconds))
        watcher = asyncio.create_task(watch_drift(drift, settings.drift_interval_seconds))
        runner.recover()  # jobs a previous run of the service left running
        jobs = asyncio.create_task(runner.run())
        yield
        runner.stop()
        for task in (poller, watcher, jobs):
            task.cancel()
        for task in (poller, watcher, jobs):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        online.close()
        sessions.close()
        metrics.close()

    app = FastAPI(
        dependencies=[Depends(no_repeated_query_parameter)],
        title="customer-segments scoring service",
        version="1",
        description=DESCRIPTION,
        lifespan=lifespan,
        # Served by ``service.routers.docs`` instead: Swagger UI from local assets, no ReDoc.
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
        # a trailing slash is redirected by path alone (``service.problems.slash_redirect``)
        redirect_slashes=False,
        openapi_tags=[
            {"name": "scoring", "description": "Assign customers to segments (scope `score`)."},
            {"name": "catalog", "description": "Segments and the model (scope `read`)."},
            {"name": "discovery", "description": "Discovery jobs (scope `discover`)."},
            {
                "name": "ingestion",
                "description": "Events in: `POST /v1/events` (scope `ingest`) and the Stripe "
                "webhook (signed by Stripe; no key).",
            },
            {"name": "operations", "description": "Health and metrics; no key needed."},
        ],
    )
    app.state.settings = settings
    app.state.api_keys = ApiKeys.from_settings(settings)
    app.state.holder = holder
    app.state.loader = loader
    app.state.metrics = metrics
    app.state.scorer = Scorer(online, sessions, metrics, traffic, settings.layout)
    app.state.drift = drift
    app.state.body_limits = BodyLimits.from_settings(settings)
    app.state.discoveries = runner
    app.state.filter_values = FilterValuesCache()  # the Discover form's plans and intervals
    install_problem_handlers(app)
    routers = (score, segments, model, discoveries, health, docs)
    for router in (r.router for r in routers):
        app.include_router(router)
    docs.mount_assets(app)
    # Segment members (CRM listing and browser pages) and the browser UI at /ui (issue 11).
    app.state.members = SegmentMembers(online, settings.cursor_key_path)
    install_ui(app, settings.ui_sessions_path, app.state.api_keys.configuration)
    # --- HTTP ingestion (issue 12): POST /v1/events, the Stripe webhook, online refresh ---------
    # ``ingest.router``'s lifespan runs the online refresher while the app serves.
    app.state.ingestion = HttpIngestion(settings, metrics.registry)
    app.state.idempotency = IdempotencyStore(
        settings.idempotency_path,
        ttl_seconds=settings.idempotency_ttl_seconds,
        stale_seconds=settings.idempotency_stale_seconds,
    )
    app.include_router(ingest.router)
    app.include_router(webhooks.router)
    # --- end HTTP ingestion ---------------------------------------------------------------------
    app.add_middleware(HeadAsGetMiddleware)
    app.add_middleware(
        IngestionAdmissionMiddleware,
        paths=WEBHOOK_PATHS,
        max_bytes=settings.webhook_max_bytes_in_flight,
    )
    app.add_middleware(
        IngestionAdmissionMiddleware,
        paths=EVENTS_PATHS,
        max_bytes=settings.ingest_max_bytes_in_flight,
    )
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(HeaderSizeLimitMiddleware, max_bytes=settings.max_header_bytes)
    app.add_middleware(LatencyMiddleware, metrics=metrics)
    # Outermost: every answer carries the request's id (the client's own X-Request-ID when it
    # sent a sensible one, else a new one), refusals of the size limits included, and a 500 names
    # it so that a client's report finds the logged traceback.
    app.add_middleware(
        CorrelationIdMiddleware,
        header_name=REQUEST_ID_HEADER,
        # the transformer replaces a value that is no token: the validator would log a warning
        # for each one, a log line anyone could write 3,500 times a second without a key
        validator=None,
        transformer=request_id_or_new,
    )
    _document_problems(app)
    return app


def _document_problems(app: FastAPI) -> None:
    """Make sure the ``Problem`` schema that every error response refers to is in the document."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            if "Problem" not in components:
                full = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
                components.update(full.pop("$defs", {}))
                components["Problem"] = full
            score.document_score_body(schema)
            _declare_request_id(schema)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _declare_request_id(schema: dict[str, Any]) -> None:
    """Every answer of the application carries ``X-Request-ID``: said on every response of every
    operation, so a generated client exposes it."""
    header = {
        "description": "The client's own request id when it sent a short token, else a new one.",
        "schema": {"type": "string"},
    }
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            if not isinstance(operation, dict):  # a path's own "parameters", not an operation
                continue
            for response in operation.get("responses", {}).values():
                response.setdefault("headers", {})[REQUEST_ID_HEADER] = header


def app_from_environment() -> FastAPI:
    """The factory ``segments serve`` gives uvicorn: settings from ``SEGMENTS_*`` variables.

    The entry point of each worker process, so the one place that tunes the process's garbage
    collector (``LongLivedFreezer``): now, for everything imported, and after each model is put
    in service, for the model."""
    freeze = LongLivedFreezer()
    app = create_app(Settings(), after_model_swap=freeze)
    freeze()
    return app


class LongLivedFreezer:
    """Take every object alive now out of the garbage collector's scans (``gc.freeze``).

    What a worker holds for its life (scikit-learn, MLflow, pandas, the model in service: a few
    million objects) was scanned by every full collection, and a request that allocates enough
    triggers one: 0.2 s during which every other request and the health check waited. A batch
    of 1,000 explained customers triggered one each time (``docs/benchmarks.md``, "The event
    loop during a batch").

    Frozen objects are still freed when nothing refers to them; only what the model put out of
    service left in reference cycles would stay. Unfreezing and collecting everything at each
    swap freed that, but stopped the worker, health checks included, for 0.45-0.88 s at every
    promotion (a CRM integrator's review, 2026-12-08). A swap now collects and freezes only what
    is new (the model's own objects: milliseconds); everything is unfrozen and collected, as
    before, when the frozen objects have grown by ``regrowth`` since the last time, which bounds
    what cycles could keep. Measured: five swaps of the demo's model left no cyclic garbage at
    all (23 objects more frozen per swap)."""

    def __init__(self, regrowth: float = 0.1) -> None:
        self.regrowth = regrowth
        self._frozen_after_full: int | None = None

    def __call__(self) -> None:
        gc.collect()  # what is not frozen yet: the new model's objects and today's garbage
        gc.freeze()
        limit = self._frozen_after_full
        if limit is None or gc.get_freeze_count() > limit * (1 + self.regrowth):
            gc.unfreeze()
            gc.collect()
            gc.freeze()
            self._frozen_after_full = gc.get_freeze_count()
