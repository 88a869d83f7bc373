"""Validate events held in memory (one customer's, sent to the scoring service) with the same
contract and typing as file ingestion, so the feature SQL sees identical input either way."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa

from feature_store.engine import connect
from feature_store.readers import ROW_NUMBER
from feature_store.schema import STREAMS, Stream, column_names
from feature_store.validation import (
    CONFLICT_REASONS_SQL,
    later_copies_sql,
    reasons_expression,
    typed_columns,
)


@dataclass(frozen=True)
class RejectedEvent:
    stream: str
    index: int
    reasons: list[str]


@dataclass
class ValidatedEvents:
    """Canonical, typed, de-duplicated events per stream, and the events that were refused."""

    events: dict[Stream, pd.DataFrame]
    rejected: list[RejectedEvent] = field(default_factory=list)
    duplicates: int = 0


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def validate_events(
    records: Mapping[Stream, Sequence[Mapping[str, Any]]],
    session: duckdb.DuckDBPyConnection | None = None,
) -> ValidatedEvents:
    """Validate and type the given event records (dicts in the canonical shape).

    The rules of file ingestion apply within the records: a later copy of an event id with the
    same typed content is a duplicate, dropped; one with different content is rejected as
    ``conflicting_duplicate``, never silently dropped. ``session`` is a connection of the
    caller's own (``SessionFactory.session()``); without one a throwaway database is opened.
    """
    con = session if session is not None else connect(threads=1)
    try:
        result = ValidatedEvents(events={})
        for stream in STREAMS:
            staged = _stage(con, stream, list(records.get(stream, ())))
            bad = staged[staged["reasons"].map(len) > 0]
            result.rejected += [
                RejectedEvent(stream, int(row[ROW_NUMBER]), list(row["reasons"]))
                for _, row in bad.iterrows()
            ]
            valid = staged["reasons"].map(len) == 0
            result.duplicates += int((valid & staged["later_copy"]).sum())
            good = staged[valid & ~staged["later_copy"]]
            result.events[stream] = good[column_names(stream)].reset_index(drop=True)
        return result
    finally:
        if session is None:
            con.close()


def _stage(
    con: duckdb.DuckDBPyConnection, stream: Stream, rows: list[Mapping[str, Any]]
) -> pd.DataFrame:
    """Typed rows in input order with their reasons, and whether each repeats an earlier id."""
    columns = sorted({key for row in rows for key in row} | {"event_id"})
    arrays = {name: pa.array([_text(r.get(name)) for r in rows], pa.string()) for name in columns}
    arrays[ROW_NUMBER] = pa.array(range(len(rows)), pa.int64())
    con.register("raw_events", pa.table(arrays))
    types = dict.fromkeys(columns, "VARCHAR")
    selected = ", ".join(f"{sql} AS {name}" for name, sql in typed_columns(stream, types).items())
    staged = con.execute(
        f"""WITH staged AS (
                SELECT {ROW_NUMBER}, {selected}, {reasons_expression(stream, types)} AS reasons
                FROM raw_events
            ),
            valid AS (SELECT * FROM staged WHERE len(reasons) = 0)
            SELECT staged.* REPLACE (
                       CASE WHEN later.conflicting THEN {CONFLICT_REASONS_SQL} ELSE staged.reasons END AS reasons
                   ),
                   later.conflicting IS NOT NULL AS later_copy
            FROM staged LEFT JOIN ({later_copies_sql(stream, "valid")}) AS later USING ({ROW_NUMBER})
            ORDER BY {ROW_NUMBER}"""
    ).df()
    con.unregister("raw_events")
    return staged
