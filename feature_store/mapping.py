"""Column-mapping files: a TOML description that turns another billing system's export into events.

One table per canonical column, under ``[columns]``; a plain string is the source column's name::

    stream = "billing"

    [columns]
    event_id = "transaction_id"
    customer_id = "account_code"
    currency = "currency"
    interval = { constant = "month" }
    occurred_at = { from = "date", format = ["%Y-%m-%d %H:%M:%S"], timezone = "America/Los_Angeles" }
    amount = { from = "amount_in_cents", minor_units = true }
    mrr = { from = "mrr", factor = 0.01 }
    type = { join = ["type", "status"], values = { "purchase:success" = "invoice_paid" },
             skip = ["authorization:success"] }

Keys of a column rule: ``from`` (a column, or a list: the first non-empty wins), ``join`` (columns
joined with ``:``), ``constant``, ``values`` (source value -> canonical value; others pass through),
``skip`` (source values that are not events of this stream: those rows are left out and counted;
``""`` is an empty cell),
``factor`` (multiply a number), ``minor_units`` (divide by the row's currency's minor unit: cents),
``format`` and ``timezone`` (``occurred_at`` only: ``iso`` (default), ``unix``, ``unix_ms`` or
``strptime`` patterns tried in order; ``timezone`` applies to instants written without an offset).

A value that cannot be converted (a date in another format, a non-number) is passed on as written,
so that the ingestion quarantines the row with the matching reason code and its text.
"""

from __future__ import annotations

import math
import re
import tomllib
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path
from typing import Any, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pandas as pd

from feature_store.converted import ConvertedRow, MalformedSource
from feature_store.engine import connect
from feature_store.errors import SegmentsError
from feature_store.money import from_minor_units
from feature_store.readers import ROW_NUMBER, load_raw_rows
from feature_store.schema import AS_WRITTEN_COLUMN, COLUMNS, Stream, ascii_upper, column_names
from feature_store.timeutil import iso_datetime

JOIN_SEPARATOR = ":"
_RULE_KEYS = frozenset(
    {"from", "join", "constant", "values", "skip", "factor", "minor_units", "format", "timezone"}
)
_SPECIAL_FORMATS = ("iso", "unix", "unix_ms")


class MappingError(SegmentsError):
    """A mapping file that cannot be used, or an export that lacks a column it names."""


@dataclass(frozen=True)
class ColumnRule:
    """How one canonical column is made from the source row."""

    sources: tuple[str, ...] = ()
    join: tuple[str, ...] = ()
    constant: str | None = None
    values: Mapping[str, str] = field(default_factory=dict)
    skip: frozenset[str] = frozenset()
    factor: Fraction | None = None
    minor_units: bool = False
    formats: tuple[str, ...] = ("iso",)
    timezone: str | None = None

    def source_columns(self) -> tuple[str, ...]:
        return self.sources + self.join


@dataclass(frozen=True)
class ColumnMapping:
    stream: Stream
    columns: Mapping[str, ColumnRule]
    origin: str = "<mapping>"

    def source_columns(self) -> list[str]:
        names = (name for rule in self.columns.values() for name in rule.source_columns())
        return list(dict.fromkeys(names))


@dataclass
class MappedEvents:
    """Canonical rows (as text and numbers, not yet validated) and the rows left out by ``skip``."""

    events: pd.DataFrame
    skipped: Counter[str] = field(default_factory=Counter)  # "column=value" -> rows


# --------------------------------------------------------------------------- loading


def load_mapping(path: Path) -> ColumnMapping:
    """Read and check a mapping file; every problem is one ``MappingError`` line naming the file."""
    if not path.exists():
        raise MappingError(f"{path}: no such mapping file")
    if not path.is_file():  # a FIFO waited forever, /dev/zero was read until memory ran out
        raise MappingError(f"{path}: not a regular file")
    if path.stat().st_size > MAX_MAPPING_BYTES:
        raise MappingError(f"{path}: {path.stat().st_size:,} bytes; a mapping file is a few lines")
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise MappingError(f"{path}: not a valid TOML file: {error}") from None
    return parse_mapping(document, origin=str(path))


# Far beyond any mapping (the worked examples are 1-2 KB), and a bound on what is read.
MAX_MAPPING_BYTES = 1_000_000
_DOCUMENT_KEYS = frozenset({"stream", "columns"})


