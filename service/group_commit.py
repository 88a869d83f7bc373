"""Group commit of events arriving over HTTP: requests that arrive while a write runs are written
together by the next one (one batch, one Parquet part per stream, for all of them).

``GroupWriter`` runs inside the ingestion process (``service.ingest_process``): it owns a DuckDB
connection per thread, the event-id index kept between writes, and the online refresh of stored
customers, all off the serving process's interpreter.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import duckdb
from filelock import FileLock

from feature_store.compaction import compact_stream, compaction_due
from feature_store.engine import connect
from feature_store.errors import InputFileError
from feature_store.event_index import EventIdIndex
from feature_store.layout import StoreLayout
from feature_store.offline_store import OfflineStore
from feature_store.online_store import SqliteOnlineStore
from feature_store.records import (
    RecordsReport,
    Request,
    StagedRequests,
    stage_requests,
    write_staged,
)
from feature_store.refresh import refresh_online
from feature_store.schema import STREAMS
from feature_store.timeutil import next_whole_second, now_utc

logger = logging.getLogger("service")

# Events written together at most: bounds the memory and the duration of one write (a request
# arriving just after a write started waits for it and its own; a write costs about 60 ms plus
# 12 ms per 1,000 events of CPU, so 5,000 keeps that wait within the 250 ms goal). A request larger
# than this (up to SEGMENTS_MAX_INGEST_EVENTS) is written alone.
GROUP_EVENTS = 5_000


class GroupWriter:
    """Group commit, in two steps on two threads: validating and writing.

    Requests arriving while a write runs wait; the next group takes every waiting request up to
    ``GROUP_EVENTS`` events (the rest wait for the next). A group is validated on one thread
    (``stage_requests``: no store, no lock) while the group before it is written on another
    (``write_staged``: one write at a time, in order, with a DuckDB connection and the event-id
    index kept between writes), so that two cores share the work of a stream of requests; each
    request is answered once the write holding it is committed.
    """

    def __init__(self, layout: StoreLayout) -> None:
        self.layout = layout
        # One store for every write's listings: it keeps the compaction manifests it has read.
        self._offline = OfflineStore(layout)
        self._index = EventIdIndex(self._offline)
        self._connections: dict[str, duckdb.DuckDBPyConnection] = {}  # one per thread
        self._validating = ThreadPoolExecutor(1, "ingest-validate")
        self._writing = ThreadPoolExecutor(1, "ingest-writer")
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
        loop = asyncio.get_running_loop()
        writing: asyncio.Future[None] | None = None
        while self._waiting or writing is not None:
            if not self._waiting:
                await writing  # type: ignore[misc]
                writing = None
                continue  # requests that came during that write
            group = self._next_group()
            try:
                staged = await loop.run_in_executor(
                    self._validating, self._stage, [request for request, _ in group]
                )
            except Exception as error:  # every request of the group fails alike (500)
                _answer(group, [error] * len(group))
                continue
            if writing is not None:
                await writing  # writes one at a time, in order
            writing = asyncio.ensure_future(self._write(group, staged))

    def _next_group(self) -> list[tuple[Request, asyncio.Future[RecordsReport]]]:
        group, events = [], 0
        while self._waiting and (not group or events + _size(self._waiting[0][0]) <= GROUP_EVENTS):
            group.append(self._waiting.pop(0))
            events += _size(group[-1][0])
        return group

    async def _write(
        self, group: list[tuple[Request, asyncio.Future[RecordsReport]]], staged: StagedRequests
    ) -> None:
        loop = asyncio.get_running_loop()
        try:
            outcomes: list[object] = list(
                await loop.run_in_executor(self._writing, self._store, staged)
            )
        except Exception as error:  # every request of the write fails alike (500)
            outcomes = [error] * len(group)
        _answer(group, outcomes)
        # After the answers, on the writer's thread: the next write waits for it, no request does.
        try:
            await loop.run_in_executor(self._writing, self._compact_if_due)
        except Exception:  # the parts stay as they are; the next write tries again
            logger.exception("compacting the offline store failed")

    def _compact_if_due(self) -> None:
        due = [stream for stream in STREAMS if compaction_due(self._offline, stream)]
        if not due:
            return
        with FileLock(str(self.layout.lock_path)):
            for stream in due:
                done = compact_stream(self._connection("write"), self.layout, stream)
                logger.info("offline store: %s", done.as_dict())

    def _connection(self, role: str) -> duckdb.DuckDBPyConnection:
        """The DuckDB connection of one thread (validate, write or refresh; each only ever used by
        its thread)."""
        if role not in self._connections:
            self._connections[role] = connect(
                threads=2 if role == "write" else 1,
                spill_to=self.layout.spill_dir,
                memory_limit=self.layout.memory_limit,
            )
        return self._connections[role]

    def _stage(self, requests: list[Request]) -> StagedRequests:
        return stage_requests(self._connection("validate"), requests)

    def _store(self, staged: StagedRequests) -> list[RecordsReport | InputFileError]:
        return write_staged(self.layout, staged, con=self._connection("write"), index=self._index)

    def refresh(self, customer_ids: Sequence[str], online: SqliteOnlineStore) -> int:
        """Recompute customers' online vectors; call it from one thread only (its connection is
        kept between calls: opening one cost 5% of the ingestion process's CPU).

        One refresh of a store at a time, across the service's worker processes, stamped inside
        the lock: vectors are written in the order they were read. Two workers refreshing a
        customer in the same second stamped their vectors alike, and the one that had read the
        events before the other's were stored could write last and win."""
        with FileLock(f"{online.path}.lock"):
            as_of = next_whole_second(now_utc())  # the answers' stamp, to the second, is exact
            con = self._connection("refresh")
            return refresh_online(con, self.layout, online, customer_ids, as_of)

    async def drain(self) -> None:
        """Let the groups under way (and those waiting) finish."""
        if self._flusher is not None:
            with contextlib.suppress(Exception):
                await self._flusher

    def close(self) -> None:
        self._validating.shutdown(wait=True)
        self._writing.shutdown(wait=True)
        for con in self._connections.values():
            con.close()
        self._connections.clear()


def _answer(group: list[tuple[Request, asyncio.Future[RecordsReport]]], outcomes: list) -> None:
    for (_, future), outcome in zip(group, outcomes, strict=True):
        if future.done():  # cannot happen (shielded), but a closed loop must not raise here
            continue
        if isinstance(outcome, Exception):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)


def _size(request: Request) -> int:
    return sum(len(items) for items in request.records.values())
