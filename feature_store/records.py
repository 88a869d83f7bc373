"""Events held in memory (the body of ``POST /v1/events``, a Stripe webhook) ingested like a file.

The items go through ``readers.records_table`` (the JSON Lines reader's own conversion) and the
validation of file ingestion (``feature_store/validation.py``, the same SQL), under the same store
lock; re-sending the same items is harmless: every event comes back as a duplicate.

Several requests are written together (group commit, ``ingest_requests``): one lock, one catalog
transaction and one Parquet part per stream for the lot, since a batch costs about the same
whether it holds 1,000 events or 20,000. A request none of whose event ids is stored or repeated
(the ``EventIdIndex`` says so without reading the store: the usual case) needs no join against the
stored events; any other request (a retry, a Stripe redelivery) goes through the file path itself,
``ingest.ingest_raw_rows``, after the requests before it are written, so that it sees them.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import duckdb
import numpy as np
import pyarrow as pa
from filelock import FileLock

from feature_store import quarantine
from feature_store.engine import connect
from feature_store.errors import InputFileError
from feature_store.event_index import EventIdIndex
from feature_store.ingest import (
    StreamReport,
    ingest_raw_rows,
    log_ingestions,
    new_batch_id,
    new_rows_sql,
    record_new_rows,
    require_events,
    stage_new_rows,
)
from feature_store.layout import StoreLayout
from feature_store.offline_store import OfflineStore
from feature_store.readers import (
    ROW_NUMBER,
    RawRows,
    json_value_text,
    raw_rows_of,
    records_table,
    refuse_unusable_names,
)
from feature_store.schema import QUARANTINE_ID_COLUMN, STREAMS, Stream, column_names

Records = Mapping[Stream, Sequence[object]]


@dataclass
class RecordsReport:
    """What one ingestion of in-memory items did, per stream, and whom it may have changed."""

    batch_id: str
    streams: dict[Stream, StreamReport] = field(default_factory=dict)
    # Customers named by the items of a stream that accepted something: their stored events may
    # have changed, so their features are due for recomputation. A superset, never a subset.
    customers: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Request:
    """The events of one request and the name the quarantine gives their source."""

    records: Records
    source: str


def ingest_records(
    layout: StoreLayout,
    records: Records,
    *,
    source: str,
    con: duckdb.DuckDBPyConnection | None = None,
    index: EventIdIndex | None = None,
) -> RecordsReport:
    """Ingest parsed JSON items per stream as one batch; ``source`` names them in the quarantine."""
    (outcome,) = ingest_requests(layout, [Request(records, source)], con=con, index=index)
    if isinstance(outcome, InputFileError):
        raise outcome
    return outcome


def ingest_requests(
    layout: StoreLayout,
    requests: Sequence[Request],
    *,
    con: duckdb.DuckDBPyConnection | None = None,
    index: EventIdIndex | None = None,
) -> list[RecordsReport | InputFileError]:
    """Ingest requests in order, written together; one outcome each: its report, or the
    ``InputFileError`` that refuses it alone (no known or required column: not events at all).
    ``stage_requests`` then ``write_staged``, which a service runs on two threads."""
    session = (
        connect(threads=2, spill_to=layout.spill_dir, memory_limit=layout.memory_limit)
        if con is None
        else con
    )
    try:
        staged = stage_requests(session, requests)
        return write_staged(layout, staged, con=session, index=index)
    finally:
        if con is None:
            session.close()


def write_staged(
    layout: StoreLayout,
    staged: StagedRequests,
    *,
    con: duckdb.DuckDBPyConnection,
    index: EventIdIndex | None = None,
) -> list[RecordsReport | InputFileError]:
    """Store staged requests: under the store's lock, those with only new ids as one batch, the
    others through the file path; one outcome per request.

    ``con`` and ``index`` are kept by the caller between calls (a DuckDB database costs 25 ms to
    open; the index reads every stored id once). The catalog is attached for the call and
    detached afterwards, so another process (the CLI) can ingest between two calls.
    """
    layout.home.mkdir(parents=True, exist_ok=True)
    index = index if index is not None else EventIdIndex(OfflineStore(layout))
    with FileLock(str(layout.lock_path)):
        quarantine.attach_catalog(con, layout)
        try:
            return _Group(con, layout, index).ingest(staged)
        finally:
            con.execute(f"DETACH {quarantine.CATALOG}")


_REQUEST = "__request"  # which request of the group a staged row belongs to
# Every column the validation reads; a request lacking one is judged as if it were null, exactly as
# a JSON Lines line lacking a key that other lines of the file have.
_VALIDATED: dict[Stream, list[str]] = {
    stream: [*column_names(stream), QUARANTINE_ID_COLUMN] for stream in STREAMS
}


@dataclass
class _Loaded:
    """One request's items of one stream: as received (for the quarantine) and described."""

    rows: pa.Table
    malformed: pa.Table  # the items that are not JSON objects (``readers.MALFORMED_COLUMNS``)
    raw: RawRows

    def register(self, con: duckdb.DuckDBPyConnection, remember: Callable[[str], str]) -> None:
        """Make the rows and the rows set aside readable as ``raw.table`` and its set-aside table
        (``remember`` notes each name to forget at the end)."""
        con.register(remember(self.raw.table), self.rows)
        con.register(remember(self.raw.malformed_table), self.malformed)


