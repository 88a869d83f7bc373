"""The canonical event contract (``docs/contracts/events.md``) as data: columns, types, reason codes."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from string import ascii_lowercase, ascii_uppercase
from typing import Literal

from babel.numbers import list_currencies

Stream = Literal["billing", "usage"]
STREAMS: tuple[Stream, ...] = ("billing", "usage")

MAX_ID_LENGTH = 255
# The largest seats, and the largest money or usage quantity, one event may carry: far beyond any
# real account, and a bound on every feature built from them. Ingestion (files, HTTP) quarantines
# larger values as invalid; scoring by events refuses them (``service.schemas``).
MAX_SEATS = 10**9
MAX_AMOUNT = 10**12

SUBSCRIPTION_TYPES = ("subscription_started", "subscription_changed", "subscription_canceled")
MONEY_TYPES = ("invoice_paid", "payment_failed", "refund_issued")
BILLING_TYPES = SUBSCRIPTION_TYPES + MONEY_TYPES
# Started and changed subscriptions must say what the customer now has; a cancellation sets MRR to
# zero by definition, so its plan fields are optional (real exports often leave them empty).
PRICED_SUBSCRIPTION_TYPES = ("subscription_started", "subscription_changed")
INTERVALS = ("month", "year")


@cache
def currency_codes() -> frozenset[str]:
    """Every ISO 4217 currency code, current and withdrawn, as CLDR lists them (through Babel):
    a 2022 export in kuna (HRK, replaced by the euro in 2023) is real money, "ZZZ" or "USX" a
    typo whose money would stay unconverted beside everyone else's."""
    return frozenset(list_currencies())


@dataclass(frozen=True)
class Column:
    """One canonical column: its stored DuckDB type and whether every row must carry it."""

    name: str
    sql_type: str
    required: bool


BILLING_COLUMNS = (
    Column("event_id", "VARCHAR", True),
    Column("customer_id", "VARCHAR", True),
    Column("occurred_at", "TIMESTAMP", True),
    Column("type", "VARCHAR", True),
    Column("plan", "VARCHAR", False),
    Column("interval", "VARCHAR", False),
    Column("seats", "BIGINT", False),
    Column("mrr", "DOUBLE", False),
    Column("amount", "DOUBLE", False),
    Column("currency", "VARCHAR", False),
    # Which of the customer's subscriptions a subscription event is about; absent: its one
    # subscription. Added after the first stores were written, so parts may lack it
    # (``feature_store.offline_store``).
    Column("subscription_id", "VARCHAR", False),
)

USAGE_COLUMNS = (
    Column("event_id", "VARCHAR", True),
    Column("customer_id", "VARCHAR", True),
    Column("occurred_at", "TIMESTAMP", True),
    Column("event", "VARCHAR", True),
    Column("user_id", "VARCHAR", False),
    Column("feature", "VARCHAR", False),
    Column("quantity", "DOUBLE", False),
)

COLUMNS: dict[Stream, tuple[Column, ...]] = {"billing": BILLING_COLUMNS, "usage": USAGE_COLUMNS}

# Columns that a correction file exported from quarantine carries; they are not "unknown".
QUARANTINE_ID_COLUMN = "quarantine_id"
QUARANTINE_REASONS_COLUMN = "_reasons"
# A row of a mapped export whose value could not be converted says which values are still in the
# export's form (``mapping``), so a correction is written in the contract's, not the export's.
AS_WRITTEN_COLUMN = "_as_written"
# A line that did not split into columns is quarantined as its text alone, under this name.
RAW_LINE_COLUMN = "_raw_line"
QUARANTINE_EXPORT_COLUMNS = (
    QUARANTINE_ID_COLUMN,
    QUARANTINE_REASONS_COLUMN,
    RAW_LINE_COLUMN,
    AS_WRITTEN_COLUMN,
)
# The export's own columns, not the row's content: a row sent back unchanged is the same row.
QUARANTINE_BOOKKEEPING_COLUMNS = frozenset({QUARANTINE_ID_COLUMN, QUARANTINE_REASONS_COLUMN})


class Reason(StrEnum):
    """Why a row was quarantined. Stable codes: users filter and count by them."""

    MALFORMED_ROW = "malformed_row"
    MISSING_EVENT_ID = "missing_event_id"
    INVALID_EVENT_ID = "invalid_event_id"
    MISSING_CUSTOMER_ID = "missing_customer_id"
    INVALID_CUSTOMER_ID = "invalid_customer_id"
    MISSING_OCCURRED_AT = "missing_occurred_at"
    INVALID_OCCURRED_AT = "invalid_occurred_at"
    MISSING_TYPE = "missing_type"
    UNKNOWN_TYPE = "unknown_type"
    MISSING_EVENT = "missing_event"
    MISSING_PLAN = "missing_plan"
    INVALID_INTERVAL = "invalid_interval"
    MISSING_SEATS = "missing_seats"
    INVALID_SEATS = "invalid_seats"
    NEGATIVE_SEATS = "negative_seats"
    MISSING_MRR = "missing_mrr"
    INVALID_MRR = "invalid_mrr"
    NEGATIVE_MRR = "negative_mrr"
    MISSING_AMOUNT = "missing_amount"
    INVALID_AMOUNT = "invalid_amount"
    NON_POSITIVE_AMOUNT = "non_positive_amount"
    # A money row with no currency: its amount cannot be converted, and it was read in the
    # reporting currency whatever it was (an ingestion walkthrough, 2026-12-06).
    MISSING_CURRENCY = "missing_currency"
    INVALID_CURRENCY = "invalid_currency"
    INVALID_SUBSCRIPTION_ID = "invalid_subscription_id"
    INVALID_QUANTITY = "invalid_quantity"
    NEGATIVE_QUANTITY = "negative_quantity"
    INVALID_USER_ID = "invalid_user_id"
    # Free text over ``MAX_ID_LENGTH`` characters, or a list or an object: a plan named by 3
    # million characters was stored from ``POST /v1/events`` (a hostile-client probe).
    INVALID_PLAN = "invalid_plan"
    INVALID_EVENT = "invalid_event"
    INVALID_FEATURE = "invalid_feature"
    # Valid on its own, but its event_id already names an event with different content (the first
    # valid copy in the file, or the stored one): a reused id, not a re-send.
    CONFLICTING_DUPLICATE = "conflicting_duplicate"


