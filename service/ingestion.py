"""Events arriving over HTTP (``POST /v1/events``, the Stripe webhook): stored, then refreshed.

``HttpIngestion`` owns what the two routes share: the ingestion process the events are handed to
(``service.ingest_process``: group commit and online refresh, off this process's interpreter),
the online refresher queue that decides which customers it recomputes and when, and the ingestion
metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Mapping, Sequence

from anyio.to_thread import run_sync
from prometheus_client import CollectorRegistry, Counter, Gauge

from feature_store.errors import StoreBusyError
from feature_store.records import RecordsReport, Request
from feature_store.schema import Stream
from service.ingest_process import IngestionBusyError, IngestionUnavailableError, IngestProcess
from service.problems import ProblemError
from service.refresher import OnlineRefresher
from service.settings import Settings

logger = logging.getLogger("service")


class IngestMetrics:
    """Counters of events received over HTTP, Stripe event types and online refreshes."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.events = Counter(
            "segments_ingested_events_total",
            "Events received over HTTP, by route and outcome (accepted, duplicate, quarantined).",
            ["route", "outcome"],
            registry=registry,
        )
        self.stripe = Counter(
            "segments_stripe_webhook_events_total",
            "Verified Stripe webhook deliveries, by Stripe event type and outcome "
            "(accepted, duplicate, quarantined, ignored).",
            ["type", "outcome"],
            registry=registry,
        )
        self.refreshed = Counter(
            "segments_online_refreshed_customers_total",
            "Customers whose online vector was recomputed after HTTP ingestion.",
            registry=registry,
        )
        self.refresh_failures = Counter(
            "segments_online_refresh_failures_total",
            "Online refreshes that failed (logged); the customers catch up later.",
            registry=registry,
        )
        self.pending = Gauge(
            "segments_online_refresh_pending",
            "Customers waiting for an online refresh.",
            registry=registry,
            multiprocess_mode="livesum",
        )

    def count(self, route: str, report: RecordsReport) -> None:
        for stream in report.streams.values():
            self.events.labels(route, "accepted").inc(stream.accepted)
            self.events.labels(route, "duplicate").inc(stream.duplicates)
            self.events.labels(route, "quarantined").inc(stream.quarantined)


# What ``HttpIngestion.ingest`` answers when it cannot store a batch, as the OpenAPI examples of
# every route that ingests (``service.problems.problem_responses``) declare it.
INGESTION_PROBLEMS: tuple[tuple[int, str, str], ...] = (
    (503, "ingestion_unavailable", "the ingestion process ended; send again"),
    (
        503,
        "ingestion_busy",
        "the ingestion process holds 50,000 events not yet stored (at most 50,000); nothing of "
        "this request was stored, send again later",
    ),
    (
        503,
        "store_busy",
        "the quarantine catalog /srv/segments/catalog.duckdb is open in another process, which "
        "DuckDB allows one process at a time; try again once that process has closed it",
    ),
)


class HttpIngestion:
    def __init__(self, settings: Settings, registry: CollectorRegistry) -> None:
        self.metrics = IngestMetrics(registry)
        self.process = IngestProcess(
            settings.layout,
            settings.online_store_path,
            answer_timeout=settings.ingest_timeout_seconds,
            max_pending_events=settings.ingest_max_pending_events,
        )
        self._start_process = settings.ingest_process_at_start
        self.refresher = OnlineRefresher(
            self.process.refresh,
            max_pending=settings.refresh_max_pending,
            min_interval_seconds=settings.refresh_interval_seconds,
            on_refreshed=self._refreshed,
        )

    async def ingest(
        self,
        records: Mapping[Stream, Sequence[object]],
        *,
        source: str,
        route: str,
        wait_for_refresh: float | None = None,
    ) -> tuple[RecordsReport, bool | None]:
        """Store the events as one batch in the ingestion process, then queue their customers;
        with ``wait_for_refresh`` (seconds), wait that long at most for their online vectors to
        be refreshed, and say whether they were (None: not asked)."""
        try:
            report = await self.process.ingest(Request(records, source))
        except IngestionBusyError as error:  # refused before the child saw it: nothing stored
            raise ProblemError(
                503, "ingestion_busy", str(error), headers={"Retry-After": "5"}
            ) from None
        except IngestionUnavailableError as error:
            # Not stored as an idempotent answer (the routes let 5xx problems escape): a retry
            # with the same key is a new attempt, and a batch is stored whole or not at all.
            raise ProblemError(
                503, "ingestion_unavailable", str(error), headers={"Retry-After": "1"}
            ) from None
        except StoreBusyError as error:  # a process outside the store's lock holds the catalog
            raise ProblemError(
                503, "store_busy", str(error), headers={"Retry-After": "5"}
            ) from None
        self.metrics.count(route, report)
        ticket = await self.refresher.submit(report.customers)
        self.metrics.pending.set(self.refresher.pending)
        if wait_for_refresh is None:
            return report, None
        return report, await self.refresher.wait_for(ticket, wait_for_refresh)

    def _refreshed(self, customers: int, written: int) -> None:
        if written < 0:
            self.metrics.refresh_failures.inc()
        else:
            self.metrics.refreshed.inc(customers)
        self.metrics.pending.set(self.refresher.pending)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """The refresher runs while the app serves; the ingestion process ends after it, once
        the writes it holds are committed."""
        task = asyncio.create_task(self.refresher.run())
        try:
            if self._start_process:
                try:
                    await run_sync(self.process.start)
                except Exception:  # scoring serves all the same; the first ingestion tries again
                    logger.exception("the ingestion process could not start")
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            self.refresher.close()
            await run_sync(self.process.close)
