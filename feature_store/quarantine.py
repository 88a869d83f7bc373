"""The quarantine: every rejected row with its reasons, kept until a later ingestion accepts it.

Rows live in the ``catalog`` DuckDB database (``StoreLayout.catalog_path``) attached to the
connection under the name ``catalog``. A row's ``quarantine_id`` is a hash of its stream and raw
content, so re-sending the same bad row counts it again (``times_seen``) without storing it twice.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import duckdb
from filelock import FileLock, Timeout

from feature_store.engine import connect, sql_string
from feature_store.errors import SegmentsError, StoreBusyError
from feature_store.layout import StoreLayout
from feature_store.schema import (
    QUARANTINE_BOOKKEEPING_COLUMNS,
    QUARANTINE_ID_COLUMN,
    QUARANTINE_REASONS_COLUMN,
    Reason,
)

CATALOG = "catalog"
# How long a command reading the quarantine waits for an ingestion holding the data home.
READ_WAIT_SECONDS = 120.0
# How long a message that counts open rows waits for it: only the message depends on the count.
COUNT_WAIT_SECONDS = 1.0

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {CATALOG}.quarantine (
    quarantine_id VARCHAR PRIMARY KEY,
    stream VARCHAR NOT NULL,
    reason VARCHAR NOT NULL,
    reasons VARCHAR[] NOT NULL,
    event_id VARCHAR,
    customer_id VARCHAR,
    source_file VARCHAR NOT NULL,
    source_row BIGINT,
    raw VARCHAR NOT NULL,
    batch_id VARCHAR NOT NULL,
    first_seen TIMESTAMP NOT NULL,
    last_seen TIMESTAMP NOT NULL,
    times_seen BIGINT NOT NULL,
    resolved_at TIMESTAMP,
    resolved_by_batch VARCHAR
);
CREATE TABLE IF NOT EXISTS {CATALOG}.ingestions (
    batch_id VARCHAR NOT NULL,
    stream VARCHAR NOT NULL,
    source_file VARCHAR NOT NULL,
    ingested_at TIMESTAMP NOT NULL,
    received BIGINT NOT NULL,
    accepted BIGINT NOT NULL,
    duplicates BIGINT NOT NULL,
    quarantined BIGINT NOT NULL,
    reasons VARCHAR NOT NULL,
    unknown_columns VARCHAR[] NOT NULL
);
"""


def attach_catalog(con: duckdb.DuckDBPyConnection, layout: StoreLayout) -> None:
    """Attach (creating if needed) the catalog database to ``con`` as ``catalog``.

    DuckDB lets one process at a time open the file, so every process of this project attaches
    it only under the store's lock (``layout.lock_path``); a process that does not (a DuckDB
    shell left open on it) is named rather than passed through as DuckDB's lock error."""
    layout.home.mkdir(parents=True, exist_ok=True)
    try:
        con.execute(f"ATTACH IF NOT EXISTS {sql_string(str(layout.catalog_path))} AS {CATALOG}")
    except duckdb.IOException as error:
        # DuckDB's words: 'Could not set lock on file "…": Conflicting lock is held in …'
        if "lock" not in str(error).lower():
            raise
        raise StoreBusyError(
            f"the quarantine catalog {layout.catalog_path} is open in another process, which "
            "DuckDB allows one process at a time; try again once that process has closed it"
        ) from None
    con.execute(_SCHEMA)


