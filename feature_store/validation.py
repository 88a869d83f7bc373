"""Validation of raw rows against the canonical contract, written as SQL so DuckDB runs it in bulk.

Pure functions: given the stream and the source column types they return SQL text. The typed
expression of every canonical column and the list of reasons a row breaks the contract are both
derived from ``schema.COLUMNS``, so one contract drives every file format.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from string import ascii_lowercase, ascii_uppercase

from feature_store.engine import sql_identifier, sql_string
from feature_store.readers import ROW_NUMBER
from feature_store.schema import (
    ADDED_COLUMNS,
    ASCII_SPACE_PATTERN,
    BILLING_TYPES,
    COLUMNS,
    DECIMAL_PATTERN,
    INTERVALS,
    MAX_AMOUNT,
    MAX_ID_LENGTH,
    MAX_SEATS,
    MONEY_TYPES,
    PLACEHOLDER_ID_PATTERN,
    PRICED_SUBSCRIPTION_TYPES,
    QUARANTINE_BOOKKEEPING_COLUMNS,
    RAW_LINE_COLUMN,
    SUBSCRIPTION_TYPES,
    Reason,
    Stream,
    column_names,
    content_column_names,
    currency_codes,
)
from feature_store.timeutil import EARLIEST, INSTANT_PATTERN, LATEST

_TEXT_TYPES = ("VARCHAR",)
_TIMESTAMP_TYPES = ("TIMESTAMP", "TIMESTAMP_NS", "TIMESTAMP_MS", "TIMESTAMP_S", "DATE")


def _currency_pattern() -> str:
    """The ISO 4217 codes as one alternation: RE2 matches it as fast as `[A-Z]{3}`, where an IN
    list of the 300 codes took seven times as long on 5 million rows (and Spark's RLIKE reads it
    alike)."""
    return "(?:" + "|".join(sorted(currency_codes())) + ")"


def _in_list(values: tuple[str, ...]) -> str:
    return "(" + ", ".join(sql_string(value) for value in values) + ")"


def _source(name: str, types: Mapping[str, str]) -> str:
    """The raw value of a column as stored, or NULL when the file lacks the column."""
    return sql_identifier(name) if name in types else "NULL"


def _text(name: str, types: Mapping[str, str]) -> str:
    """The column as text with empty strings read as missing (CSV and JSON spell null both ways)."""
    if name not in types:
        return "CAST(NULL AS VARCHAR)"
    return f"NULLIF(CAST({sql_identifier(name)} AS VARCHAR), '')"


def _enum(name: str, types: Mapping[str, str]) -> str:
    return _ascii_lower(f"trim({_text(name, types)})")


# The contract's names (types, intervals, currencies, the named usage events) are ASCII, read in
# any ASCII case. Only ASCII letters are folded: DuckDB's lower() made "İNVOICE_PAID" (a Turkish
# dotted capital I) invoice_paid, where Python and Spark make it "i̇nvoice_paid", so ingestion
# stored an event that scoring by events and a lake read on Spark refused (a CRM's probe).
# translate() costs DuckDB 25 times lower()'s (5 s against 0.2 s on 10 million names), and made
# ingesting the same 11 million events again three times slower (15 s to 44 s; found by bisection,
# docs/benchmarks.md): ASCII text, where the two agree, takes lower() and upper() (a byte per
# character: ``strlen``, bytes, equals ``length``, characters; Spark reads it as octet_length).
def _ascii_lower(text: str) -> str:
    folded = f"translate({text}, '{ascii_uppercase}', '{ascii_lowercase}')"
    return f"(CASE WHEN strlen({text}) = length({text}) THEN lower({text}) ELSE {folded} END)"


def _ascii_upper(text: str) -> str:
    folded = f"translate({text}, '{ascii_lowercase}', '{ascii_uppercase}')"
    return f"(CASE WHEN strlen({text}) = length({text}) THEN upper({text}) ELSE {folded} END)"


def _timestamp(name: str, types: Mapping[str, str]) -> str:
    """The instant in UTC, NULL when it is not the contract's ISO 8601 or lies outside the years
    ``timeutil.MIN_YEAR`` to ``MAX_YEAR`` (``timeutil`` holds the one rule)."""
    if name not in types:
        return "CAST(NULL AS TIMESTAMP)"
    instant = _instant(name, types)
    bounds = (
        f"TIMESTAMP '{EARLIEST.isoformat(sep=' ')}' AND TIMESTAMP '{LATEST.isoformat(sep=' ')}'"
    )
    return f"(CASE WHEN {instant} BETWEEN {bounds} THEN {instant} END)"


def _instant(name: str, types: Mapping[str, str]) -> str:
    source_type = types.get(name, "VARCHAR").upper()
    if source_type.startswith("TIMESTAMP WITH TIME ZONE") or source_type in _TIMESTAMP_TYPES:
        return f"CAST({sql_identifier(name)} AS TIMESTAMP)"
    # Text: only the strict pattern is read (DuckDB alone accepts spaces around the value and
    # offsets such as +99:99). With an offset the instant is converted to UTC; without one, the
    # session zone (UTC) applies.
    text = _text(name, types)
    return (
        f"(CASE WHEN regexp_full_match({text}, {sql_string(INSTANT_PATTERN)}) "
        f"THEN CAST(TRY_CAST({text} AS TIMESTAMPTZ) AS TIMESTAMP) END)"
    )


def _number(name: str, types: Mapping[str, str]) -> str:
    if name not in types:
        return "CAST(NULL AS DOUBLE)"
    if types[name].upper() in _TEXT_TYPES:
        # Decimal text only (``schema.decimal_value``, which scoring by events reads a JSON
        # string by): DuckDB's cast also reads "1_000" as 1000 and "+-1" as -1, which no
        # contract number is (a CRM's probe, a review).
        text = f"trim({_text(name, types)})"
        decimal = f"{ASCII_SPACE_PATTERN}*({DECIMAL_PATTERN}){ASCII_SPACE_PATTERN}*"
        return (
            f"(CASE WHEN regexp_full_match({text}, {sql_string(decimal)}) "
            f"THEN TRY_CAST({text} AS DOUBLE) END)"
        )
    if types[name].upper() == "BOOLEAN":  # a Parquet true is not one seat
        return "CAST(NULL AS DOUBLE)"
    return f"TRY_CAST({sql_identifier(name)} AS DOUBLE)"


def _present(name: str, types: Mapping[str, str]) -> str:
    return f"({_text(name, types)} IS NOT NULL)"


def _present_id(name: str, types: Mapping[str, str], placeholders: bool = False) -> str:
    # An id of white space only names nothing (a spreadsheet's blank cell): missing, as "" is;
    # with ``placeholders``, nor does a tool's word for no value ("nan", "NULL": ``schema.
    # PLACEHOLDER_IDS``, which scoring reads by ``schema.names_nothing``).
    if placeholders:
        return names_something(_text(name, types))
    return f"coalesce(NOT regexp_full_match({_text(name, types)}, '{_BLANK}'), false)"


def names_something(text: str) -> str:
    """SQL: whether the text expression ``text`` is an id: not NULL, not white space only, not a
    tool's word for no value (``schema.names_nothing`` in Python)."""
    nothing = f"{_BLANK}{PLACEHOLDER_ID_PATTERN}?{_BLANK}"
    return f"coalesce(NOT regexp_full_match({text}, '{nothing}'), false)"


