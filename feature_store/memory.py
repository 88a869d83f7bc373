"""Validate events held in memory (one customer's, sent to the scoring service) with the same
contract and typing as file ingestion, so the feature SQL sees identical input either way."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import pyarrow as pa

from feature_store.engine import connect
from feature_store.readers import ROW_NUMBER
from feature_store.schema import STREAMS, Stream, column_names
from feature_store.validation import reasons_expression, typed_columns


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


def validate_events(records: Mapping[Stream, Sequence[Mapping[str, Any]]]) -> ValidatedEvents:
    """Validate and type the given event records (dicts in the canonical shape)."""
    con = connect(threads=1)
    try:
        result = ValidatedEvents(events={})
        for stream in STREAMS:
            rows = list(records.get(stream, ()))
            columns = sorted({key for row in rows for key in row} | {"event_id"})
            arrays = {
                name: pa.array([_text(r.get(name)) for r in rows], pa.string()) for name in columns
            }
            arrays[ROW_NUMBER] = pa.array(range(len(rows)), pa.int64())
            con.register("raw_events", pa.table(arrays))
            types = dict.fromkeys(columns, "VARCHAR")
            typed = typed_columns(stream, types)
            selected = ", ".join(f"{expression} AS {name}" for name, expression in typed.items())
            staged = con.execute(
                f"SELECT {ROW_NUMBER}, {selected}, {reasons_expression(stream, types)} AS reasons "
                f"FROM raw_events ORDER BY {ROW_NUMBER}"
            ).df()
            con.unregister("raw_events")
            bad = staged[staged["reasons"].map(len) > 0]
            result.rejected += [
                RejectedEvent(stream, int(row[ROW_NUMBER]), list(row["reasons"]))
                for _, row in bad.iterrows()
            ]
            good = staged[staged["reasons"].map(len) == 0].drop_duplicates("event_id")
            result.duplicates += int((staged["reasons"].map(len) == 0).sum() - len(good))
            result.events[stream] = good[column_names(stream)].reset_index(drop=True)
        return result
    finally:
        con.close()