def parse_mapping(document: Mapping[str, Any], *, origin: str = "<mapping>") -> ColumnMapping:
    unknown_keys = sorted(set(document) - _DOCUMENT_KEYS)
    if unknown_keys:  # a typo ("strem") silently meant the default
        raise MappingError(
            f"{origin}: unknown key(s) {', '.join(unknown_keys)} (expected stream, columns)"
        )
    stream = document.get("stream", "billing")
    if stream not in get_args(Stream):
        raise MappingError(f"{origin}: stream must be billing or usage, not {stream!r}")
    columns = document.get("columns")
    if not isinstance(columns, dict):
        raise MappingError(f"{origin}: no [columns] table")
    unknown = sorted(set(columns) - set(column_names(stream)))
    if unknown:
        raise MappingError(
            f"{origin}: not {stream} column(s): {', '.join(unknown)} "
            f"(expected some of {', '.join(column_names(stream))})"
        )
    rules = {name: _rule(origin, name, spec) for name, spec in columns.items()}
    _require_mapped(origin, stream, rules)
    return ColumnMapping(stream, rules, origin)


def _require_mapped(origin: str, stream: Stream, rules: Mapping[str, ColumnRule]) -> None:
    required = [column.name for column in COLUMNS[stream] if column.required]
    missing = [name for name in required if name not in rules]
    if missing:
        raise MappingError(f"{origin}: required column(s) {', '.join(missing)} not mapped")


def _rule(origin: str, name: str, spec: object) -> ColumnRule:
    where = f"{origin}: columns.{name}"
    if isinstance(spec, str):
        return ColumnRule(sources=(spec,))
    if not isinstance(spec, dict):
        raise MappingError(f"{where}: expected a column name or a table")
    unknown = sorted(set(spec) - _RULE_KEYS)
    if unknown:
        raise MappingError(f"{where}: unknown key(s) {', '.join(unknown)}")
    kinds = [key for key in ("from", "join", "constant") if key in spec]
    if len(kinds) != 1:
        raise MappingError(f"{where}: needs exactly one of from, join, constant")
    for key in ("from", "join"):
        if key in spec and not _names(where, spec[key]):
            raise MappingError(f"{where}: {key} names no column")
    minor_units = spec.get("minor_units", False)
    if not isinstance(minor_units, bool):  # "no" is a true string
        raise MappingError(f"{where}: minor_units must be true or false, not {minor_units!r}")
    if "timezone" in spec and name != "occurred_at":
        raise MappingError(f"{where}: timezone applies to occurred_at only")
    return ColumnRule(
        sources=_names(where, spec.get("from", ())),
        join=_names(where, spec.get("join", ())),
        constant=None if "constant" not in spec else str(spec["constant"]),
        values=_value_map(where, spec.get("values", {})),
        skip=frozenset(_names(where, spec.get("skip", ()))),
        factor=_factor(where, spec.get("factor")),
        minor_units=minor_units,
        formats=_formats(where, name, spec.get("format", "iso")),
        timezone=_timezone(where, spec.get("timezone")),
    )


def _names(where: str, value: object) -> tuple[str, ...]:
    names = (value,) if isinstance(value, str) else value
    if not isinstance(names, list | tuple) or not all(isinstance(n, str) for n in names):
        raise MappingError(f"{where}: expected a string or a list of strings")
    return tuple(names)


def _value_map(where: str, values: object) -> dict[str, str]:
    if not isinstance(values, dict) or not all(isinstance(v, str) for v in values.values()):
        raise MappingError(f"{where}: values must map strings to strings")
    return dict(values)


def _factor(where: str, factor: object) -> Fraction | None:
    if factor is None:
        return None
    if isinstance(factor, bool) or not isinstance(factor, int | float):
        raise MappingError(f"{where}: factor must be a number")
    if not math.isfinite(factor) or factor == 0:
        raise MappingError(f"{where}: factor must be a finite number other than 0, not {factor}")
    return Fraction(str(factor))


def _formats(where: str, name: str, value: object) -> tuple[str, ...]:
    formats = _names(where, value)
    if formats != ("iso",) and name != "occurred_at":
        raise MappingError(f"{where}: format applies to occurred_at only")
    return formats


def _timezone(where: str, value: object) -> str | None:
    if value is None:
        return None
    try:
        ZoneInfo(str(value))
    except (ZoneInfoNotFoundError, ValueError):
        raise MappingError(f"{where}: unknown time zone {value!r}") from None
    return str(value)


# --------------------------------------------------------------------------- applying


