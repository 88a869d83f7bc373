"""Timestamps of the contract: one strict reading of ISO 8601, and the as-of instant of
``features.md`` (a date means the end of that UTC day).

The rule lives here once. ``INSTANT_PATTERN`` is read by Python's ``re`` (the HTTP service) and by
DuckDB's RE2 (file ingestion, ``feature_store.validation``): a date, or a date and a time (``T``
or a space) with optional seconds and fraction, and an optional ``Z`` or UTC offset within
±14:00 with minutes 00-59. No surrounding whitespace, and the instant in UTC must fall in the
years ``MIN_YEAR`` to ``MAX_YEAR``. An offset such as ``+99:99`` or ``+25:00`` used to shift the
instant silently by days; it is refused now.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

from feature_store.errors import InvalidAsOfError

INSTANT_PATTERN = (
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}"
    r"([T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,9})?)?"
    r"(Z|[+-](0[0-9]|1[0-3])(:?[0-5][0-9])?|[+-]14(:?00)?)?)?"
)
MIN_YEAR, MAX_YEAR = 1970, 9999
EARLIEST, LATEST = datetime(MIN_YEAR, 1, 1), datetime(MAX_YEAR, 12, 31, 23, 59, 59, 999999)
# The longest look-back a request may name (a discovery's history_days): a hundred years, far
# beyond any billing history; here so the CLI's option can say it without loading the discovery.
MAX_HISTORY_DAYS = 36_500
_INSTANT = re.compile(INSTANT_PATTERN)
_DATE_ONLY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
# The end of a day written as 24:00 (seconds and fraction, if any, all zeros).
_END_OF_DAY = re.compile(r"([0-9]{4}-[0-9]{2}-[0-9]{2}[T ])24:00(:00(\.0{1,9})?)?(?=$|Z|[+-])")


def parse_instant(text: str) -> datetime:
    """A date or instant of the contract as a naive UTC datetime; ``ValueError`` says why not."""
    if not _INSTANT.fullmatch(text):
        raise ValueError(
            f"{text!r} is not an ISO 8601 date or instant (2026-06-30T12:00:00Z, offsets "
            "within ±14:00, no surrounding spaces)"
        )
    try:
        moment = naive_utc(iso_datetime(text))
    except ValueError as error:
        raise ValueError(f"{text!r} is not a real date and time ({error})") from None
    except OverflowError:  # the offset moved it past year 1 or 9999
        moment = None
    if moment is None or not EARLIEST <= moment <= LATEST:
        raise ValueError(f"{text!r} is outside the years {MIN_YEAR} to {MAX_YEAR} (in UTC)")
    return moment


def iso_datetime(text: str) -> datetime:
    """``datetime.fromisoformat``, reading "24:00" as ISO 8601 does, the end of the day: the next
    day's midnight, as DuckDB, which file ingestion reads timestamps with, reads it. Python
    refused it, so an event stored through `POST /v1/events` was a 422 when scored by events (a
    CRM integrator's review), and a mapping's "iso" format refused it too."""
    end_of_day = _END_OF_DAY.match(text)
    if not end_of_day:
        return datetime.fromisoformat(text)
    return datetime.fromisoformat(
        f"{end_of_day.group(1)}00:00{text[end_of_day.end() :]}"
    ) + timedelta(days=1)


def parse_as_of(value: str | date | datetime) -> datetime:
    """Return the as-of instant ``T`` as a naive UTC datetime.

    A bare date ``D`` means ``D + 1 day, 00:00 UTC`` so that all of day ``D`` counts; an instant
    without an offset is UTC; an instant with an offset is converted to UTC.
    """
    if isinstance(value, datetime):
        return naive_utc(value)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day) + timedelta(days=1)
    try:
        if _DATE_ONLY.fullmatch(value):
            day = parse_instant(value)
            if day.year == MAX_YEAR and (day.month, day.day) == (12, 31):
                raise ValueError(f"{value!r}: the day after it is past the year {MAX_YEAR}")
            return parse_as_of(day.date())
        return parse_instant(value)
    except ValueError as error:
        raise InvalidAsOfError(
            f"as-of {value!r} is neither a date (2026-06-30) nor an ISO 8601 instant "
            f"(2026-06-30T12:00:00Z) of the years {MIN_YEAR} to {MAX_YEAR}: {error}"
        ) from None


def now_utc() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def next_whole_second(moment: datetime) -> datetime:
    """``moment`` rounded up to a whole second (itself when it is one already).

    Answers state ``features_as_of`` in whole seconds; a vector computed as of a rounded-up instant
    is exactly what its stamp says and still holds every event stored before ``moment``.
    """
    whole = moment.replace(microsecond=0)
    return whole if whole == moment else whole + timedelta(seconds=1)


def rfc3339(moment: datetime) -> str:
    """``moment`` in UTC as RFC 3339 with a ``Z`` (a naive ``moment`` is taken as UTC), whole
    seconds unless it has a fraction, which is kept so that the stamp stays exact."""
    utc = naive_utc(moment)
    return utc.isoformat(timespec="seconds" if not utc.microsecond else "auto") + "Z"


def read_stamp(instant: str) -> datetime:
    """A stamp as this project writes them (RFC 3339, ``Z``) or with any offset, as naive UTC;
    ``ValueError`` when it is no instant."""
    return naive_utc(datetime.fromisoformat(instant.replace("Z", "+00:00")))


def stamp_text(written: str | None) -> str | None:
    """A stored stamp written as the API writes instants (RFC 3339, UTC, ``Z``): trained-at
    times of older models say "+00:00". Text that is no instant is returned as it is."""
    if not written:
        return None
    try:
        return rfc3339(read_stamp(written))
    except ValueError:
        return written


def as_of_day(instant: str) -> tuple[str, bool]:
    """The day an as-of stamp describes, and whether it is that day's end: midnight UTC (as
    ``--as-of 2026-06-30`` is parsed, 2026-07-01T00:00:00Z) is the end of the day before it."""
    moment = read_stamp(instant)
    if moment == moment.replace(hour=0, minute=0, second=0, microsecond=0):
        return f"{moment - timedelta(days=1):%Y-%m-%d}", True
    return f"{moment:%Y-%m-%d}", False


def as_of_text(instant: str) -> str:
    """An as-of for people: an end of day as that day, "2026-06-30 (end of day, UTC)"; any other
    instant as "2026-06-30 14:05 UTC"."""
    day, end_of_day = as_of_day(instant)
    return f"{day} (end of day, UTC)" if end_of_day else moment_text(instant)


def moment_text(instant: str) -> str:
    """An instant for people, to the minute: "2026-12-06 08:57 UTC" (a trained-at time; an
    as-of reads ``as_of_text``). Text that is no instant is returned as it is."""
    try:
        return f"{read_stamp(instant):%Y-%m-%d %H:%M} UTC"
    except ValueError:
        return instant


def naive_utc(moment: datetime) -> datetime:
    """``moment`` as the store keeps times: naive UTC (a naive ``moment`` is taken as UTC)."""
    if moment.tzinfo is None:
        return moment
    return moment.astimezone(UTC).replace(tzinfo=None)