# White space as RE2 reads it: \s is ASCII only, so no-break and ideographic spaces (\pZ), the
# vertical tab, the byte order mark and the zero-width space are named besides.
_BLANK = r"[\s\x0b\pZ\x{FEFF}\x{200B}]*"


def _finite(expression: str) -> str:
    return f"({expression} IS NOT NULL AND isfinite({expression}))"


# The optional ids: missing when white space only or a placeholder for no value, as the required
# ids are (``schema.names_nothing``; scoring by events reads them so, ``service.schemas.events``).
OPTIONAL_IDS = frozenset({"subscription_id", "user_id"})
# Usage events the features read by name (``feature_store.features``; the events contract).
NAMED_EVENTS = ("login", "feature_used", "api_call")
# The ids and names stored without the spaces around them (``typed_columns``): every text column
# but the enums and the currency, which are read their own way. Scoring by events reads them so
# too (``service.schemas.events``).
TRIMMED_COLUMNS = frozenset(
    {"event_id", "customer_id", "subscription_id", "user_id", "plan", "feature", "event"}
)


def _trimmed(text: str) -> str:
    # Spaces only, as Spark's trim takes them off and Python's ``strip(" ")`` (scoring by
    # events): DuckDB's trim() alone also takes a no-break space, and a lake read on Spark then
    # held customers ingestion did not (a review)
    return f"NULLIF(trim({text}, ' '), '')"