@contextlib.contextmanager
def catalog_for_reading(
    layout: StoreLayout, *, wait_seconds: float = READ_WAIT_SECONDS
) -> Iterator[duckdb.DuckDBPyConnection]:
    """A connection with the catalog attached, under the store's lock, closed on exit.

    Without the lock, `segments quarantine list` run while the service ingested failed with
    DuckDB's lock error, or made the ingestion fail: a 500 to every request written with it.
    Under it, the reader waits for a write to end, and a write for the reader (milliseconds).
    A data home that does not exist is refused (a mistyped SEGMENTS_HOME was created, and said
    to hold no quarantined rows).
    """
    if not layout.home.is_dir():
        raise SegmentsError(
            f"no data home at {layout.home} (the folder does not exist: check the path; "
            "SEGMENTS_HOME names the data home, and `segments ingest` creates it)"
        )
    lock = FileLock(str(layout.lock_path), timeout=wait_seconds)
    try:
        lock.acquire()
    except Timeout:
        raise StoreBusyError(
            f"the data home {layout.home} has been held by another process (an ingestion or a "
            f"compaction) for {wait_seconds:g} s; try again when it has finished"
        ) from None
    try:
        con = connect()
        try:
            attach_catalog(con, layout)
            yield con
        finally:
            con.close()
    finally:
        lock.release()


def quarantine_rows(con: duckdb.DuckDBPyConnection, rejected_sql: str) -> None:
    """Store rejected rows; ``rejected_sql`` yields the quarantine columns but the bookkeeping."""
    con.execute(
        f"""
        INSERT INTO {CATALOG}.quarantine
        SELECT quarantine_id, any_value(stream), any_value(reason), any_value(reasons),
               any_value(event_id), any_value(customer_id), any_value(source_file),
               min(source_row), any_value(raw), any_value(batch_id),
               current_localtimestamp(), current_localtimestamp(), count(*), NULL, NULL
        FROM ({rejected_sql}) GROUP BY quarantine_id
        ON CONFLICT (quarantine_id) DO UPDATE SET
            times_seen = quarantine.times_seen + excluded.times_seen,
            last_seen = excluded.last_seen,
            batch_id = excluded.batch_id,
            resolved_at = NULL,
            resolved_by_batch = NULL
        """
    )


def supersede_rows(
    con: duckdb.DuckDBPyConnection, stream: str, batch_id: str, rejected_sql: str
) -> None:
    """Close the entries that rows of this batch correct but that were quarantined again with
    other content (a correction still invalid): the new entry, which the next export carries,
    stands for the row now. Left open, the old one could never be closed, since every later
    export carries the new id. An entry sent back unchanged is the same entry and stays open."""
    con.execute(
        f"""
        WITH rejected AS ({rejected_sql})
        UPDATE {CATALOG}.quarantine SET resolved_at = current_localtimestamp(),
                                         resolved_by_batch = {sql_string(batch_id)}
        WHERE resolved_at IS NULL AND stream = {sql_string(stream)} AND quarantine_id IN (
            SELECT corrects FROM rejected
            WHERE corrects IS NOT NULL AND corrects <> quarantine_id)
          -- an entry this batch quarantined again (another row's content, the same row sent
          -- twice) stands for a row of this batch: closing it would lose that row
          AND quarantine_id NOT IN (SELECT quarantine_id FROM rejected)
        """
    )


def resolve_rows(
    con: duckdb.DuckDBPyConnection,
    stream: str,
    batch_id: str,
    *,
    accepted_sql: str,
    settled_sql: str,
) -> int:
    """Mark open rows resolved by this batch; return how many.

    A row is resolved when the batch accepted its event id (``accepted_sql``: ``event_id``), or
    settled a correction of it: a valid row carrying its quarantine id (``settled_sql``:
    ``corrects``), accepted or an exact re-send of a stored event. A ``conflicting_duplicate`` is
    resolved by a correction only: its event id being accepted is the very cause of the conflict.
    """
    ((resolved,),) = con.execute(
        f"""
        UPDATE {CATALOG}.quarantine SET resolved_at = current_localtimestamp(),
                                         resolved_by_batch = {sql_string(batch_id)}
        WHERE resolved_at IS NULL AND stream = {sql_string(stream)} AND (
            (reason <> {sql_string(Reason.CONFLICTING_DUPLICATE.value)}
             AND event_id IN (SELECT event_id FROM ({accepted_sql})))
            OR quarantine_id IN (SELECT corrects FROM ({settled_sql}) WHERE corrects IS NOT NULL))
        """
    ).fetchall()  # DuckDB answers an UPDATE with the number of rows it changed
    return int(resolved)