def apply_mapping(frame: pd.DataFrame, mapping: ColumnMapping) -> MappedEvents:
    """Turn ``frame`` (an export, values as text) into canonical columns, row for row.

    The result keeps ``frame``'s index, minus rows a ``skip`` list leaves out. Raises
    ``MappingError`` naming the source columns the mapping needs and ``frame`` lacks.
    """
    missing = [name for name in mapping.source_columns() if name not in frame.columns]
    if missing:
        raise MappingError(
            f"{mapping.origin}: the export lacks column(s) {', '.join(missing)} "
            f"(found: {', '.join(map(str, frame.columns)) or 'none'})"
        )
    # Plain Python values from here on: pandas' dtype inference would turn None into NaN.
    text = {name: [_clean(v) for v in frame[name].tolist()] for name in mapping.source_columns()}
    raw = {name: _source_values(text, len(frame), rule) for name, rule in mapping.columns.items()}
    keep = [True] * len(frame)
    skipped: Counter[str] = Counter()
    for name, rule in mapping.columns.items():
        for position, value in enumerate(raw[name]):
            # an empty cell is None here, and "" in a skip list means it
            written = "" if value is None else value
            if keep[position] and written in rule.skip:
                keep[position] = False
                skipped[f"{name}={written}"] += 1
    kept = {
        name: [v for v, k in zip(values, keep, strict=True) if k] for name, values in raw.items()
    }
    index = frame.index[keep]
    return MappedEvents(_canonical_frame(mapping, kept, index), skipped)


def _clean(value: object) -> str | None:
    if value is None or (isinstance(value, float) and value != value):
        return None
    text = str(value).strip()
    return text or None


def _source_values(
    text: Mapping[str, list[str | None]], rows: int, rule: ColumnRule
) -> list[str | None]:
    if rule.constant is not None:
        return [rule.constant] * rows
    if rule.join:
        columns = [text[name] for name in rule.join]
        return [
            JOIN_SEPARATOR.join(part or "" for part in parts)
            for parts in zip(*columns, strict=True)
        ]
    values = list(text[rule.sources[0]])
    for name in rule.sources[1:]:
        values = [
            v if v is not None else fallback for v, fallback in zip(values, text[name], strict=True)
        ]
    return values


def _canonical_frame(
    mapping: ColumnMapping, raw: Mapping[str, list[str | None]], index: pd.Index
) -> pd.DataFrame:
    rows = len(index)
    currencies = [_upper(v) for v in raw["currency"]] if "currency" in raw else [None] * rows
    columns: dict[str, list[object]] = {}
    notes: list[list[str]] = [[] for _ in range(rows)]
    for name in column_names(mapping.stream):
        if name not in raw:
            columns[name] = [None] * rows
            continue
        rule = mapping.columns[name]
        values = [rule.values.get(v, v) if v is not None else None for v in raw[name]]
        columns[name], failed = _converted(name, rule, values, currencies)
        for position in (i for i, no in enumerate(failed) if no):
            notes[position].append(_as_written_note(name, rule))
    frame = pd.DataFrame(columns, index=index, dtype=object)
    if any(notes):
        written = [f"{'; '.join(row)}: {_AS_WRITTEN_ADVICE}" if row else None for row in notes]
        frame[AS_WRITTEN_COLUMN] = pd.Series(written, index=index, dtype=object)
    return frame


_AS_WRITTEN_ADVICE = (
    "write the events contract's form before sending the row back (an instant with its offset, "
    "an amount in major units), or correct the export and ingest it with --mapping again"
)


def _as_written_note(name: str, rule: ColumnRule) -> str:
    """Which form a value that could not be converted is still in: a quarantined row exported
    for fixing held converted values beside it ("20.0" from 2000 cents, UTC times), and a
    correction in the export's form (a local time, cents) was read in the contract's."""
    if name == "occurred_at":
        where = f", local time in {rule.timezone}" if rule.timezone else ""
        return f"occurred_at as the export wrote it (formats {', '.join(rule.formats)}{where})"
    units = ["in minor units of its currency"] if rule.minor_units else []
    units += [f"times {float(rule.factor):g} to convert"] if rule.factor is not None else []
    return f"{name} as the export wrote it ({', '.join(units)})"


def _upper(value: str | None) -> str | None:
    return ascii_upper(value) if value is not None else None  # as ingestion reads a currency