def _named_event(text: str) -> str:
    """The names the contract gives a meaning are read in any case, as ``type`` is: "API_CALL"
    and "Login" counted as neither API use nor logins, and the features read 0 without a word;
    other names are the product's own, kept as written."""
    named = ", ".join(f"'{event}'" for event in NAMED_EVENTS)
    folded = _ascii_lower(text)
    return f"CASE WHEN {folded} IN ({named}) THEN {folded} ELSE {text} END"


def typed_columns(stream: Stream, types: Mapping[str, str]) -> dict[str, str]:
    """SQL expression of each canonical column, typed as stored (NULL where it cannot be parsed)."""
    expressions: dict[str, str] = {}
    for column in COLUMNS[stream]:
        name = column.name
        if column.sql_type == "TIMESTAMP":
            expressions[name] = _timestamp(name, types)
        elif column.sql_type == "DOUBLE":
            number = _number(name, types)
            expressions[name] = f"CASE WHEN {_finite(number)} THEN {number} END"
        elif column.sql_type == "BIGINT":
            number = _number(name, types)
            expressions[name] = (
                # TRY_CAST: a whole number past the 64-bit range is invalid, not an error that
                # refused the whole file
                f"CASE WHEN {_finite(number)} AND {number} = floor({number}) "
                f"THEN TRY_CAST({number} AS BIGINT) END"
            )
        elif name in ("type", "interval"):
            expressions[name] = _enum(name, types)
        elif name == "currency":
            expressions[name] = _ascii_upper(f"trim({_text(name, types)})")
        elif name == "event":
            expressions[name] = _named_event(_trimmed(_text(name, types)))
        elif name in TRIMMED_COLUMNS:
            # Ids and names without the spaces around them, as the enums and numbers are read:
            # "b3,c1" and " b3, c1" (a hand-written CSV's space after each comma) were two events
            # of two customers, one invoice counted twice, and " " a user (a data engineer's
            # review). Trimmed to nothing, a value is missing.
            expressions[name] = _trimmed(_text(name, types))
            if name in OPTIONAL_IDS:
                # a tool's word for no value is no subscription or user: "nan" made one
                # subscription of two and kept a cancelled customer paying (a hostile client)
                expressions[name] = (
                    f"CASE WHEN {names_something(expressions[name])} THEN {expressions[name]} END"
                )
        else:
            expressions[name] = _text(name, types)
    if stream == "usage":
        # Quantity is optional with a default of 1 (spec); a present but bad value is refused.
        expressions["quantity"] = f"coalesce({expressions['quantity']}, 1.0)"
    return expressions


TYPED_PREFIX = "__typed_"


def typed_references(stream: Stream) -> dict[str, str]:
    """The typed columns as a subquery selecting ``typed_columns`` under ``TYPED_PREFIX`` names
    provides them: each is then computed once per row, not once in every condition using it (a
    billing row is checked by some 25 conditions, and the cost of a statement is mostly theirs)."""
    return {column.name: f"{TYPED_PREFIX}{column.name}" for column in COLUMNS[stream]}


def reason_checks(
    stream: Stream, types: Mapping[str, str], typed: Mapping[str, str] | None = None
) -> list[tuple[Reason, str]]:
    """Every (reason, condition) pair, in the order a row's primary reason is chosen.

    ``typed``: where the typed columns can be read (``typed_references``), when a subquery has
    computed them; by default each condition computes them itself.
    """
    typed = typed_columns(stream, types) if typed is None else typed
    checks = (
        [(Reason.MALFORMED_ROW, sent_back_line_alone(types))] if RAW_LINE_COLUMN in types else []
    )
    checks += _identity_checks(types, typed)
    if stream == "billing":
        checks += _billing_checks(types, typed)
    else:
        checks += _usage_checks(types, typed)
    return checks