def has_open_rows(con: duckdb.DuckDBPyConnection, stream: str) -> bool:
    """Whether ``stream`` has unresolved entries (if not, nothing can be resolved)."""
    ((found,),) = con.execute(
        f"SELECT count(*) > 0 FROM {CATALOG}.quarantine "
        f"WHERE resolved_at IS NULL AND stream = {sql_string(stream)}"
    ).fetchall()
    return bool(found)


@dataclass(frozen=True)
class QuarantinedRow:
    quarantine_id: str
    stream: str
    reason: str
    reasons: list[str]
    event_id: str | None
    customer_id: str | None
    source_file: str
    source_row: int | None
    raw: dict[str, Any]
    first_seen: datetime
    times_seen: int
    resolved_at: datetime | None
    # the batch whose rows resolved it, or "dismissed: <note>" (``dismiss_rows``)
    resolved_by: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.__dict__,
            "first_seen": self.first_seen.isoformat(),
            "resolved_at": self.resolved_at.isoformat() if self.resolved_at else None,
        }


_ROW_COLUMNS = (
    "quarantine_id, stream, reason, reasons, event_id, customer_id, source_file, source_row, "
    "raw, first_seen, times_seen, resolved_at, resolved_by_batch"
)
# How a dismissed entry's ``resolved_by`` starts (``dismiss_rows``).
DISMISSED = "dismissed: "


def export_row(row: QuarantinedRow) -> dict[str, Any]:
    """A row as ``segments quarantine export`` writes it for fixing: as it arrived, with its
    entry's id and reasons. An entry whose own content carried bookkeeping columns (a correction
    quarantined again before 2026-12-05) names its own id, not the one it carried."""
    content = {k: v for k, v in row.raw.items() if k not in QUARANTINE_BOOKKEEPING_COLUMNS}
    return {
        QUARANTINE_ID_COLUMN: row.quarantine_id,
        QUARANTINE_REASONS_COLUMN: ",".join(row.reasons),
        **content,
    }


def _to_row(values: tuple[Any, ...]) -> QuarantinedRow:
    fields = list(values)
    fields[8] = json.loads(fields[8])
    return QuarantinedRow(*fields)


def list_rows(
    con: duckdb.DuckDBPyConnection,
    *,
    stream: str | None = None,
    reason: str | None = None,
    include_resolved: bool = False,
    limit: int | None = None,
) -> list[QuarantinedRow]:
    """Quarantined rows, oldest first, filtered by stream and reason."""
    conditions = ["true"]
    if stream:
        conditions.append(f"stream = {sql_string(stream)}")
    if reason:
        conditions.append(f"list_contains(reasons, {sql_string(reason)})")
    if not include_resolved:
        conditions.append("resolved_at IS NULL")
    limit_sql = f"LIMIT {int(limit)}" if limit else ""
    rows = con.execute(
        f"SELECT {_ROW_COLUMNS} FROM {CATALOG}.quarantine WHERE {' AND '.join(conditions)} "
        f"ORDER BY first_seen, source_file, source_row {limit_sql}"
    ).fetchall()
    return [_to_row(row) for row in rows]


def get_row(con: duckdb.DuckDBPyConnection, quarantine_id: str) -> QuarantinedRow | None:
    row = con.execute(
        f"SELECT {_ROW_COLUMNS} FROM {CATALOG}.quarantine WHERE quarantine_id = ?",
        [quarantine_id],
    ).fetchone()
    return _to_row(row) if row else None


