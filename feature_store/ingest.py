"""Ingestion: read a file, validate every row, drop re-sent events by ``event_id``, store, report.

Every received row ends in exactly one of three places, so that
``received == accepted + duplicates + quarantined`` always holds:

- accepted: valid and its ``event_id`` never seen before (in this file or any earlier ingestion);
- duplicates: an exact re-send: valid, its ``event_id`` already taken by the winning copy (the
  stored event, else the first valid copy in the file) and its typed content the same;
- quarantined: breaks the contract, or reuses a taken ``event_id`` for different content
  (``conflicting_duplicate``); stored with its reasons until a later ingestion settles it.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
from filelock import FileLock

from feature_store import quarantine
from feature_store.customers import ingest_customers
from feature_store.engine import connect, sql_identifier, sql_string
from feature_store.errors import InputFileError, SegmentsError
from feature_store.formats import FileFormat, file_format
from feature_store.layout import StoreLayout
from feature_store.offline_store import OfflineStore, remove_stale_partials
from feature_store.readers import (
    ROW_NUMBER,
    SINGLE_VALUE_COLUMNS,
    RawRows,
    csv_delimiter,
    describe_columns,
    load_raw_rows,
)
from feature_store.schema import (
    COLUMNS,
    QUARANTINE_BOOKKEEPING_COLUMNS,
    QUARANTINE_EXPORT_COLUMNS,
    QUARANTINE_ID_COLUMN,
    RAW_LINE_COLUMN,
    Reason,
    Stream,
    column_names,
)
from feature_store.validation import (
    CONFLICT_REASONS_SQL,
    content_differs,
    later_copies_sql,
    raw_json_expression,
    reasons_expression,
    typed_columns,
    typed_references,
)

StepCallback = Callable[[str], None]


@dataclass
class StreamReport:
    """What one ingestion did with one file."""

    stream: str
    source_file: str
    received: int = 0
    accepted: int = 0
    duplicates: int = 0
    quarantined: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    unknown_columns: list[str] = field(default_factory=list)
    resolved_from_quarantine: int = 0
    # Of the ``conflicting_duplicate`` rows, those whose id an earlier ingestion stored (the
    # others repeat an id within the file): many of them say the file is another company's data.
    conflicts_with_store: int = 0
    # Numbers of a semicolon-separated CSV written as thousands with a point ("1.234"): read as
    # decimals, as the contract says, but such a file is usually of a locale that writes 1.234,50
    # for 1234.50, and "1.234" then means 1234 (``thousands_note``).
    thousands_like: int = 0
    # Numbers of a semicolon-separated CSV written with a decimal comma ("100,50"): refused (the
    # contract reads a point), and their rows quarantined without a word on why (``comma_note``).
    decimal_commas: int = 0
    # Of a customers file's rows, those a later row of the same id with other attributes replaced
    # (``feature_store.customers``); received = accepted + duplicates + superseded + quarantined.
    superseded: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def rejected_files_error(reports: Sequence[StreamReport]) -> str | None:
    """One line for the files of an ingestion none of whose rows was stored (every one
    quarantined): how many, why most of them, what usually fixes it, and which files were
    stored; None when every file stored something."""
    rejected = [r for r in reports if r.received and r.quarantined == r.received]
    if not rejected:
        return None
    parts = []
    for report in rejected:
        reason, count = max(report.reasons.items(), key=lambda item: item[1], default=("", 0))
        hint = _WHOLE_FILE_HINTS.get(_HINT_OF_REASON.get(reason, ""))
        parts.append(
            f"every one of the {report.received:,} {report.stream} rows of {report.source_file} "
            f"was quarantined, {count:,} for {reason}" + (f" ({hint})" if hint else "")
        )
    stored = [r for r in reports if r not in rejected and r.received]
    kept = (
        "; " + ", ".join(f"the {r.stream} file's rows were stored" for r in stored)
        if stored
        else "; nothing was stored"
    )
    return (
        "; ".join(parts)
        + kept
        + ". `segments quarantine list` shows them; once fixed, `segments ingest` again accepts "
        "them"
    )


# What most often makes every row of an export fail, by the reason most of them failed for.
_WHOLE_FILE_HINTS = {
    "occurred_at": "times are read as ISO 8601, 2024-01-15T09:30:00Z; a mapping file's `format` "
    "reads another: docs/ingestion.md, mapping files",
    # no mapping reads a decimal comma: this pointed at mapping files, which read decimals only
    # (a data engineer's review)
    "number": "numbers are read with a decimal point, 10.50 not 10,50, and no thousands "
    "separator: export the file with a decimal point (a spreadsheet's or billing tool's "
    "number format), then ingest it again",
    "column": "a column the contract needs is missing or empty; a mapping file names the "
    "export's own columns: docs/ingestion.md, mapping files",
}
_HINT_OF_REASON = {
    **dict.fromkeys((Reason.INVALID_OCCURRED_AT, Reason.MISSING_OCCURRED_AT), "occurred_at"),
    **dict.fromkeys(
        (Reason.INVALID_MRR, Reason.INVALID_AMOUNT, Reason.INVALID_SEATS, Reason.INVALID_QUANTITY),
        "number",
    ),
    **dict.fromkeys((r for r in Reason if r.value.startswith("missing_")), "column"),
}


def new_batch_id() -> str:
    """Sortable by time, unique across concurrent runs."""
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ") + "-" + secrets.token_hex(3)


def ingest_files(
    layout: StoreLayout,
    files: dict[Stream, Path],
    *,
    customers: Path | None = None,
    on_step: StepCallback | None = None,
    source_names: Mapping[Stream, str] | None = None,
) -> dict[str, StreamReport]:
    """Ingest one file per stream (and optionally customer attributes) under one batch id;
    ``source_names`` names a file in the report and the quarantine in place of its path (a
    converted export's temporary file, which is gone once ingested)."""
    layout.home.mkdir(parents=True, exist_ok=True)
    batch_id = new_batch_id()
    reports: dict[str, StreamReport] = {}
    with FileLock(str(layout.lock_path)):
        remove_stale_partials(layout)  # a killed run's leftovers; nothing else writes now
        con = connect(spill_to=layout.spill_dir, memory_limit=layout.memory_limit)
        try:
            quarantine.attach_catalog(con, layout)
            for stream, path in files.items():
                if on_step:
                    on_step(f"{stream}: {path}")
                name = (source_names or {}).get(stream)
                reports[stream] = ingest_stream(
                    con, OfflineStore(layout), stream, path, batch_id, source_name=name
                )
            if customers is not None:
                if on_step:
                    on_step(f"customers: {customers}")
                counts = ingest_customers(con, layout, customers, batch_id)
                reports["customers"] = StreamReport(**counts)  # type: ignore[arg-type]
        finally:
            con.close()
    return reports


def ingest_stream(
    con: duckdb.DuckDBPyConnection,
    store: OfflineStore,
    stream: Stream,
    path: Path,
    batch_id: str,
    *,
    source_name: str | None = None,
) -> StreamReport:
    """Ingest one file of ``stream``; ``con`` must have the catalog attached."""
    # a CSV is refused for its columns before its rows are loaded (memory and time in its size)
    raw = load_raw_rows(
        con,
        path,
        f"raw_{stream}",
        check_header=lambda header: _require_events_file(stream, header, source_name or path),
    )
    report = ingest_raw_rows(con, store, stream, raw, source_name or path, batch_id)
    if file_format(path) is FileFormat.CSV and csv_delimiter(path) == ";":
        report.thousands_like = _numbers_like(con, stream, raw, _THOUSANDS)
        report.decimal_commas = _numbers_like(con, stream, raw, _DECIMAL_COMMA)
    return report


# "1.234" or "12.345.678": a point before each group of three digits, as thousands are written
# where the decimal mark is a comma.
_THOUSANDS = r"-?[1-9][0-9]{0,2}(\.[0-9]{3})+"  # not 0.500, a decimal however it is read


# "100,50" or "-0,5": a decimal comma, as a European export writes numbers.
_DECIMAL_COMMA = r"-?[0-9]+,[0-9]+"


def _numbers_like(
    con: duckdb.DuckDBPyConnection, stream: Stream, raw: RawRows, pattern: str
) -> int:
    """Values of the numeric columns written as ``pattern`` (thousands with a point, a decimal
    comma)."""
    numeric = [c.name for c in COLUMNS[stream] if c.sql_type == "DOUBLE" and c.name in raw.types]
    if not numeric:
        return 0
    matches = " + ".join(
        f"count(*) FILTER (regexp_full_match(trim(CAST({sql_identifier(name)} AS VARCHAR)), "
        f"'{pattern}'))"
        for name in numeric
    )
    (count,) = con.execute(f"SELECT {matches} FROM {raw.table}").fetchone()
    return int(count)


def thousands_note(report: StreamReport) -> str | None:
    """A line when a semicolon-separated file wrote numbers like thousands with a point: a
    European export's "1.234" for 1,234 was stored as 1.234 without a word (a data engineer's
    review)."""
    if not report.thousands_like:
        return None
    return (
        f"{report.stream}: the file separates its columns with semicolons, as exports that write "
        f"1.234,50 for 1234.50 do, and {report.thousands_like:,} of its numbers read like "
        "thousands with a point (1.234): they were read as decimals (1.234, not 1234). If they "
        "are thousands, export the file with a decimal point and no thousands separator"
    )


def comma_note(report: StreamReport) -> str | None:
    """A line when a semicolon-separated file wrote numbers with a decimal comma: their rows were
    quarantined as invalid amounts or MRR, the rest stored, exit 0, and nothing said why (a data
    engineer's review)."""
    # a file none of whose rows was stored is refused in one line that says the same
    if not report.decimal_commas or not report.accepted:
        return None
    return (
        f"{report.stream}: {report.decimal_commas:,} of the file's numbers are written with a "
        "decimal comma (100,50), which the events contract does not read: their rows were "
        "quarantined (invalid_amount, invalid_mrr, ...). Export the file with a decimal point, "
        "then ingest it again (`segments quarantine export` writes the rows to fix)"
    )


def ingest_raw_rows(
    con: duckdb.DuckDBPyConnection,
    store: OfflineStore,
    stream: Stream,
    raw: RawRows,
    path: Path | str,
    batch_id: str,
) -> StreamReport:
    """Ingest rows already loaded (a file, or the events of an HTTP request); ``path`` names the
    source in the report and the quarantine."""
    _require_events_file(stream, raw, path)
    staged, accepted = f"staged_{stream}", f"accepted_{stream}"
    _stage(con, store, stream, raw, staged)
    _keep_new_events(con, stream, staged, accepted)
    report = _count(con, stream, path, raw, staged, accepted)
    con.execute("BEGIN TRANSACTION")
    try:
        rejected = _rejected_sql(con, stream, path, raw, staged, batch_id)
        quarantine.quarantine_rows(con, rejected)
        if QUARANTINE_ID_COLUMN in raw.types:  # only a correction file corrects entries
            quarantine.supersede_rows(con, stream, batch_id, rejected)
        if report.accepted:
            names = ", ".join(column_names(stream))
            store.write_part(
                con,
                f"SELECT {names}, {sql_string(batch_id)} AS batch_id FROM {accepted}",
                stream,
                batch_id,
            )
        report.resolved_from_quarantine = quarantine.resolve_rows(
            con,
            stream,
            batch_id,
            accepted_sql=f"SELECT event_id FROM {accepted}",
            settled_sql=f"SELECT corrects FROM {staged} WHERE len(reasons) = 0",
        )
        _log(con, report, batch_id)
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise
    return report


def stage_new_rows(
    con: duckdb.DuckDBPyConnection, stream: Stream, raw: RawRows, keep: str
) -> pa.Table:
    """Type and validate rows (of several requests, told apart by the column ``keep``) without
    the join to the stored events: every row with ``__reason`` (the primary reason, null when
    valid) and ``__hash`` (the ``hash`` of the event id) for the caller to count and to look up in
    ``EventIdIndex``. One statement: on a request of 1,000 events its cost is mostly fixed. Only
    rows none of whose ids may be stored or repeated go on to ``record_new_rows``."""
    sql = (
        f"SELECT *, false AS in_store, reasons[1] AS __reason, hash(event_id) AS __hash "
        f"FROM ({_staging_sql(stream, raw, (keep,))})"
    )
    # Kept as a view on the connection, named by its text: the client library reads the text of
    # every query it is given, which for these ~8,000 characters costs more than DuckDB's binding.
    view = f"stage_{hashlib.md5(sql.encode()).hexdigest()[:16]}"
    try:
        return con.sql(f"SELECT * FROM {view}").to_arrow_table()
    except duckdb.CatalogException:
        con.execute(f"CREATE OR REPLACE TEMP VIEW {view} AS {sql}")
        return con.sql(f"SELECT * FROM {view}").to_arrow_table()


def require_events(stream: Stream, raw: RawRows, source: str) -> None:
    """Refuse a request's events that are not events at all (``InputFileError``), as a file would
    be, in a request's words: its events and fields, not a file's rows and columns (a one-event
    request whose plan was an object was told "not a billing events file", a review of
    2026-12-07)."""
    _require_events_file(stream, raw, source, words=_REQUEST_WORDS)


def record_new_rows(
    con: duckdb.DuckDBPyConnection,
    stream: Stream,
    raw: RawRows,
    path: Path | str,
    staged: str,
    batch_id: str,
    reasons: dict[str, int],
    *,
    may_resolve: bool,
) -> StreamReport:
    """The catalog's part of ingesting the rows ``staged`` (of ``stage_new_rows``, one request's)
    none of whose ids is stored or repeated: every valid row is accepted, the others quarantined
    (``reasons``: primary reason -> rows); quarantine entries they settle are resolved (skipped when
    ``may_resolve`` is false: the stream has no open entry). The caller logs the report
    (``log_ingestions``), writes the accepted rows (``new_rows_sql``) and commits."""
    reasons = dict(reasons)
    if raw.malformed_count:
        reasons[Reason.MALFORMED_ROW.value] = raw.malformed_count
    quarantined = sum(reasons.values())
    report = StreamReport(
        stream=stream,
        source_file=str(path),
        received=raw.received,
        accepted=raw.received - quarantined,
        quarantined=quarantined,
        reasons=dict(sorted(reasons.items())),
        unknown_columns=sorted(set(raw.columns) - _known_columns(stream)),
    )
    if report.quarantined:
        rejected = _rejected_sql(con, stream, path, raw, staged, batch_id)
        quarantine.quarantine_rows(con, rejected)
        if QUARANTINE_ID_COLUMN in raw.types:  # only a correction file corrects entries
            quarantine.supersede_rows(con, stream, batch_id, rejected)
    if may_resolve:
        valid_rows = f"{staged} WHERE len(reasons) = 0"
        report.resolved_from_quarantine = quarantine.resolve_rows(
            con,
            stream,
            batch_id,
            accepted_sql=f"SELECT event_id FROM {valid_rows}",
            settled_sql=f"SELECT corrects FROM {valid_rows}",
        )
    return report


def log_ingestions(
    con: duckdb.DuckDBPyConnection, reports: list[StreamReport], batch_id: str
) -> None:
    """The ingestion log rows of several reports of one batch, in one statement."""
    if not reports:
        return
    row = "(?, ?, ?, current_localtimestamp(), ?, ?, ?, ?, ?, ?)"
    values: list[object] = []
    for report in reports:
        values += _log_values(report, batch_id)
    con.execute(
        f"INSERT INTO {quarantine.CATALOG}.ingestions VALUES " + ", ".join([row] * len(reports)),
        values,
    )


def new_rows_sql(stream: Stream, staged: str, condition: str, batch_id: str) -> str:
    """The valid rows of a ``stage_new_rows`` table meeting ``condition``, as stored in a part."""
    names = ", ".join(column_names(stream))
    return (
        f"SELECT {names}, {sql_string(batch_id)} AS batch_id FROM {staged} "
        f"WHERE len(reasons) = 0 AND {condition}"
    )


@dataclass(frozen=True)
class _Words:
    """How a refusal names what it was given: a file's rows and columns, a request's events and
    fields."""

    whole: str  # "not a billing events file", with {stream}
    row: str
    column: str


_FILE_WORDS = _Words("not a {stream} events file", "row", "column")
_REQUEST_WORDS = _Words("no {stream} events", "event", "field")


def _require_events_file(
    stream: Stream, raw: RawRows, path: Path | str, words: _Words = _FILE_WORDS
) -> None:
    """Refuse a file that is not an events file at all; a file that is keeps its bad rows.

    No known column (random text, JSON Lines of which no line is an object) or no row means the
    wrong file was given: quarantining it row by row would hide that.
    """
    whole = words.whole.format(stream=stream)
    if not _known_columns(stream) & set(raw.columns):
        if raw.malformed_count and not raw.row_count and not raw.columns:
            # every line set aside: say why, rather than "no known column (found: none)" for
            # events whose every column is there (one event whose customer_id is a list)
            single = ", ".join(sorted(SINGLE_VALUE_COLUMNS))
            raise InputFileError(
                f"{path}: {whole}: all {raw.malformed_count:,} {words.row}(s) are malformed (not "
                f"a JSON object, or one of {single} that is an object or a list)"
            )
        raise InputFileError(
            f"{path}: {whole}: no known {words.column} (found: "
            f"{describe_columns(raw.columns)}; expected {', '.join(column_names(stream))})"
            f"{_case_hint(stream, raw.columns, words)}"
        )
    if not raw.received:
        raise InputFileError(f"{path}: no {words.row}s; expected {stream} events")
    _require_columns(stream, raw, path, words)


def _require_columns(
    stream: Stream, raw: RawRows, path: Path | str, words: _Words = _FILE_WORDS
) -> None:
    required = [c.name for c in COLUMNS[stream] if c.required]
    missing = [name for name in required if name not in raw.types]
    if missing and raw.row_count:
        raise InputFileError(
            f"{path}: {words.whole.format(stream=stream)}: required {words.column}(s) "
            f"{', '.join(missing)} missing (found: {describe_columns(raw.columns)}); see the "
            f"events contract{_case_hint(stream, raw.columns, words)}"
        )


def _case_hint(stream: Stream, columns: Sequence[str], words: _Words = _FILE_WORDS) -> str:
    """'; column names are exact: Event_ID is event_id' for a file whose names differ from the
    contract's only in case or surrounding spaces (a spreadsheet's header row); "field names"
    for a request."""
    known = set(column_names(stream))
    alike = [
        (name, name.strip().lower())
        for name in columns
        if name not in known and name.strip().lower() in known
    ]
    if not alike:
        return ""
    shown = ", ".join(f"{name} is {meant}" for name, meant in alike[:3])
    more = f" and {len(alike) - 3} more" if len(alike) > 3 else ""
    return f"; {words.column} names are exact: {shown}{more}"


def _known_columns(stream: Stream) -> set[str]:
    """The contract's columns plus those a file exported from quarantine carries."""
    return set(column_names(stream)) | set(QUARANTINE_EXPORT_COLUMNS)


def _stage(
    con: duckdb.DuckDBPyConnection, store: OfflineStore, stream: Stream, raw: RawRows, staged: str
) -> None:
    """Type and validate every row, and hold it against the stored event of the same id.

    ``in_store`` says the id is taken by an earlier ingestion, whose event wins: a valid row that
    says something else gets ``conflicting_duplicate`` here, one that says the same is a re-send.
    Done in the staging pass, one join, so that re-ingesting a file costs no extra pass.
    """
    incoming = _staging_sql(stream, raw)
    conflicting = (
        f"len(incoming.reasons) = 0 AND stored.event_id IS NOT NULL "
        f"AND {content_differs(stream, 'incoming', 'stored')}"
    )
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE {staged} AS
            SELECT incoming.* REPLACE (
                       CASE WHEN {conflicting} THEN {CONFLICT_REASONS_SQL} ELSE incoming.reasons END AS reasons
                   ),
                   stored.event_id IS NOT NULL AS in_store
            FROM ({incoming}) AS incoming
            LEFT JOIN ({store.events_sql(stream)}) AS stored USING (event_id)"""
    )
    (staged_count,) = con.execute(f"SELECT count(*) FROM {staged}").fetchone()
    if staged_count != raw.row_count:
        raise SegmentsError(
            f"the offline store holds some {stream} event id more than once "
            f"({store.layout.stream_dir(stream)}); ingestion refused so that no row is counted twice"
        )


def _staging_sql(stream: Stream, raw: RawRows, keep: tuple[str, ...] = ()) -> str:
    """Every row of ``raw`` typed, with its reasons (validation.py) and the quarantine entry it
    corrects; the columns ``keep`` pass through."""
    typed = typed_columns(stream, raw.types)
    corrects = (
        f"NULLIF(CAST(\"{QUARANTINE_ID_COLUMN}\" AS VARCHAR), '')"
        if QUARANTINE_ID_COLUMN in raw.types
        else "CAST(NULL AS VARCHAR)"
    )
    # The typed columns computed once in a subquery; the conditions read them from there.
    references = typed_references(stream)
    typed_once = ", ".join(f"{typed[name]} AS {ref}" for name, ref in references.items())
    columns = ", ".join(f"{ref} AS {name}" for name, ref in references.items())
    return f"""
        SELECT {ROW_NUMBER}, {"".join(f"{name}, " for name in keep)}{columns},
               {reasons_expression(stream, raw.types, references)} AS reasons,
               {corrects} AS corrects
        FROM (SELECT *, {typed_once} FROM {raw.table})"""


def _keep_new_events(
    con: duckdb.DuckDBPyConnection, stream: Stream, staged: str, accepted: str
) -> None:
    """Accept the first valid copy of every id not stored; quarantine later copies that conflict.

    Ids already stored were settled by ``_stage``, so the repeated-id search runs over new ids only
    (nothing at all when a file is re-ingested).
    """
    fresh, later = f"fresh_{stream}", f"later_{stream}"
    con.execute(
        f"CREATE OR REPLACE TEMP VIEW {fresh} AS "
        f"SELECT * FROM {staged} WHERE len(reasons) = 0 AND NOT in_store"
    )
    con.execute(f"CREATE OR REPLACE TEMP TABLE {later} AS {later_copies_sql(stream, fresh)}")
    # A view, not a copy: the accepted rows are read once more, by the Parquet writer.
    con.execute(
        f"CREATE OR REPLACE TEMP VIEW {accepted} AS "
        f"SELECT * FROM {fresh} ANTI JOIN {later} USING ({ROW_NUMBER})"
    )
    (conflicts,) = con.execute(f"SELECT count(*) FILTER (conflicting) FROM {later}").fetchone()
    if conflicts:
        con.execute(
            f"UPDATE {staged} SET reasons = {CONFLICT_REASONS_SQL} WHERE {ROW_NUMBER} IN "
            f"(SELECT {ROW_NUMBER} FROM {later} WHERE conflicting)"
        )


def _count(
    con: duckdb.DuckDBPyConnection,
    stream: Stream,
    path: Path | str,
    raw: RawRows,
    staged: str,
    accepted: str,
) -> StreamReport:
    conflict = sql_string(Reason.CONFLICTING_DUPLICATE.value)
    valid, invalid, with_store = con.execute(
        f"SELECT count(*) FILTER (len(reasons) = 0), count(*) FILTER (len(reasons) > 0), "
        f"count(*) FILTER (in_store AND reasons[1] = {conflict}) FROM {staged}"
    ).fetchone()
    (accepted_count,) = con.execute(f"SELECT count(*) FROM {accepted}").fetchone()
    reasons = dict(
        con.execute(
            f"SELECT reasons[1], count(*) FROM {staged} WHERE len(reasons) > 0 GROUP BY 1 ORDER BY 1"
        ).fetchall()
    )
    if raw.malformed_count:
        reasons[Reason.MALFORMED_ROW.value] = raw.malformed_count
    return StreamReport(
        stream=stream,
        source_file=str(path),
        received=raw.received,
        accepted=int(accepted_count),
        duplicates=int(valid - accepted_count),
        quarantined=int(invalid) + raw.malformed_count,
        reasons={str(k): int(v) for k, v in reasons.items()},
        unknown_columns=sorted(set(raw.columns) - _known_columns(stream)),
        conflicts_with_store=int(with_store),
    )


def _rejected_sql(
    con: duckdb.DuckDBPyConnection,
    stream: Stream,
    path: Path | str,
    raw: RawRows,
    staged: str,
    batch_id: str,
) -> str:
    """Rows to quarantine: the invalid ones with their raw content, plus unsplittable lines."""
    constants = f"{sql_string(stream)} AS stream, {sql_string(str(path))} AS source_file"
    # A row sent back from a quarantine export is the same row without its bookkeeping: sent
    # unchanged, it counts again against its entry instead of opening a second one.
    content_types = {
        name: kind for name, kind in raw.types.items() if name not in QUARANTINE_BOOKKEEPING_COLUMNS
    }
    batch = f"{sql_string(batch_id)} AS batch_id"
    return f"""
        SELECT md5({sql_string(stream)} || raw) AS quarantine_id, stream, reasons[1] AS reason,
               reasons, event_id, customer_id, source_file, source_row, raw, {batch}, corrects
        FROM (
            SELECT {constants}, s.reasons, s.event_id, s.customer_id, s.{ROW_NUMBER} AS source_row,
                   {raw_json_expression(content_types, raw.table)} AS raw, s.corrects
            FROM {staged} AS s JOIN {raw.table} USING ({ROW_NUMBER})
            WHERE len(s.reasons) > 0
            UNION ALL
            SELECT {constants}, ['{Reason.MALFORMED_ROW.value}'], NULL, NULL, source_row,
                   to_json(struct_pack({RAW_LINE_COLUMN} := text)), NULL
            FROM {raw.malformed_table}
        )"""


def _log(con: duckdb.DuckDBPyConnection, report: StreamReport, batch_id: str) -> None:
    log_ingestions(con, [report], batch_id)


def _log_values(report: StreamReport, batch_id: str) -> list[object]:
    return [
        batch_id,
        report.stream,
        report.source_file,
        report.received,
        report.accepted,
        report.duplicates,
        report.quarantined,
        json.dumps(report.reasons),
        report.unknown_columns,
    ]
