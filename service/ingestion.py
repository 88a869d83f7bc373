"""Events arriving over HTTP (``POST /v1/events``, the Stripe webhook): stored, then refreshed.

``HttpIngestion`` owns what the two routes share: one DuckDB connection for writing, used by one
worker thread at a time (the store's file lock also keeps the CLI out while a batch is written),
the online refresher the stored customers are handed to, and the ingestion metrics. Requests that
arrive while a write runs are written together by the next one (group commit): one batch, one
Parquet part per stream, for all of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor

import duckdb
from prometheus_client import CollectorRegistry, Counter, Gauge

from feature_store.engine import connect
from feature_store.errors import InputFileError
from feature_store.event_index import EventIdIndex
from feature_store.layout import StoreLayout
from feature_store.offline_store import OfflineStore
from feature_store.online_store import SqliteOnlineStore
from feature_store.records import RecordsReport, Request, ingest_requests
from feature_store.refresh import refresh_online
from feature_store.schema import Stream
from feature_store.timeutil import now_utc
from service.refresher import OnlineRefresher
from service.settings import Settings

# Events written together at most: bounds the memory and the duration of one write (a request
# arriving just after a write started waits for it and its own; a write costs about 60 ms plus
# 12 ms per 1,000 events of CPU, so 5,000 keeps that wait within the 250 ms goal). A request larger
# than this (up to SEGMENTS_MAX_INGEST_EVENTS) is written alone.
GROUP_EVENTS = 5_000


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
    """Group commit: requests arriving while a write runs wait, and are written together next.

    One worker thread writes at a time, with a DuckDB connection and the event-id index kept
    between writes; a write takes every waiting request up to ``GROUP_EVENTS`` events (the rest wait
    for the next), and each request is answered once the write holding it is committed.
    """

    def __init__(self, layout: StoreLayout) -> None:
        self.layout = layout
        self._con: duckdb.DuckDBPyConnection | None = None
        self._index = EventIdIndex(OfflineStore(layout))
        self._lock = threading.Lock()
        self._thread = ThreadPoolExecutor(1, "ingest-writer")
        self._waiting: list[tuple[Request, asyncio.Future[RecordsReport]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def ingest(self, request: Request) -> RecordsReport:
        future: asyncio.Future[RecordsReport] = asyncio.get_running_loop().create_future()
        self._waiting.append((request, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        # Shielded: a client that goes away does not cancel the write of its events.
        return await asyncio.shield(future)

    async def _flush(self) -> None:
        while self._waiting:
            group, events = [], 0
            while self._waiting and (
                not group or events + _size(self._waiting[0][0]) <= GROUP_EVENTS
            ):
                group.append(self._waiting.pop(0))
                events += _size(group[-1][0])
            try:
                outcomes = await asyncio.get_running_loop().run_in_executor(
                    self._thread, self._write, [r for r, _ in group]
                )
            except Exception as error:  # every request of the write fails alike (500)
                outcomes = [error] * len(group)
            for (_, future), outcome in zip(group, outcomes, strict=True):
                if future.done():
                    continue
                if isinstance(outcome, Exception):
                    future.set_exception(outcome)
                else:
                    future.set_result(outcome)

    def _write(self, requests: list[Request]) -> list[RecordsReport | InputFileError]:
        with self._lock:
            if self._con is None:
                self._con = connect(threads=2)
            return ingest_requests(self.layout, requests, con=self._con, index=self._index)

    def refresh(self, customer_ids: Sequence[str], online: SqliteOnlineStore) -> int:
        con = connect(threads=1)
        try:
            return refresh_online(con, self.layout, online, customer_ids, now_utc())
        finally:
            con.close()

    async def drain(self) -> None:
        """Let the write under way (and those waiting) finish."""
        if self._flusher is not None:
            with contextlib.suppress(Exception):
                await self._flusher

    def close(self) -> None:
        self._thread.shutdown(wait=True)
        with self._lock:
            if self._con is not None:
                self._con.close()
                self._con = None


def _size(request: Request) -> int:
    return sum(len(items) for items in request.records.values())


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

    async def ingest(
        self, records: Mapping[Stream, Sequence[object]], *, source: str, route: str
    ) -> RecordsReport:
        """Store the events as one batch off the event loop, then queue their customers."""
        report = await self._writer.ingest(Request(records, source))
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
            self.refresher.close()
            await self._writer.drain()
            self._writer.close()