def dismiss_rows(
    con: duckdb.DuckDBPyConnection,
    note: str,
    *,
    quarantine_ids: Sequence[str] = (),
    stream: str | None = None,
    reason: str | None = None,
) -> int:
    """Close open entries that no correction can resolve (a footer line, another system's rows,
    a test event nobody will send again), keeping them for the record: resolved now, by
    ``"dismissed: <note>"``. The entries named by id, or every open one of ``stream`` with
    ``reason`` among its reasons; returns how many were closed. An id that names no entry, or a
    closed one, is a ``SegmentsError`` and nothing is closed. A dismissed row received again is
    open again, as any resolved row is."""
    note = note.strip()
    if not note:
        raise SegmentsError("say why the rows are dismissed (--note TEXT): it is kept with them")
    if quarantine_ids:
        found = dict(
            con.execute(
                f"SELECT quarantine_id, resolved_at IS NULL FROM {CATALOG}.quarantine "
                "WHERE list_contains(?, quarantine_id)",
                [list(quarantine_ids)],
            ).fetchall()
        )
        missing = [q for q in quarantine_ids if q not in found]
        closed = [q for q in quarantine_ids if found.get(q) is False]
        if missing or closed:
            named = ", ".join(
                [f"{q!r} (no such entry)" for q in missing[:3]]
                + [f"{q!r} (already resolved)" for q in closed[:3]]
            )
            raise SegmentsError(
                f"nothing dismissed: {named}; see `segments quarantine list` (--all lists "
                "resolved rows too)"
            )
        where, parameters = "list_contains(?, quarantine_id)", [list(quarantine_ids)]
    elif reason is not None:
        where, parameters = (
            "list_contains(reasons, ?) AND (? IS NULL OR stream = ?)",
            [
                reason,
                stream,
                stream,
            ],
        )
    else:
        raise SegmentsError("name the rows to dismiss: their quarantine ids, or --reason CODE")
    ((dismissed,),) = con.execute(
        f"""UPDATE {CATALOG}.quarantine SET resolved_at = current_localtimestamp(),
                                           resolved_by_batch = ?
            WHERE resolved_at IS NULL AND {where}""",
        [DISMISSED + note, *parameters],
    ).fetchall()
    return int(dismissed)


def summary(
    con: duckdb.DuckDBPyConnection, stream: str | None = None, reason: str | None = None
) -> list[tuple[str, str, int, int, int]]:
    """(stream, reason, open rows, resolved rows, times the open rows were received) for every
    first reason seen, of the rows of ``stream`` and with ``reason`` among their reasons when
    given (the rows ``list_rows`` lists). The same bad row sent again is one row seen twice, so
    the last count is what the ingestion reports added up to, the open rows what is left to
    fix."""
    return con.execute(
        f"""SELECT stream, reason, count(*) FILTER (resolved_at IS NULL),
                   count(*) FILTER (resolved_at IS NOT NULL),
                   coalesce(sum(times_seen) FILTER (resolved_at IS NULL), 0)::BIGINT
            FROM {CATALOG}.quarantine
            WHERE (? IS NULL OR stream = ?) AND (? IS NULL OR list_contains(reasons, ?))
            GROUP BY ALL ORDER BY stream, reason""",
        [stream, stream, reason, reason],
    ).fetchall()


def open_rows_of(layout: StoreLayout) -> int:
    """The data home's open (unresolved) quarantined rows; 0 when there is no catalog, or it
    cannot be read within ``COUNT_WAIT_SECONDS`` (an ingestion writing it): only messages depend
    on it. Read under the store's lock: a read-only open holds DuckDB's file lock as well, and an
    ingestion starting meanwhile would fail."""
    if not layout.catalog_path.exists():
        return 0
    try:
        with FileLock(str(layout.lock_path), timeout=COUNT_WAIT_SECONDS):
            con = duckdb.connect(str(layout.catalog_path), read_only=True)
            try:
                (count,) = con.execute(
                    "SELECT count(*) FROM quarantine WHERE resolved_at IS NULL"
                ).fetchone()
            finally:
                con.close()
    except (Timeout, duckdb.Error, OSError):  # OSError: a read-only data home takes no lock
        return 0
    return int(count)
