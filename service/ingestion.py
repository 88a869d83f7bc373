"""Events arriving over HTTP (``POST /v1/events``, the Stripe webhook): stored, then refreshed.

``HttpIngestion`` owns what the two routes share: one DuckDB connection for writing, used by one
worker thread at a time (the store's file lock also keeps the CLI out while a batch is written),
the online refresher the stored customers are handed to, and the ingestion metrics. Each request
is one batch: one Parquet part per stream, whatever the number of events.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Mapping, Sequence

import anyio
import anyio.to_thread
import duckdb
from prometheus_client import CollectorRegistry, Counter, Gauge

from feature_store.engine import connect
from feature_store.layout import StoreLayout
from feature_store.online_store import SqliteOnlineStore
from feature_store.records import RecordsReport, ingest_records
from feature_store.refresh import refresh_online
from feature_store.schema import Stream
from feature_store.timeutil import next_whole_second, now_utc
from service.refresher import OnlineRefresher
from service.settings import Settings


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


class _Writer:
    """A DuckDB connection kept between batches; one thread at a time (the limiter's job)."""

    def __init__(self, layout: StoreLayout) -> None:
        self.layout = layout
        self._con: duckdb.DuckDBPyConnection | None = None
        self._lock = threading.Lock()

    def ingest(self, records: Mapping[Stream, Sequence[object]], source: str) -> RecordsReport:
        with self._lock:
            if self._con is None:
                self._con = connect(threads=2)
            return ingest_records(self.layout, records, source=source, con=self._con)

    def refresh(self, customer_ids: Sequence[str], online: SqliteOnlineStore) -> int:
        con = connect(threads=1)
        try:
            as_of = next_whole_second(now_utc())  # the answers' stamp, to the second, is exact
            return refresh_online(con, self.layout, online, customer_ids, as_of)
        finally:
            con.close()

    def close(self) -> None:
        with self._lock:
            if self._con is not None:
                self._con.close()
                self._con = None


class HttpIngestion:
    def __init__(self, settings: Settings, registry: CollectorRegistry) -> None:
        self.metrics = IngestMetrics(registry)
        self._writer = _Writer(settings.layout)
        online = SqliteOnlineStore(settings.online_store_path)
        self.refresher = OnlineRefresher(
            lambda customers: self._writer.refresh(customers, online),
            max_pending=settings.refresh_max_pending,
            min_interval_seconds=settings.refresh_interval_seconds,
            on_refreshed=self._refreshed,
        )
        self._limiter = anyio.CapacityLimiter(1)  # waiting requests hold no worker thread

    async def ingest(
        self, records: Mapping[Stream, Sequence[object]], *, source: str, route: str
    ) -> RecordsReport:
        """Store the events as one batch off the event loop, then queue their customers."""
        report = await anyio.to_thread.run_sync(
            self._writer.ingest, records, source, limiter=self._limiter
        )
        self.metrics.count(route, report)
        await self.refresher.submit(report.customers)
        self.metrics.pending.set(self.refresher.pending)
        return report

    def _refreshed(self, customers: int, written: int) -> None:
        if written < 0:
            self.metrics.refresh_failures.inc()
        else:
            self.metrics.refreshed.inc(customers)
        self.metrics.pending.set(self.refresher.pending)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """The refresher runs while the app serves; the writer's connection closes after it."""
        task = asyncio.create_task(self.refresher.run())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            self._writer.close()