def _invalid_id(name: str, types: Mapping[str, str], typed: Mapping[str, str]) -> str:
    """An id (or a name: a plan, an event, a feature) longer than ``MAX_ID_LENGTH``, or one that
    is not a single value: a Parquet column
    of lists, structs or maps (an expanded object where its id was meant) would otherwise be
    stored as its text, "[1, 2]". (JSON Lines: the reader sets such lines aside.)"""
    if _is_nested_type(types.get(name)):
        return _present(name, types)
    return f"length({typed[name]}) > {MAX_ID_LENGTH}"


def _is_nested_type(sql_type: str | None) -> bool:
    """Whether a DuckDB column type holds several values per row (a list, array, struct, map)."""
    return sql_type is not None and (
        sql_type.endswith("]") or sql_type.startswith(("STRUCT", "MAP", "UNION"))
    )


def _identity_checks(
    types: Mapping[str, str], typed: Mapping[str, str]
) -> list[tuple[Reason, str]]:
    return [
        (Reason.MISSING_EVENT_ID, f"NOT {_present_id('event_id', types, placeholders=True)}"),
        (Reason.INVALID_EVENT_ID, _invalid_id("event_id", types, typed)),
        (
            Reason.MISSING_CUSTOMER_ID,
            f"NOT {_present_id('customer_id', types, placeholders=True)}",
        ),
        (Reason.INVALID_CUSTOMER_ID, _invalid_id("customer_id", types, typed)),
        (Reason.MISSING_OCCURRED_AT, f"{_source('occurred_at', types)} IS NULL"),
        (
            Reason.INVALID_OCCURRED_AT,
            f"{_source('occurred_at', types)} IS NOT NULL AND {typed['occurred_at']} IS NULL",
        ),
    ]


def _number_checks(
    name: str,
    types: Mapping[str, str],
    typed: Mapping[str, str],
    when: str,
    *,
    missing: Reason | None,
    invalid: Reason,
    out_of_range: tuple[Reason, str],
    maximum: int,
) -> list[tuple[Reason, str]]:
    """Checks for one numeric column: required (if ``missing``), parseable and at most
    ``maximum`` (else ``invalid``), within range."""
    present = _present(name, types)
    range_reason, range_condition = out_of_range
    checks = []
    if missing is not None:
        checks.append((missing, f"{when} AND NOT {present}"))
    value = typed[name]
    checks.append((invalid, f"{when} AND {present} AND ({value} IS NULL OR {value} > {maximum})"))
    checks.append((range_reason, f"{when} AND {typed[name]} {range_condition}"))
    return checks