def _converted(
    name: str, rule: ColumnRule, values: list[str | None], currencies: list[str | None]
) -> tuple[list[object], list[bool]]:
    """The canonical values, and which were passed on as written because they could not be
    converted (only where the rule converts: a time zone or format, units or a factor)."""
    if name == "occurred_at":
        instants = [None if v is None else _instant(v, rule) for v in values]
        converts = rule.timezone is not None or rule.formats != ("iso",)
        failed = [
            converts and v is not None and i is None for v, i in zip(values, instants, strict=True)
        ]
        return [v if i is None else i for v, i in zip(values, instants, strict=True)], failed
    if rule.factor is None and not rule.minor_units:
        return list(values), [False] * len(values)
    # money moved is a whole number of minor units; a price (MRR) may not be: a yearly price in
    # cents divided by twelve
    whole = name == "amount"
    numbers = [_number(v, rule, c, whole) for v, c in zip(values, currencies, strict=True)]
    return numbers, [isinstance(n, str) for n in numbers]


def _number(
    value: str | None, rule: ColumnRule, currency: str | None, whole_minor_units: bool = False
) -> object:
    if value is None:
        return None
    if not _DECIMAL.fullmatch(value.strip()):
        return value  # the ingestion quarantines it as invalid, with this text
    number = Fraction(value.strip())
    if rule.minor_units:
        if whole_minor_units and number.denominator != 1:
            # a minor unit is the smallest one: "1000.5" cents was stored as 10.005 USD, where
            # Stripe's mapping quarantines the same value (a data engineer's review); passed on
            # as written, it is quarantined as invalid with this text
            return f"{value.strip()} (not a whole number of minor units)"
        number = from_minor_units(number, currency)
    try:
        unscaled = float(number)
    except OverflowError:  # "1e400": past every float, so invalid with its text
        return value
    if rule.factor is None:
        return unscaled
    try:
        return float(number * rule.factor)
    except OverflowError:  # a factor took it there; kept as its own text it read as valid
        return f"{value} x {float(rule.factor):g}"


# A decimal number as exports write one. Not all that ``Fraction`` reads: "1/3" is not an amount,
# and an exponent of any size ("1e999999999") would build a number of that many digits.
# ASCII digits only, as ingestion reads a number ("١٠٠٠", Arabic-Indic, was read as 1000 here).
_DECIMAL = re.compile(r"[+-]?(\d{1,30}(\.\d{0,30})?|\.\d{1,30})([eE][+-]?\d{1,3})?", re.ASCII)


def _instant(value: str, rule: ColumnRule) -> str | None:
    """``value`` as a UTC instant by the rule's formats and time zone; None when no format reads
    it (passed on as written: quarantined as invalid_occurred_at with this text)."""
    for pattern in rule.formats:
        moment = _parse_instant(value, pattern)
        if moment is not None:
            return _as_utc(moment, rule.timezone, value).isoformat()
    return None


def _parse_instant(value: str, pattern: str) -> datetime | None:
    try:
        if pattern == "iso":
            return iso_datetime(value.replace("Z", "+00:00"))
        if pattern in ("unix", "unix_ms"):
            seconds = float(value) / (1000 if pattern == "unix_ms" else 1)
            return datetime.fromtimestamp(seconds, UTC)
        return datetime.strptime(value, pattern)
    except (ValueError, OverflowError, OSError):
        return None