@dataclass
class StagedRequests:
    """Requests validated, not stored yet: what ``write_staged`` needs, and nothing of the store."""

    requests: Sequence[Request]
    # Per request: None, or the error refusing it; per request and stream, its items as loaded.
    refused: list[InputFileError | None]
    loaded: list[dict[Stream, _Loaded]]
    # Per stream: the staged rows of every request (validation.py's typed columns, ``reasons``,
    # ``__request``, ``__reason``, ``__hash``), and the same as arrays for counting.
    rows: dict[Stream, pa.Table]
    arrays: dict[Stream, dict[str, np.ndarray]]


def stage_requests(con: duckdb.DuckDBPyConnection, requests: Sequence[Request]) -> StagedRequests:
    """Load and validate the events of several requests, one statement per stream for all of
    them (its cost is mostly fixed). Reads no store and takes no lock: a service validates the
    next requests while the previous ones are written."""
    refused: list[InputFileError | None] = []
    loaded: list[dict[Stream, _Loaded]] = []
    for number, request in enumerate(requests):
        try:
            loaded.append(_load(number, request))
            refused.append(None)
        except InputFileError as error:  # this request is not events at all; the others are
            loaded.append({})
            refused.append(error)
    staged = StagedRequests(requests, refused, loaded, {}, {})
    for stream in STREAMS:
        rows = _stage(con, stream, loaded)
        if rows is not None:
            reason = rows.column("__reason")
            staged.rows[stream] = rows
            staged.arrays[stream] = {
                _REQUEST: rows.column(_REQUEST).to_numpy(),
                "valid": reason.is_null().to_numpy(zero_copy_only=False),
                "reason": np.asarray(reason.to_pylist(), dtype=object),
                "h": rows.column("__hash").to_numpy(),
            }
    return staged


def _load(number: int, request: Request) -> dict[Stream, _Loaded]:
    loaded = {}
    for stream in STREAMS:
        items = request.records.get(stream, ())
        if items:
            refuse_unusable_names(request.source, items)  # before a column is built for any
            rows, malformed = records_table(items)
            raw = raw_rows_of(rows, f"raw_{stream}_{number}", malformed)
            require_events(stream, raw, request.source)
            loaded[stream] = _Loaded(rows, malformed, raw)
    return loaded


def _stage(
    con: duckdb.DuckDBPyConnection, stream: Stream, loaded: list[dict[Stream, _Loaded]]
) -> pa.Table | None:
    names = _VALIDATED[stream]
    tables = []
    for number, streams in enumerate(loaded):
        if stream in streams:
            rows = streams[stream].rows
            columns = {
                name: rows.column(name) if name in rows.column_names else _nulls(rows.num_rows)
                for name in names
            }
            columns[ROW_NUMBER] = rows.column(ROW_NUMBER)
            columns[_REQUEST] = pa.array(np.full(rows.num_rows, number, np.int64))
            tables.append(pa.table(columns))
    if not tables:
        return None
    incoming = f"incoming_{stream}"
    together = pa.concat_tables(tables)
    con.register(incoming, together)
    try:
        raw = RawRows(incoming, names, dict.fromkeys(names, "VARCHAR"), together.num_rows)
        return stage_new_rows(con, stream, raw, _REQUEST)
    finally:
        con.unregister(incoming)


