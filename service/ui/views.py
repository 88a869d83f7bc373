"""What the pages show, built from the served model and its member table (no HTTP here)."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from models.assignment import Assignment
from models.summaries import segment_ids, with_unit
from models.wording import format_value
from service.lifecycle import LoadedModel
from service.members import MemberTable

PAGE_SIZE = 50
MAX_QUERY = 100
CSV_COLUMNS = ("customer_id", "segment_id", "segment_name", "confidence", "is_outlier")
_LISTED_FEATURES = ("mrr", "seats")
# A cell starting with one of these is a formula to a spreadsheet (CSV injection).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class MemberRow:
    customer_id: str
    mrr: str
    seats: str
    confidence: float
    is_outlier: bool


@dataclass(frozen=True)
class MemberListing:
    rows: list[MemberRow]
    total: int
    page: int
    pages: int
    q: str


def matching_rows(table: MemberTable, position: int, query: str) -> np.ndarray:
    """Rows of the segment whose customer id contains ``query`` (case-insensitive)."""
    rows = table.rows_of(position)
    needle = query.strip().lower()[:MAX_QUERY]
    if not needle:
        return rows
    ids = table.customer_ids[rows]
    return rows[np.fromiter((needle in str(c).lower() for c in ids), bool, len(ids))]


def _feature_text(loaded: LoadedModel, table: MemberTable, row: int, name: str) -> str:
    if name not in loaded.feature_names:
        return ""
    return format_value(name, float(table.values[row, loaded.feature_names.index(name)]))


def member_listing(
    loaded: LoadedModel, table: MemberTable, position: int, query: str, page: int
) -> MemberListing:
    rows = matching_rows(table, position, query)
    pages = max(1, math.ceil(len(rows) / PAGE_SIZE))
    page = min(max(page, 1), pages)
    shown = rows[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
    mrr, seats = _LISTED_FEATURES
    return MemberListing(
        rows=[
            MemberRow(
                customer_id=str(table.customer_ids[r]),
                mrr=_feature_text(loaded, table, r, mrr),
                seats=_feature_text(loaded, table, r, seats),
                confidence=float(table.confidence[r]),
                is_outlier=bool(table.is_outlier[r]),
            )
            for r in shown
        ],
        total=len(rows),
        page=page,
        pages=pages,
        q=query.strip()[:MAX_QUERY],
    )


def _cell(value: str) -> str:
    return "'" + value if value.startswith(_FORMULA_START) else value


def members_csv(
    loaded: LoadedModel, table: MemberTable, position: int, query: str
) -> Iterator[str]:
    """The segment's matching members as CSV lines, header first."""
    segment_id = segment_ids(loaded.model)[position]
    name = loaded.model.profiles[position].name
    features = [n for n in loaded.feature_names]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([*CSV_COLUMNS, *features])
    for row in matching_rows(table, position, query):
        writer.writerow(
            [
                _cell(str(table.customer_ids[row])),
                segment_id,
                _cell(name),
                f"{table.confidence[row]:.4f}",
                str(bool(table.is_outlier[row])).lower(),
                *(repr(float(v)) for v in table.values[row]),
            ]
        )
        if buffer.tell() > 64 * 1024:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


@dataclass(frozen=True)
class FeatureLine:
    """One feature of a customer: its value, its standing among all customers, the segment's
    typical range and which way it pushed."""

    description: str
    value_text: str
    standing: str | None
    typical: str
    direction: str


def feature_lines(assignment: Assignment) -> list[FeatureLine]:
    """Every explained feature of ``assignment``, strongest effect first."""
    explanation = assignment.explanation
    if explanation is None:
        return []
    lines = []
    for c in explanation.contributions:
        low, high = (with_unit(c.feature, v) for v in c.typical_range)
        lines.append(
            FeatureLine(
                description=c.description,
                value_text=with_unit(c.feature, c.value),
                standing=c.standing,
                typical=low if low == high else f"{low} to {high}",
                direction=c.direction,
            )
        )
    return lines
