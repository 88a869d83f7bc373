"""Batch assignment: a feature table (or raw events as of an instant) in, one segment per customer out."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from feature_store import formats
from feature_store.currency import CurrencyLevels
from feature_store.errors import InputFileError, InvalidAsOfError
from feature_store.formats import FileFormat
from feature_store.ingest import StreamReport, ingest_files
from feature_store.layout import StoreLayout
from feature_store.schema import Stream
from feature_store.timeutil import (
    as_of_text,
    naive_utc,
    parse_as_of,
    parse_instant,
    rfc3339,
)
from models.assignment import ModelRef, as_of_stamp
from models.bundle import ExplanationView, SegmentModel
from models.business import CANCELED
from pipelines.feature_pipeline import AS_OF_COLUMN, build_local_features, converted, stamped


def as_of_values(features: pd.DataFrame) -> list[str | None]:
    """Each row's as-of as the contract writes it (``as_of_stamps``), None where the table does
    not say (a vector from elsewhere)."""
    if AS_OF_COLUMN not in features:
        return [None] * len(features)
    return as_of_stamps(features[AS_OF_COLUMN].tolist(), "the feature table")


def read_feature_table(path: Path) -> pd.DataFrame:
    """A feature table in any format ``feature_store.formats`` reads, keyed by ``customer_id``."""
    table = formats.read_table(path, text_columns=["customer_id"])
    if "customer_id" not in table.columns:
        raise InputFileError(f"{path}: the feature table has no customer_id column")
    if table.empty:
        raise InputFileError(f"{path}: the feature table has no rows")
    ids = table["customer_id"]
    if ids.isna().any() or (ids.astype(str).str.strip() == "").any():
        row = int((ids.isna() | (ids.astype(str).str.strip() == "")).to_numpy().argmax()) + 1
        raise InputFileError(f"{path}: row {row:,} has no customer_id")
    repeated = ids[ids.duplicated()]
    if len(repeated):
        first = repeated.iloc[0]  # as stored: a Parquet id may be a number
        raise InputFileError(
            f"{path}: customer {str(first)!r} has {int((ids == first).sum())} rows; "
            "one per customer"
        )
    if AS_OF_COLUMN in table:
        table[AS_OF_COLUMN] = as_of_stamps(table[AS_OF_COLUMN].tolist(), str(path))
    return table


def as_of_stamps(values: Sequence[object], source: str, *, rows: bool = True) -> list[str | None]:
    """A table's ``AS_OF_COLUMN`` values as the contract writes them (RFC 3339, UTC, ``Z``),
    None where a value says nothing; a value that is no instant of the contract's years refuses
    the table, naming ``source`` and, with ``rows``, the value's row: copied through,
    "yesterday" became every assignment's ``features_as_of``. The same instant written
    otherwise (a Parquet timestamp, "+00:00") gives the same stamp, so the local and the Spark
    assignment write the same."""
    stamps: dict[object, str | None] = {}
    written: list[str | None] = []
    for row, value in enumerate(values, start=1):
        where = f"{source}: row {row:,}" if rows else source
        if not pd.api.types.is_scalar(value):  # a list or a struct: no instant
            raise InputFileError(f"{where}: {AS_OF_COLUMN} {str(value)[:60]!r} is not an instant")
        if value not in stamps:
            stamps[value] = _as_of_stamp(value, where)
        written.append(stamps[value])
    return written


def _as_of_stamp(value: object, where: str) -> str | None:
    if value is None or pd.isna(value) or value == "":  # pd.NA first: it has no truth value
        return None
    try:
        if isinstance(value, datetime):  # a Parquet timestamp: held to the same years as text
            moment = parse_instant(naive_utc(value).isoformat())
        else:
            parse_instant(str(value))  # the contract's words for what is no instant
            # a date means the end of that day, as `--as-of 2026-06-30` does
            moment = parse_as_of(str(value))
    except (ValueError, InvalidAsOfError) as error:
        raise InputFileError(f"{where}: {AS_OF_COLUMN} {error}") from None
    return as_of_stamp(moment)


def local_features_from_events(
    files: dict[Stream, Path], as_of: datetime
) -> tuple[pd.DataFrame, dict[str, StreamReport]]:
    """Validate events exactly as ingestion does, in a throwaway store, and compute their
    vectors as of ``as_of`` with money in each customer's own currency (and that currency);
    with what the ingestion did to each file, so the rows it set aside are not lost unsaid."""
    with tempfile.TemporaryDirectory() as tmp:
        layout = StoreLayout(Path(tmp))
        reports = ingest_files(layout, files)
        local = build_local_features(layout, as_of)
    if local.empty:  # the model has nobody to place: say why rather than fail inside it
        when = as_of_text(rfc3339(as_of))
        raise InputFileError(f"no customer has an accepted event by {when}: nothing to assign")
    return local, reports


def set_aside_text(report: StreamReport) -> str | None:
    """One line on the rows of a file that assignment did not use, or None when it used all."""
    if not report.quarantined:
        return None
    reasons = ", ".join(f"{reason} {count:,}" for reason, count in sorted(report.reasons.items()))
    return (
        f"{report.source_file}: {report.quarantined:,} of {report.received:,} rows break the "
        f"events contract and were not used ({reasons}); `segments ingest` keeps such rows in "
        "quarantine to inspect"
    )


def converted_events_features(
    local: pd.DataFrame, levels: CurrencyLevels | None, as_of: datetime
) -> pd.DataFrame:
    """A ``local_features_from_events`` table with money converted by ``levels`` (a file of a
    few customers cannot measure them, nor may it choose its own: the model's and the data
    home's), stamped with ``as_of``."""
    return stamped(converted(local, levels), as_of)


def check_feature_table(model: SegmentModel, features: pd.DataFrame) -> None:
    """Refuse a table the model cannot read: missing columns, text or missing values."""
    missing = [name for name in model.feature_names if name not in features.columns]
    if missing:
        raise InputFileError(
            f"the feature table lacks column(s) {', '.join(missing)} that the model needs"
        )
    values = features[model.feature_names]
    bad = [name for name in model.feature_names if not pd.api.types.is_numeric_dtype(values[name])]
    if bad:
        raise InputFileError(f"non-numeric values in feature column(s) {', '.join(bad)}")
    if values.isna().any().any():
        rows = features.loc[values.isna().any(axis=1), "customer_id"].head(5).tolist()
        raise InputFileError(f"missing feature values for customer(s) {', '.join(map(str, rows))}")
    infinite = ~np.isfinite(values.to_numpy(dtype=float)).all(axis=1)
    if infinite.any():
        rows = features.loc[infinite, "customer_id"].head(5).tolist()
        raise InputFileError(f"infinite feature values for customer(s) {', '.join(map(str, rows))}")


def assign_table(model: SegmentModel, features: pd.DataFrame) -> pd.DataFrame:
    """Check the columns, then assign every row (with the as-of of its features)."""
    check_feature_table(model, features)
    # Text, missing where the table does not say (as Parquet and Spark read it back).
    as_of = pd.Series(as_of_values(features), index=features.index, dtype="str")
    assigned = model.assign(features).assign(**{AS_OF_COLUMN: as_of})
    if CANCELED in features:
        # Cancelled customers are not in a segment (the API's summary says so): their segment is
        # the nearest, and a CRM reading the table must be able to tell them apart. Last, so a
        # reader that goes by position reads every earlier column where it was.
        assigned[CANCELED] = features[CANCELED].astype(float).fillna(0).astype(bool)
        if model.last_active_segment:
            # for a cancelled customer the backtest placed: where it was when last active
            positions = features["customer_id"].astype(str).map(model.last_active_segment)
            ids = positions.map(lambda p: model.segment_ids[int(p)], na_action="ignore")
            assigned[LAST_ACTIVE_COLUMN] = ids.where(assigned[CANCELED]).astype("Int64")
    return pd.concat([features[["customer_id"]].astype(str), assigned], axis=1)


LAST_ACTIVE_COLUMN = "last_active_segment_id"


EXPLAIN_CHUNK = 5000  # rows explained at once: bounded memory, same output


def write_explained_assignments(
    model: SegmentModel,
    features: pd.DataFrame,
    model_ref: ModelRef,
    top_k: int,
    out: Path,
    view: ExplanationView = "contrast",
) -> int:
    """Write one assignment object (``docs/contracts/api.md``) per customer as JSON Lines,
    explained as ``view`` says (``SegmentModel.assignments``)."""
    formats.file_format(out, accepted=[FileFormat.JSONL])
    check_feature_table(model, features)
    out.parent.mkdir(parents=True, exist_ok=True)
    with formats.open_text(out, "w") as handle:
        for start in range(0, len(features), EXPLAIN_CHUNK):
            chunk = features.iloc[start : start + EXPLAIN_CHUNK]
            ids = chunk["customer_id"].astype(str).tolist()
            assignments = model.assignments(chunk, ids, model_ref, top_k=top_k, view=view)
            for assignment, as_of in zip(assignments, as_of_values(chunk), strict=True):
                dated = assignment.model_copy(update={"features_as_of": as_of})
                handle.write(dated.model_dump_json() + "\n")
    return len(features)