class _Group:
    """Requests written together: those with only new ids as one batch, the others one by one."""

    def __init__(
        self, con: duckdb.DuckDBPyConnection, layout: StoreLayout, index: EventIdIndex
    ) -> None:
        self.con, self.store, self.index = con, OfflineStore(layout), index
        # Arrow tables registered and views made, forgotten at the end
        self.tables: list[tuple[str, str]] = []
        self.batch_id = new_batch_id()

    def ingest(self, staged: StagedRequests) -> list[RecordsReport | InputFileError]:
        requests, loaded = staged.requests, staged.loaded
        outcomes: list[RecordsReport | InputFileError | None] = list(staged.refused)
        try:
            for stream in STREAMS:
                self.index.catch_up(self.con, stream)
            for stream, rows in staged.rows.items():
                self.con.register(self._table(f"group_{stream}"), rows)
            fast = self._new_only(requests, outcomes, staged.arrays)
            self._write(fast, requests, loaded, staged.arrays, outcomes)
            for number in range(len(requests)):
                if outcomes[number] is None:  # maybe a retry: the file path, seeing the rest
                    outcomes[number] = self._exact(number, requests[number], loaded[number])
        finally:
            for name, kind in reversed(self.tables):
                _drop(self.con, name, kind)
        return [outcome for outcome in outcomes if outcome is not None]

    def _new_only(
        self,
        requests: Sequence[Request],
        outcomes: list[RecordsReport | InputFileError | None],
        staged: Mapping[Stream, Mapping[str, np.ndarray]],
    ) -> list[int]:
        """The requests none of whose valid ids is stored, repeated, or in an earlier one of them."""
        fast = []
        taken: dict[Stream, list[np.ndarray]] = {stream: [] for stream in STREAMS}
        mine: dict[int, dict[Stream, np.ndarray]] = {}
        for number in range(len(requests)):
            if outcomes[number] is not None:
                continue
            ids = {}
            for stream, found in staged.items():
                if not found:
                    continue
                valid = (found[_REQUEST] == number) & found["valid"]
                ids[stream] = found["h"][valid]
            if any(_maybe_taken(self.index, s, h, taken[s]) for s, h in ids.items()):
                continue
            for stream, hashes in ids.items():
                taken[stream].append(hashes)
            mine[number] = ids
            fast.append(number)
        self.fast_ids = mine
        return fast

    def _write(
        self,
        fast: list[int],
        requests: Sequence[Request],
        loaded: list[dict[Stream, _Loaded]],
        staged: Mapping[Stream, Mapping[str, np.ndarray]],
        outcomes: list[RecordsReport | InputFileError | None],
    ) -> None:
        """The requests with new ids only: one catalog transaction, one part per stream."""
        if not fast:
            return
        open_entries = {stream: quarantine.has_open_rows(self.con, stream) for stream in STREAMS}
        self.con.execute("BEGIN TRANSACTION")
        try:
            logged = []
            for number in fast:
                report = RecordsReport(self.batch_id)
                for stream in STREAMS:
                    source = requests[number].source
                    if stream not in loaded[number]:
                        report.streams[stream] = StreamReport(stream=stream, source_file=source)
                        continue
                    found = staged[stream]
                    mine = found[_REQUEST] == number
                    reasons = Counter(found["reason"][mine & ~found["valid"]].tolist())
                    one = self._request_rows(
                        stream, number, loaded[number][stream], reasons, open_entries[stream]
                    )
                    report.streams[stream] = counts = record_new_rows(
                        self.con,
                        stream,
                        loaded[number][stream].raw,
                        source,
                        one,
                        self.batch_id,
                        dict(reasons),
                        may_resolve=open_entries[stream],
                    )
                    open_entries[stream] |= counts.quarantined > 0
                    logged.append(counts)
                report.customers = _touched_customers(requests[number].records, report.streams)
                outcomes[number] = report
            log_ingestions(self.con, logged, self.batch_id)
            written = []
            members = ", ".join(str(number) for number in fast)
            for stream in STREAMS:
                hashes = [self.fast_ids[n][stream] for n in fast if stream in self.fast_ids[n]]
                if hashes and sum(len(h) for h in hashes):
                    sql = new_rows_sql(
                        stream, f"group_{stream}", f"{_REQUEST} IN ({members})", self.batch_id
                    )
                    part = self.store.write_part(self.con, sql, stream, self.batch_id)
                    written.append((stream, part.name, np.concatenate(hashes)))
            self.con.execute("COMMIT")
        except BaseException:
            self.con.execute("ROLLBACK")
            raise
        for stream, name, hashes in written:
            self.index.written(stream, name, hashes)

    def _request_rows(
        self,
        stream: Stream,
        number: int,
        loaded: _Loaded,
        reasons: Mapping[str, int],
        may_resolve: bool,
    ) -> str:
        """A view of one request's staged rows, when the catalog needs them (to quarantine some,
        with the items as received, which the quarantine keeps; or to resolve entries)."""
        quarantines = bool(reasons or loaded.raw.malformed_count)
        if not (quarantines or may_resolve):
            return f"group_{stream}"  # not read: every row accepted, nothing to resolve
        view = self._table(f"staged_{stream}_{number}", "view")
        self.con.execute(
            f"CREATE OR REPLACE TEMP VIEW {view} AS "
            f"SELECT * FROM group_{stream} WHERE {_REQUEST} = {number}"
        )
        if quarantines:
            loaded.register(self.con, self._table)
        return view

    def _exact(self, number: int, request: Request, loaded: dict[Stream, _Loaded]) -> RecordsReport:
        """The file path, joining the stored events: duplicates and conflicts settled by content."""
        report = RecordsReport(new_batch_id())
        for stream in STREAMS:
            if stream in loaded:
                raw = loaded[stream].raw
                loaded[stream].register(self.con, self._table)
                report.streams[stream] = ingest_raw_rows(
                    self.con, self.store, stream, raw, request.source, report.batch_id
                )
                self.index.catch_up(self.con, stream)
            else:
                report.streams[stream] = StreamReport(stream=stream, source_file=request.source)
        report.customers = _touched_customers(request.records, report.streams)
        return report

    def _table(self, name: str, kind: str = "arrow") -> str:
        """Remember a registered Arrow table (or a view) to forget at the end."""
        self.tables.append((name, kind))
        return name


