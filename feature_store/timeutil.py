"""Parsing the as-of instant of ``features.md``: a date means the end of that UTC day."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

from feature_store.errors import InvalidAsOfError

_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def parse_as_of(value: str | date | datetime) -> datetime:
    """Return the as-of instant ``T`` as a naive UTC datetime.

    A bare date ``D`` means ``D + 1 day, 00:00 UTC`` so that all of day ``D`` counts; an instant
    without an offset is UTC; an instant with an offset is converted to UTC.
    """
    if isinstance(value, datetime):
        return _to_naive_utc(value)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day) + timedelta(days=1)
    text = value.strip()
    try:
        if _DATE_ONLY.match(text):
            return parse_as_of(date.fromisoformat(text))
        return _to_naive_utc(datetime.fromisoformat(text))
    except ValueError:
        raise InvalidAsOfError(
            f"as-of {value!r} is neither a date (2026-06-30) nor an ISO 8601 instant "
            "(2026-06-30T12:00:00Z)"
        ) from None


def now_utc() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _to_naive_utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        return moment
    return moment.astimezone(UTC).replace(tzinfo=None)