def _billing_checks(types: Mapping[str, str], typed: Mapping[str, str]) -> list[tuple[Reason, str]]:
    kind = typed["type"]
    priced = f"{kind} IN {_in_list(PRICED_SUBSCRIPTION_TYPES)}"
    subscription = f"{kind} IN {_in_list(SUBSCRIPTION_TYPES)}"
    money = f"{kind} IN {_in_list(MONEY_TYPES)}"
    interval_present = _present("interval", types)
    currency = typed["currency"]
    return [
        (Reason.MISSING_TYPE, f"{kind} IS NULL"),
        (Reason.UNKNOWN_TYPE, f"{kind} NOT IN {_in_list(BILLING_TYPES)}"),
        # the stored plan: spaces alone are no plan (stored as NULL where a plan is required, as
        # a CRM's probe found)
        (Reason.MISSING_PLAN, f"{priced} AND {typed['plan']} IS NULL"),
        (
            Reason.INVALID_INTERVAL,
            f"{subscription} AND ({priced} OR {interval_present}) "
            f"AND coalesce({typed['interval']} NOT IN {_in_list(INTERVALS)}, true)",
        ),
        *_number_checks(
            "seats",
            types,
            typed,
            subscription,
            missing=None,
            invalid=Reason.INVALID_SEATS,
            out_of_range=(Reason.NEGATIVE_SEATS, "< 0"),
            maximum=MAX_SEATS,
        ),
        (Reason.MISSING_SEATS, f"{priced} AND NOT {_present('seats', types)}"),
        *_number_checks(
            "mrr",
            types,
            typed,
            subscription,
            missing=None,
            invalid=Reason.INVALID_MRR,
            out_of_range=(Reason.NEGATIVE_MRR, "< 0"),
            maximum=MAX_AMOUNT,
        ),
        (Reason.MISSING_MRR, f"{priced} AND NOT {_present('mrr', types)}"),
        *_number_checks(
            "amount",
            types,
            typed,
            money,
            missing=Reason.MISSING_AMOUNT,
            invalid=Reason.INVALID_AMOUNT,
            out_of_range=(Reason.NON_POSITIVE_AMOUNT, "<= 0"),
            maximum=MAX_AMOUNT,
        ),
        # the contract: a currency with every `amount` and every `mrr` a row must carry
        (Reason.MISSING_CURRENCY, f"({money} OR {priced}) AND {currency} IS NULL"),
        # an ISO 4217 code, not any three capitals: "ZZZ" was stored and its money stayed
        # unconverted beside everyone else's (a hostile client's probe, 2026-12-07)
        (
            Reason.INVALID_CURRENCY,
            f"{currency} IS NOT NULL AND NOT regexp_full_match({currency}, '{_currency_pattern()}')",
        ),
        (Reason.INVALID_SUBSCRIPTION_ID, _invalid_id("subscription_id", types, typed)),
        (Reason.INVALID_PLAN, _invalid_id("plan", types, typed)),
    ]


def _usage_checks(types: Mapping[str, str], typed: Mapping[str, str]) -> list[tuple[Reason, str]]:
    quantity_text = _present("quantity", types)
    raw_quantity = _number("quantity", types)
    return [
        # white space only names no event, as it names no id (a hostile client's "   ")
        (Reason.MISSING_EVENT, f"NOT {_present_id('event', types)}"),
        (
            Reason.INVALID_QUANTITY,
            f"{quantity_text} AND NOT ({_finite(raw_quantity)} AND {raw_quantity} <= {MAX_AMOUNT})",
        ),
        (Reason.NEGATIVE_QUANTITY, f"{_finite(raw_quantity)} AND {raw_quantity} < 0"),
        # as every id: a 3 MB user_id sent over HTTP was stored (a hostile-client probe)
        (Reason.INVALID_USER_ID, _invalid_id("user_id", types, typed)),
        (Reason.INVALID_EVENT, _invalid_id("event", types, typed)),
        (Reason.INVALID_FEATURE, _invalid_id("feature", types, typed)),
    ]


def reasons_expression(
    stream: Stream, types: Mapping[str, str], typed: Mapping[str, str] | None = None
) -> str:
    """A SQL list of every reason the row breaks the contract; empty when the row is valid."""
    cases = [
        f"CASE WHEN coalesce({condition}, false) THEN {sql_string(reason.value)} END"
        for reason, condition in reason_checks(stream, types, typed)
    ]
    return f"list_filter([{', '.join(cases)}], lambda reason: reason IS NOT NULL)"


def raw_json_expression(types: Mapping[str, str], table: str) -> str:
    """The source row of ``table`` as JSON text, with the file's columns, for quarantine.

    A quarantine export holding a line that did not split into columns has a ``_raw_line``
    column, empty on every other row. Sent back unchanged, a row is the same row: without the
    empty ``_raw_line`` (it was re-keyed, a second entry opened beside the first), and the line
    alone with only its text, as it was quarantined (an ingestion walkthrough, 2026-12-06)."""

    def packed(names: Sequence[str]) -> str:
        fields = ", ".join(
            f"{sql_identifier(name)} := {table}.{sql_identifier(name)}" for name in names
        )
        return f"to_json(struct_pack({fields}))" if fields else "'{}'"

    if RAW_LINE_COLUMN not in types:
        return packed(list(types))
    others = [name for name in types if name != RAW_LINE_COLUMN]
    line = f"{table}.{sql_identifier(RAW_LINE_COLUMN)}"
    return (
        f"CASE WHEN {line} IS NULL THEN {packed(others)} "
        f"WHEN {sent_back_line_alone(types, table)} THEN {packed([RAW_LINE_COLUMN])} "
        f"ELSE {packed(list(types))} END"
    )