def column_names(stream: Stream) -> list[str]:
    return [column.name for column in COLUMNS[stream]]


# Columns added to the contract after events were first stored: an event stored without one and
# sent again with it is the same event (a re-import of an export into an older data home), not a
# reused id; two copies that both give it and differ are (``validation.content_differs``).
ADDED_COLUMNS = ("subscription_id",)


def content_column_names(stream: Stream) -> list[str]:
    """The columns that make up what an event says, compared as they are: every canonical column
    but its id and those added later (``ADDED_COLUMNS``, compared only where both copies have
    them)."""
    return [name for name in column_names(stream) if name not in ("event_id", *ADDED_COLUMNS)]


# What ``validation._BLANK`` reads as white space, for ids checked outside SQL (a request's).
_BLANK_CHARACTERS = frozenset("\t\n\x0b\x0c\r \ufeff\u200b")


def is_blank(text: str) -> bool:
    """An id of white space only names nothing (a spreadsheet's blank cell): missing, as "" is,
    by the rule ingestion applies (``validation._BLANK``: ASCII white space, the vertical tab,
    every Unicode space separator, the byte order mark and the zero-width space)."""
    return all(_is_blank_character(c) for c in text)


def _is_blank_character(character: str) -> bool:
    return character in _BLANK_CHARACTERS or unicodedata.category(character).startswith("Z")


# What tools write for no value where an id belongs, in any ASCII case: pandas' str(NaN), SQL's
# NULL, Python's None, a spreadsheet's N/A and #N/A, JavaScript's undefined. Stored, "nan" was
# one customer of 3,710 invoices an export left without an id, the largest by lifetime revenue
# (a data engineer's review, 2026-12-07). An event or customer id that is one of these is
# missing, as a blank one is; ``validation`` reads them so in SQL (``PLACEHOLDER_ID_PATTERN``).
PLACEHOLDER_IDS = ("nan", "null", "none", "n/a", "#n/a", "undefined")
# The same as an RE2 and Java pattern: each letter as a class of its two cases.
PLACEHOLDER_ID_PATTERN = (
    "(?:"
    + "|".join(
        "".join(f"[{c.upper()}{c}]" if c.isalpha() else c for c in name) for name in PLACEHOLDER_IDS
    )
    + ")"
)


def names_nothing(text: str) -> bool:
    """An id that names nothing: white space only (``is_blank``), or a placeholder for no value
    (``PLACEHOLDER_IDS``) with white space around it."""
    start, end = 0, len(text)
    while start < end and _is_blank_character(text[start]):
        start += 1
    while end > start and _is_blank_character(text[end - 1]):
        end -= 1
    return start == end or ascii_lower(text[start:end]) in PLACEHOLDER_IDS


# What DuckDB's trim() takes from both ends of a type, an interval or a currency (every Unicode
# space separator, category Zs, and nothing else: not a tab), for such text read outside SQL (a
# scoring request's). A test holds it to the Unicode database.
SPACE_SEPARATORS = " \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u202f\u205f\u3000"
_ASCII_LOWER = str.maketrans(ascii_uppercase, ascii_lowercase)
_ASCII_UPPER = str.maketrans(ascii_lowercase, ascii_uppercase)


def ascii_lower(text: str) -> str:
    """Text with its ASCII letters in lower case, as ingestion folds the contract's names
    (``validation._ascii_lower``). Python's ``lower()`` also folds other letters ("İ" to "i̇"),
    which no contract name holds."""
    return text.translate(_ASCII_LOWER)


def ascii_upper(text: str) -> str:
    """Text with its ASCII letters in upper case, as ingestion reads a currency ("uſd" stays
    unread, where Python's ``upper()`` made it USD)."""
    return text.translate(_ASCII_UPPER)


# A number written as text, as ingestion reads one (``validation._number``): without the space
# separators around it, ASCII white space around the number, and the decimal syntax alone, where
# DuckDB's cast also read "1_000" and "+-1". A lake read on Spark runs the same SQL, transpiled,
# and scoring by events reads a JSON string so (``decimal_value``).
DECIMAL_PATTERN = r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?"
ASCII_SPACE_PATTERN = r"[ \t\n\x0B\f\r]"
_DECIMAL_TEXT = re.compile(
    f"{ASCII_SPACE_PATTERN}*({DECIMAL_PATTERN}){ASCII_SPACE_PATTERN}*", re.ASCII
)


def decimal_value(text: str) -> float | None:
    """The number ``text`` spells as ingestion reads it, or None when it spells none."""
    found = _DECIMAL_TEXT.fullmatch(text.strip(SPACE_SEPARATORS))
    return None if found is None else float(found.group(1))