def _drop(con: duckdb.DuckDBPyConnection, name: str, kind: str) -> None:
    with contextlib.suppress(duckdb.Error):
        if kind == "view":
            con.execute(f"DROP VIEW IF EXISTS {name}")
        else:
            con.unregister(name)


def _nulls(count: int) -> pa.Array:
    return pa.nulls(count, pa.string())


def _maybe_taken(
    index: EventIdIndex, stream: Stream, hashes: np.ndarray, earlier: list[np.ndarray]
) -> bool:
    if len(np.unique(hashes)) != len(hashes) or index.contains(stream, hashes).any():
        return True
    return any(np.isin(hashes, other).any() for other in earlier)


def _touched_customers(records: Records, reports: Mapping[Stream, StreamReport]) -> list[str]:
    customers: set[str] = set()
    for stream, report in reports.items():
        if report.accepted or report.resolved_from_quarantine:
            customers.update(_customer_ids(records.get(stream, ())))
    return sorted(customers)


def _customer_ids(items: Sequence[object]) -> set[str]:
    """The customers of ``items`` as their ids are stored: the text the readers make of any
    JSON scalar. `str` of them left `true` and `604520097.0` stored but never refreshed (they
    were looked for as "True"; a hostile client, 2026-12-06)."""
    ids = set()
    for item in items:
        value = item.get("customer_id") if isinstance(item, dict) else None
        if value is not None and not isinstance(value, dict | list):
            text = json_value_text(value)
            # stored without the spaces around it, as ingestion trims them (spaces only:
            # ``validation._trimmed``): " c1 " was stored as c1 and refreshed as " c1 "
            ids.add(text.strip(" ") if text is not None else None)
    return {customer for customer in ids if customer}
