"""Events held in memory (the body of ``POST /v1/events``, a Stripe webhook) ingested like a file.

The items go through ``readers.load_records`` (the JSON Lines reader's own conversion) and then
``ingest.ingest_raw_rows``: the same validation, dedupe by ``event_id``, quarantine and ingestion
log as ``segments ingest``, under the same store lock, as one batch (one Parquet part per stream).
Re-sending the same items is therefore harmless: every event comes back as a duplicate.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import duckdb
from filelock import FileLock

from feature_store import quarantine
from feature_store.engine import connect
from feature_store.ingest import StreamReport, ingest_raw_rows, new_batch_id
from feature_store.layout import StoreLayout
from feature_store.offline_store import OfflineStore
from feature_store.readers import load_records
from feature_store.schema import STREAMS, Stream


@dataclass
class RecordsReport:
    """What one ingestion of in-memory items did, per stream, and whom it may have changed."""

    batch_id: str
    streams: dict[Stream, StreamReport] = field(default_factory=dict)
    # Customers named by the items of a stream that accepted something: their stored events may
    # have changed, so their features are due for recomputation. A superset, never a subset.
    customers: list[str] = field(default_factory=list)


def ingest_records(
    layout: StoreLayout,
    records: Mapping[Stream, Sequence[object]],
    *,
    source: str,
    con: duckdb.DuckDBPyConnection | None = None,
) -> RecordsReport:
    """Ingest parsed JSON items per stream as one batch; ``source`` names them in the quarantine.

    ``con`` is a connection the caller keeps between batches (saves opening a database each time);
    the catalog is attached for the batch and detached afterwards, so another process (the CLI)
    can ingest between two batches.
    """
    layout.home.mkdir(parents=True, exist_ok=True)
    report = RecordsReport(new_batch_id())
    own = con is None
    session = connect(threads=2) if con is None else con
    try:
        with FileLock(str(layout.lock_path)):
            quarantine.attach_catalog(session, layout)
            try:
                for stream in STREAMS:
                    report.streams[stream] = _ingest_stream(
                        session, layout, stream, records.get(stream, ()), source, report.batch_id
                    )
            finally:
                session.execute(f"DETACH {quarantine.CATALOG}")
    finally:
        if own:
            session.close()
    report.customers = _touched_customers(records, report.streams)
    return report


def _ingest_stream(
    con: duckdb.DuckDBPyConnection,
    layout: StoreLayout,
    stream: Stream,
    items: Sequence[object],
    source: str,
    batch_id: str,
) -> StreamReport:
    if not items:
        return StreamReport(stream=stream, source_file=source)
    raw = load_records(con, items, f"raw_{stream}")
    return ingest_raw_rows(con, OfflineStore(layout), stream, raw, source, batch_id)


def _touched_customers(
    records: Mapping[Stream, Sequence[object]], reports: Mapping[Stream, StreamReport]
) -> list[str]:
    customers: set[str] = set()
    for stream, report in reports.items():
        if report.accepted or report.resolved_from_quarantine:
            customers.update(_customer_ids(records.get(stream, ())))
    return sorted(customers)


def _customer_ids(items: Sequence[object]) -> set[str]:
    return {
        str(item["customer_id"])
        for item in items
        if isinstance(item, dict) and isinstance(item.get("customer_id"), str | int)
    }