def _as_utc(moment: datetime, timezone: str | None, written: str) -> datetime:
    """A parsed moment in UTC; one without an offset is in ``timezone`` (else UTC). In the hour
    a clock turns back, a local time happens twice: the first is taken unless the text names the
    zone's abbreviation of the second ("2025-11-02 01:30:00 PST" is the second 01:30 in Los
    Angeles, an hour after "… 01:30:00 PDT"; both read as the first, one was an hour early)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo(timezone) if timezone else UTC)
        second = moment.replace(fold=1)
        if _happens_twice(moment) and (second.tzname() or "").upper() in _words(written):
            moment = second
    return moment.astimezone(UTC)


def _happens_twice(moment: datetime) -> bool:
    """Whether a local time is in the hour a clock turns back (not in the hour it skips forward,
    where the two readings differ too but neither is a time the clock showed)."""
    second = moment.replace(fold=1)
    if second.utcoffset() == moment.utcoffset():
        return False
    back = second.astimezone(UTC).astimezone(moment.tzinfo)
    return back.replace(tzinfo=None) == moment.replace(tzinfo=None)


def _words(text: str) -> set[str]:
    """The words of ``text`` in upper case (a format's literal "PST" matches "pst" too)."""
    return {word.upper() for word in re.findall(r"[A-Za-z]+", text)}


# --------------------------------------------------------------------------- exports


@dataclass
class ConvertedExport:
    """An export file converted by a mapping, row by row, for ``ingest_converted``.

    ``rows`` is a generator, read once: the export is mapped a batch at a time as it is read, so
    the memory it takes does not grow with the export. ``skipped`` is complete once it is read."""

    source: Path
    stream: Stream
    rows: Iterator[ConvertedRow]
    skipped: Counter[str]

    def as_dict(self) -> dict[str, Any]:
        return {
            "source_file": str(self.source),
            "stream": self.stream,
            "skipped": dict(sorted(self.skipped.items())),
        }


def convert_export(
    path: Path,
    mapping: ColumnMapping,
    *,
    spill_to: Path | None = None,
    memory_limit: int | None = None,
) -> ConvertedExport:
    """Read an export (CSV, JSON Lines or Parquet, by the same reader as ``segments ingest``) and
    map it. Every row keeps its position, so the quarantine points at the export's own rows; rows
    that do not even split into columns come through as ``MalformedSource``. ``spill_to``: where
    the reading's DuckDB spills what exceeds ``memory_limit`` bytes (``StoreLayout.spill_dir`` and
    ``StoreLayout.memory_limit``)."""
    skipped: Counter[str] = Counter()
    rows = _mapped_rows(path, mapping, skipped, spill_to, memory_limit)
    return ConvertedExport(path, mapping.stream, rows, skipped)


# DuckDB vectors (2,048 rows each) mapped at once: about 50,000 rows.
EXPORT_BATCH_VECTORS = 25


def _mapped_rows(
    path: Path,
    mapping: ColumnMapping,
    skipped: Counter[str],
    spill_to: Path | None,
    memory_limit: int | None,
) -> Iterator[ConvertedRow]:
    """The export's rows in order, a batch at a time: each row's position is its place (a row a
    ``skip`` list leaves out, or a gap, is None)."""
    con = connect(threads=1, spill_to=spill_to, memory_limit=memory_limit)
    try:
        raw = load_raw_rows(con, path, "mapping_source")
        # The rows set aside come in their places from the database, a batch at a time like the
        # others, so a file of many malformed lines is never held whole.
        flag = _unused_name("__set_aside", raw.columns)
        text = _unused_name("__set_aside_text", raw.columns)
        result = con.execute(
            f"SELECT *, false AS {flag}, NULL::VARCHAR AS {text} FROM {raw.table} "
            f"UNION ALL BY NAME SELECT source_row AS {ROW_NUMBER}, true AS {flag}, text AS {text} "
            f"FROM {raw.malformed_table} ORDER BY {ROW_NUMBER}"
        )
        position = 1  # the next to give
        while not (frame := result.fetch_df_chunk(EXPORT_BATCH_VECTORS)).empty:
            positions = frame.pop(ROW_NUMBER).astype(int)
            set_aside = frame.pop(flag).to_numpy(dtype=bool)
            texts = frame.pop(text)
            frame.index = positions.to_numpy()
            malformed = {
                row: MalformedSource(line)
                for row, line in zip(positions[set_aside], texts[set_aside], strict=True)
            }
            placed: dict[int, ConvertedRow] = dict(malformed)
            if not set_aside.all():  # a batch of lines set aside only has nothing to map
                mapped = apply_mapping(frame[~set_aside], mapping)
                skipped.update(mapped.skipped)
                placed.update(zip(mapped.events.index, _records(mapped.events), strict=True))
            for row in positions.tolist():
                while position < row:  # a row the reader did not keep (a blank line)
                    yield None
                    position += 1
                yield placed.get(row)
                position = row + 1
    finally:
        con.close()


def _unused_name(name: str, columns: Sequence[str]) -> str:
    """``name``, lengthened until no column of the file has it (in any case)."""
    taken = {column.lower() for column in columns}
    while name.lower() in taken:
        name += "_"
    return name


def _records(events: pd.DataFrame) -> Sequence[dict[str, object]]:
    records = events.to_dict("records")
    if AS_WRITTEN_COLUMN in events:  # only the rows with a value as written carry the note
        for record in records:
            if record[AS_WRITTEN_COLUMN] is None:
                del record[AS_WRITTEN_COLUMN]
    return records