def sent_back_line_alone(types: Mapping[str, str], table: str | None = None) -> str:
    """SQL: the row (of ``table``, when named) is a line that did not split, sent back from a
    quarantine export unchanged: its ``_raw_line`` alone is filled in. ``false`` when the file has
    no such column.

    Such a row is still the malformed line it was: it is counted as ``malformed_row`` (the first
    reason checked), not as the first contract column it lacks (an ingestion walkthrough,
    2026-12-06, seventh session: the report said ``missing_event_id`` while its entry, counted
    again, said ``malformed_row``)."""
    if RAW_LINE_COLUMN not in types:
        return "false"
    prefix = f"{table}." if table else ""
    # The export's bookkeeping (its entry's id and reasons) is filled in on every row.
    ignored = {RAW_LINE_COLUMN, *QUARANTINE_BOOKKEEPING_COLUMNS}
    others = [name for name in types if name not in ignored]
    conditions = [f"{prefix}{sql_identifier(RAW_LINE_COLUMN)} IS NOT NULL"]
    conditions += [f"{prefix}{sql_identifier(name)} IS NULL" for name in others]
    return " AND ".join(conditions)


def _comparable(alias: str, name: str) -> str:
    """A stored column as today's ingestion writes it. Text is trimmed (and a named event's case
    read) since 2026-12-07: a copy stored before kept them, and re-sent after, it read as another
    event under the same id (``conflicting_duplicate``, "is this another company's data?": a
    review). Compared as today's ingestion writes both copies, it is the duplicate it is."""
    column = f"{alias}.{name}"
    if name == "event":
        return _named_event(_trimmed(column))
    return _trimmed(column) if name in TRIMMED_COLUMNS else column


def content_differs(stream: Stream, left: str, right: str) -> str:
    """SQL: the rows aliased ``left`` and ``right`` say different things (NULL equals NULL).

    Compares the typed canonical columns, not the raw text: ``1`` and ``1.0``, or one instant
    written with two offsets, are the same content.
    """
    names = content_column_names(stream)
    differs = (
        f"({', '.join(_comparable(left, name) for name in names)}) IS DISTINCT FROM "
        f"({', '.join(_comparable(right, name) for name in names)})"
    )
    # A column added to the contract later (``schema.ADDED_COLUMNS``) differs only when both
    # copies give it: a copy stored before the column existed says nothing about it.
    added = [
        f"coalesce({_comparable(left, name)} <> {_comparable(right, name)}, false)"
        for name in ADDED_COLUMNS
        if name in column_names(stream)
    ]
    return "(" + " OR ".join([differs, *added]) + ")"


# The reasons list of a row quarantined because its event id already carries another event.
CONFLICT_REASONS_SQL = f"['{Reason.CONFLICTING_DUPLICATE.value}']"


def later_copies_sql(stream: Stream, events: str) -> str:
    """SQL for the rows of ``events`` whose event id an earlier row of ``events`` already carries.

    ``events`` is a relation of valid typed rows with their position (``__row``); the first copy of
    an id wins. Each later copy comes with ``conflicting``: whether its content differs from the
    first copy's (a reused id) or not (a re-send). Repeated ids are found with one hash aggregate, so
    only the few repeated rows are compared: several times faster than a window over every row.
    """
    return f"""
        WITH repeated AS (
            SELECT event_id, min({ROW_NUMBER}) AS first_row FROM {events}
            GROUP BY event_id HAVING count(*) > 1
        ),
        first_copies AS (
            SELECT * FROM {events} AS event
            SEMI JOIN repeated ON event.{ROW_NUMBER} = repeated.first_row
        )
        SELECT later.{ROW_NUMBER}, {content_differs(stream, "later", "earliest")} AS conflicting
        FROM {events} AS later JOIN first_copies AS earliest USING (event_id)
        WHERE later.{ROW_NUMBER} <> earliest.{ROW_NUMBER}"""
