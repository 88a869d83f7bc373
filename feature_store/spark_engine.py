"""The feature table on Spark, from the same definitions as DuckDB: ``feature_sql`` transpiled.

Nothing here defines a feature. ``spark_feature_sql`` parses the DuckDB SQL of
``feature_store.features.feature_sql`` with sqlglot and writes it as Spark SQL; a handful of
targeted rewrites cover the functions whose meaning differs between the engines (see ``_REWRITES``
and ``docs/scale-out.md``). The parity test (``tests/test_spark_parity.py``) runs both engines on the
same events and requires every value equal.

PySpark is imported lazily, inside the functions that need it: importing this module costs nothing
to a user who never runs Spark.
"""

from __future__ import annotations

import contextlib
import re
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import sqlglot
from sqlglot import exp

from feature_store.coverage import EventCoverage, MixedCurrencies
from feature_store.currency import (
    CURRENCY_COLUMN,
    ESTIMATE,
    MONEY_FEATURES,
    PAYING_SQL,
    CurrencyLevels,
    LevelsChoice,
    levels_from_prices,
)
from feature_store.engine import sql_string
from feature_store.errors import InputFileError, SegmentsError
from feature_store.features import feature_sql
from feature_store.formats import first_line
from feature_store.offline_store import EVENT_VIEWS, OfflineStore
from feature_store.registry import FEATURE_NAMES
from feature_store.schema import (
    ASCII_SPACE_PATTERN,
    COLUMNS,
    STREAMS,
    Column,
    Stream,
)
from feature_store.timeutil import now_utc
from feature_store.validation import reason_checks, typed_columns

if TYPE_CHECKING:
    from pyspark.sql import Column as SparkColumn
    from pyspark.sql import DataFrame, SparkSession

# Where the events of one stream come from: a table name, or Parquet paths (files, directories or
# globs; ``s3://``, ``gs://``, ``abfss://`` and ``dbfs:/`` work when the cluster has their jars).
EventSource = str | Sequence[str]

_EPOCH_NTZ = "TIMESTAMP_NTZ '1970-01-01 00:00:00'"
_SPARK_TYPES = {"VARCHAR": "STRING", "TIMESTAMP": "TIMESTAMP_NTZ", "BIGINT": "BIGINT"}


# --- DuckDB SQL -> Spark SQL ---------------------------------------------------------------------


def _name(node: exp.Expression) -> str:
    return node.name.upper() if isinstance(node, exp.Anonymous) else ""


def _spark_call(name: str, *args: exp.Expression) -> exp.Anonymous:
    return exp.Anonymous(this=name, expressions=list(args))


def _struct_key(key: exp.Expression) -> exp.Expression:
    """DuckDB orders by a row value ``(a, b)``; Spark by ``struct(a, b)`` (also lexicographic)."""
    return _spark_call("STRUCT", *key.expressions) if isinstance(key, exp.Tuple) else key


def _epoch_us(node: exp.Anonymous) -> exp.Expression:
    """``epoch_us(ts)``: microseconds since 1970 of a zone-less timestamp.

    Spark's ``unix_micros`` wants a zoned TIMESTAMP and would read ours in the session time zone;
    the difference from the NTZ epoch is the same number whatever that zone is.
    """
    return _spark_call(
        "TIMESTAMPDIFF",
        exp.var("MICROSECOND"),
        sqlglot.parse_one(_EPOCH_NTZ, read="spark"),
        *node.expressions,
    )


def _arg_max_null(node: exp.Anonymous) -> exp.Expression:
    """``arg_max_null(x, k)`` keeps a NULL ``x`` at the largest ``k``: exactly Spark's ``max_by``."""
    value, key = node.expressions
    return _spark_call("MAX_BY", value, _struct_key(key))


def _arg_extreme(node: exp.ArgMax | exp.ArgMin) -> exp.Expression:
    """DuckDB's ``arg_max(x, k)`` skips rows whose ``x`` is NULL; Spark's ``max_by`` does not.

    Hiding the key of those rows (``max_by`` skips a NULL key) gives DuckDB's meaning.
    """
    value, key = node.this, node.expression
    hidden = exp.If(
        this=exp.Is(this=value.copy(), expression=exp.Null()),
        true=exp.Null(),
        false=_struct_key(key),
    )
    return _spark_call("MAX_BY" if isinstance(node, exp.ArgMax) else "MIN_BY", value, hidden)


def _full_match(node: exp.RegexpFullMatch) -> exp.Expression:
    """DuckDB's ``regexp_full_match(x, p)`` (RE2, the whole text) as Spark's ``RLIKE`` (Java,
    any match): anchored with ``\\z``, since Java's ``$`` also matches before a final line feed."""
    pattern = node.expression.name
    text = node.this.transform(_rewrite)  # a replaced node's own arguments are not visited
    return exp.RegexpLike(this=text, expression=exp.Literal.string(f"^(?:{pattern})\\z"))


def _isfinite(node: exp.Anonymous) -> exp.Expression:
    """``isfinite(x)``: Spark orders NaN above infinity, so one comparison leaves out both."""
    value = node.expressions[0].transform(_rewrite)  # a replaced node's arguments are not visited
    infinity = exp.Cast(this=exp.Literal.string("Infinity"), to=exp.DataType.build("DOUBLE"))
    return exp.LT(this=exp.Abs(this=value), expression=infinity)


def _text_number(node: exp.TryCast) -> exp.Expression:
    """``TRY_CAST(trim(text) AS DOUBLE)`` (how ``feature_store.validation`` reads a number
    written as text, once it has checked the text's decimal syntax) as DuckDB's cast reads it:
    DuckDB's also takes ASCII white space around the number ("\\t7", "7\\r\\n"), which trim()
    leaves; Spark's did not. (Java's parser also reads "2d", "1.5f" and "0x1p3": the syntax check
    before the cast keeps them out, on both engines.)"""
    text = node.this.transform(_rewrite)  # a replaced node's own arguments are not visited
    bare = exp.RegexpReplace(
        this=text,
        expression=exp.Literal.string(f"^{ASCII_SPACE_PATTERN}+|{ASCII_SPACE_PATTERN}+\\z"),
        replacement=exp.Literal.string(""),
    )
    return exp.TryCast(this=bare, to=node.to.copy())


# Text times Spark's cast does not read and ingestion does (DuckDB; ``timeutil.INSTANT_PATTERN``):
# an hour and minute followed by a zone ("2025-01-01T10:00Z", "...10:00+05:00"; Spark reads
# "10:00" and "10:00:00Z" but not these) and the end of a day, "24:00" (ISO 8601: the next day's
# midnight). A lake's events written so were left out as invalid_occurred_at, where a file of them
# was stored (since 2026-12-07, eighth session).
_DAY = r"[0-9]{4}-[0-9]{2}-[0-9]{2}[T ]"
_END_OF_DAY = rf"^({_DAY})24:00(:00(\.0{{1,9}})?)?(?=\z|Z|[+-])"
_MINUTE_THEN_ZONE = rf"^({_DAY}[0-9]{{2}}:[0-9]{{2}})(?=[Z+-])"


def spark_instant(text: str, cast_to: str = "TIMESTAMP") -> str:
    """Spark SQL reading the contract's text time ``text`` (SQL) with ``TRY_CAST(... AS cast_to)``
    as ingestion reads it: seconds added where a zone follows the minute, and "24:00" read as the
    next day's "00:00:00"."""
    end_of_day = _spark_string(_END_OF_DAY)
    midnight = f"TRY_CAST(regexp_replace({text}, {end_of_day}, '$100:00:00') AS {cast_to})"
    # The next midnight is 24 hours on, as an instant: a day added to a zoned TIMESTAMP is a
    # calendar day of the session's zone, an hour off where its clocks change that day (a
    # review: "2025-03-09T24:00Z" read 23:00 in a New York session). A zone-less one has none.
    next_midnight = (
        f"timestamp_micros(unix_micros({midnight}) + {24 * 3600 * 10**6})"
        if cast_to == "TIMESTAMP"
        else f"{midnight} + INTERVAL 1 DAY"
    )
    seconds = f"regexp_replace({text}, {_spark_string(_MINUTE_THEN_ZONE)}, '$1:00')"
    return (
        f"(CASE WHEN {text} RLIKE {end_of_day} THEN {next_midnight} "
        f"ELSE TRY_CAST({seconds} AS {cast_to}) END)"
    )


def _spark_string(value: str) -> str:
    """A Spark SQL string literal of ``value`` (Spark reads a backslash in one as an escape)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _text_instant(node: exp.TryCast) -> exp.Expression:
    """``TRY_CAST(text AS TIMESTAMPTZ)`` (how ``feature_store.validation`` reads a text time) as
    DuckDB reads it (``spark_instant``)."""
    text = node.this.transform(_rewrite).sql(dialect="spark", identify=True)
    return sqlglot.parse_one(spark_instant(text), read="spark")


def _unicode_trim(node: exp.Trim) -> exp.Expression:
    """DuckDB's ``trim(x)`` takes every Unicode space separator (category Zs: the space, the
    no-break space U+00A0, U+2000-U+200A, ...) from both ends; Spark's only the ASCII space. A
    type or currency padded with a no-break space (a spreadsheet's) was stored by ingestion and
    left out of a lake read on Spark as unknown_type or invalid_currency."""
    text = node.this.transform(_rewrite)
    return exp.RegexpReplace(
        this=text,
        expression=exp.Literal.string(r"^\p{Zs}+|\p{Zs}+\z"),
        replacement=exp.Literal.string(""),
    )


def _rewrite(node: exp.Expression) -> exp.Expression:
    if isinstance(node, exp.TryCast) and node.to.is_type("timestamptz"):
        return _text_instant(node)
    if isinstance(node, exp.Trim) and node.expression is None and node.args.get("position") is None:
        return _unicode_trim(node)
    if isinstance(node, exp.ArgMax | exp.ArgMin):
        return _arg_extreme(node)
    if isinstance(node, exp.RegexpFullMatch):
        return _full_match(node)
    if (
        isinstance(node, exp.TryCast)
        and node.to.is_type("double")
        and isinstance(node.this, exp.Trim)
    ):
        return _text_number(node)
    rewrite = _ANONYMOUS_REWRITES.get(_name(node))
    return rewrite(node) if rewrite else node  # type: ignore[arg-type]


# DuckDB functions sqlglot leaves as they are, with their Spark meaning. What needs no entry here,
# because sqlglot already writes the Spark form with the same meaning: FILTER (WHERE ...) clauses,
# ``ts - INTERVAL n DAY`` (zone-less timestamps: no daylight-saving shift), integer ``//`` -> ``DIV``
# (both truncate towards zero), ``bool_or``, ``lag`` with a default, ``NULLS LAST`` made explicit.
_ANONYMOUS_REWRITES: dict[str, Callable[[exp.Anonymous], exp.Expression]] = {
    "EPOCH_US": _epoch_us,
    "ARG_MAX_NULL": _arg_max_null,
    "ISFINITE": _isfinite,
    # a text's length in bytes (UTF-8 both): ``validation._ascii_lower``'s test for ASCII
    "STRLEN": lambda node: _spark_call("OCTET_LENGTH", *node.expressions),
}


def spark_feature_sql(as_of: datetime) -> str:
    """The feature SQL of ``feature_sql(as_of)`` as Spark SQL over the same ``EVENT_VIEWS``."""
    tree = sqlglot.parse_one(feature_sql(as_of), read="duckdb").transform(_rewrite)
    # Quoted identifiers: ``interval`` and ``usage`` are keywords to Spark, columns and CTEs to us.
    return tree.sql(dialect="spark", identify=True)


# How a Spark source column's type reads to the contract's checks (``feature_store.validation``,
# written for DuckDB's type names). A zoned TIMESTAMP is an instant, as DuckDB's TIMESTAMPTZ.
_CHECKED_TYPES = {
    "string": "VARCHAR",
    "double": "DOUBLE",
    "float": "FLOAT",
    "bigint": "BIGINT",
    "int": "INTEGER",
    "smallint": "SMALLINT",
    "tinyint": "TINYINT",
    "boolean": "BOOLEAN",
    "timestamp": "TIMESTAMP WITH TIME ZONE",
    "timestamp_ntz": "TIMESTAMP",
    "date": "DATE",
}


def _checked_type(spark_type: str) -> str:
    if spark_type.startswith("array<"):
        return "VARCHAR[]"  # several values per row: refused as an id, as ingestion refuses it
    if spark_type.startswith(("struct<", "map<")):
        return spark_type.split("<", 1)[0].upper()
    if spark_type.startswith("decimal"):
        return "DOUBLE"
    return _CHECKED_TYPES.get(spark_type, spark_type.upper())


def contract_value_sql(stream: Stream, spark_types: Mapping[str, str]) -> dict[str, str]:
    """Spark SQL of each canonical column's value as ingestion stores it (empty text as NULL,
    ``type`` in lower case, whole seats from text such as "1e1", a missing quantity as 1): the
    expressions ``feature_store.validation.typed_columns`` writes for DuckDB, transpiled. Not
    ``occurred_at``, which ``_canonical`` reads whatever the session's time zone."""
    types = {name: _checked_type(kind) for name, kind in spark_types.items()}
    return {
        name: sqlglot.parse_one(expression, read="duckdb")
        .transform(_rewrite)
        .sql(dialect="spark", identify=True)
        for name, expression in typed_columns(stream, types).items()
        if name != "occurred_at"
    }


def contract_reason_sql(stream: Stream, spark_types: Mapping[str, str]) -> str:
    """Spark SQL naming the first reason a row of ``stream`` breaks the events contract (NULL for
    a valid row): the checks ``segments ingest`` quarantines by (``feature_store.validation``),
    transpiled as the feature SQL is, so a lake's events are held to the same contract."""
    types = {name: _checked_type(kind) for name, kind in spark_types.items()}
    cases = " ".join(
        f"WHEN coalesce({condition}, false) THEN {sql_string(reason.value)}"
        for reason, condition in reason_checks(stream, types)
    )
    tree = sqlglot.parse_one(f"CASE {cases} END", read="duckdb").transform(_rewrite)
    return tree.sql(dialect="spark", identify=True)


# --- Sessions and events -------------------------------------------------------------------------


def spark_session(
    master: str | None = None, *, config: Mapping[str, str] | None = None
) -> SparkSession:
    """A Spark session: ``local[*]`` by default, any master URL, or Spark Connect (``sc://...``).

    A session this returns is the caller's to stop. Python workers of a local master run the
    interpreter of this process, so they import the same project and libraries.
    """
    from pyspark.sql import SparkSession

    master = master or "local[*]"
    refuse_unknown_master(master)
    builder = SparkSession.builder.appName("customer-segments")
    if master.startswith("sc://"):
        builder = builder.remote(master)
    else:
        builder = builder.master(master)
        builder = builder.config("spark.sql.execution.arrow.pyspark.enabled", "true")
    builder = builder.config("spark.sql.session.timeZone", "UTC")
    for key, value in (config or {}).items():
        builder = builder.config(key, value)
    try:
        session = builder.getOrCreate()
    except Exception as error:
        if master.startswith("spark://") and "stopped SparkContext" in str(error):
            # Spark's own words, a minute later, were "Cannot call methods on a stopped
            # SparkContext": a standalone master that never answers ends the application after
            # three tries of 20 s each, before the session is made.
            raise SegmentsError(
                f"Spark: the master {master} did not accept the application (no answer in about "
                "a minute): check the URL and that the master is running"
            ) from None
        raise
    if master.startswith("local"):
        # Without PYSPARK_PYTHON, workers run whatever ``python3`` is first on PATH, which may not
        # see this virtualenv. Set on this session's context only; cluster executors keep theirs.
        session.sparkContext.pythonExec = sys.executable
    return session


# The master URLs Spark 4 accepts (spark-submit: "Master must either be yarn or start with
# spark, k8s, or local"; ``SparkContext.createTaskScheduler`` for the local forms), and Spark
# Connect's ``sc://``. Whether yarn finds its cluster's configuration is Spark's to say: it may
# come from spark-env.sh, which spark-submit reads after this process.
MASTER_URL = re.compile(
    r"local(\[\s*(\d+|\*)\s*(,\s*\d+\s*)?\])?"
    r"|local-cluster\[\s*\d+\s*,\s*\d+\s*,\s*\d+\s*\]|yarn|(spark|k8s|sc)://\S+"
)


def refuse_unknown_master(master: str) -> None:
    """One line for a master URL Spark would refuse after starting its JVM: "bogus" printed a
    Java stack trace and then "Java gateway process exited before sending its port number",
    which does not say what was wrong (a data engineer's review)."""
    if not MASTER_URL.fullmatch(master):
        raise SegmentsError(
            f"Spark: {master!r} is not a master URL: give local, local[N] or local[*], "
            "spark://HOST:PORT, k8s://HOST:PORT, yarn, or sc://HOST:PORT (Spark Connect)"
        )


# Spark's JVM logging for a command line: errors only (``job_session(quiet=True)``).
QUIET_LOGGING = Path(__file__).with_name("spark_log4j2.properties")


@contextlib.contextmanager
def job_session(master: str | None = None, *, quiet: bool = False) -> Iterator[SparkSession]:
    """The session a job runs on, for as long as the job runs.

    With no ``master`` named and a session already active in this thread (a notebook, a Databricks
    job, a program calling the Python API), the job runs on that session and leaves it running:
    stopping a session one did not start ends the caller's work. Otherwise a new session
    (``spark_session``) is started and stopped afterwards; ``quiet`` (the CLI) starts its JVM
    logging errors only, where Spark's default logs warnings, a Java stack trace among them,
    before the command's own one-line error.
    """
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession() if master is None else None
    if active is not None:
        yield active
        return
    config = {}
    if quiet and not (master or "").startswith("sc://"):  # a Connect server logs for itself
        config["spark.driver.extraJavaOptions"] = f"-Dlog4j2.configurationFile={QUIET_LOGGING}"
        # "[Stage 3:>   (0 + 2) / 4]" on stderr, terminal or not, between the command's lines
        config["spark.ui.showConsoleProgress"] = "false"
    session = spark_session(master, config=config)
    try:
        yield session
    finally:
        session.stop()


class StoreParts(list[str]):
    """Parquet parts ``segments ingest`` wrote: their rows were checked against the events
    contract and deduplicated when stored, so a Spark build reads them as they are."""


def store_event_sources(store: OfflineStore) -> dict[Stream, list[str]]:
    """The Parquet parts of the local offline store, as Spark sources."""
    return {stream: StoreParts(str(part) for part in store.parts(stream)) for stream in STREAMS}


def _canonical(column: Column, types: Mapping[str, str]) -> SparkColumn:
    """``column`` of a source, cast to its canonical type; a missing optional column is NULL."""
    from pyspark.sql import functions

    spark_type = _SPARK_TYPES.get(column.sql_type, column.sql_type)
    source = types.get(column.name)
    if source is None:
        return functions.lit(None).cast(spark_type).alias(column.name)
    if source == "timestamp":
        # A zoned timestamp is an instant; its UTC wall time, independent of the session time zone.
        wall = functions.expr(
            f"TIMESTAMPADD(MICROSECOND, unix_micros(`{column.name}`), {_EPOCH_NTZ})"
        )
        return wall.alias(column.name)
    if source == "string" and spark_type == "TIMESTAMP_NTZ":
        # Text with an offset is an instant ("2025-07-06T11:18:17+05:00" is 06:18:17 UTC: cast
        # straight to TIMESTAMP_NTZ, the offset was dropped); text without one is UTC wall time,
        # as ingestion reads it. Neither depends on the session's time zone.
        text = f"trim(`{column.name}`)"
        zoned = f"TIMESTAMPADD(MICROSECOND, unix_micros({spark_instant(text)}), {_EPOCH_NTZ})"
        return functions.expr(
            f"CASE WHEN {text} RLIKE '{_OFFSET_AT_END}' THEN {zoned} "
            f"ELSE {spark_instant(text, 'TIMESTAMP_NTZ')} END"
        ).alias(column.name)
    if spark_type == "TIMESTAMP_NTZ" and source not in ("timestamp_ntz", "date"):
        # A number (epoch milliseconds, say) is no instant, as ingestion reads it: the contract's
        # reasons leave its row out. Spark refuses to even try the cast (a data engineer's review:
        # the build stopped with "cannot cast BIGINT to TIMESTAMP_NTZ", naming no source).
        return functions.lit(None).cast(spark_type).alias(column.name)
    # try_cast: a value that does not read (checked by the contract's reasons, which leave its
    # row out) would otherwise fail the whole job, Spark computing this before the filter
    return functions.col(column.name).try_cast(spark_type).alias(column.name)


# An offset after a time of day ("...11:18:17+05:00", "...11:18Z"); a bare date's "-06" is none.
_OFFSET_AT_END = r"[0-9]:[0-9]{2}(:[0-9]{2}(\\.[0-9]+)?)?(Z|[+-][0-9]{2}(:?[0-9]{2})?)$"


def _named(source: EventSource, read: Callable[[], DataFrame]) -> DataFrame:
    """``read()``, its failure naming the source: "[UNABLE_TO_INFER_SCHEMA] Unable to infer
    schema for Parquet" said neither which source nor which folder (a review)."""
    try:
        return read()
    except Exception as error:  # pyspark's AnalysisException and its kin, whatever the version
        if type(error).__name__ in _READ_ERRORS:
            raise InputFileError(f"Spark: {_described(source)}: {first_line(error)}") from None
        clash = _schema_clash(error)
        if clash is None:
            raise
        raise InputFileError(f"Spark: {_described(source)}: {clash}") from None


# The errors of a read that the source's own name explains (an empty folder, parts whose types
# clash, a table that does not exist).
_READ_ERRORS = frozenset({"AnalysisException", "IllegalArgumentException", "SparkRuntimeException"})
# Spark 4 raises parts whose types do not merge as a Java SparkException, which reaches Python as
# Py4JJavaError ("An error occurred while calling o35.parquet."): it names the two schemas.
_STRUCT = re.compile(r'"STRUCT<(.*)>"')
_FIELD = re.compile(r"(?:^|, )`?([^:`]+)`?: ([A-Z_]+(?:\([0-9, ]+\))?)")


def _schema_clash(error: Exception) -> str | None:
    """Which columns' types differ between a lake's parts, from Spark's CANNOT_MERGE_SCHEMAS
    (None for any other error). A data engineer's review: the CLI said "An error occurred while
    calling o35.parquet", naming neither the source nor the column."""
    text = str(error)
    if "CANNOT_MERGE_SCHEMAS" not in text:
        return None
    schemas = [dict(_FIELD.findall(found)) for found in _STRUCT.findall(text)[:2]]
    if len(schemas) == 2:
        first, other = schemas
        clashes = [f"{name} is {first[name]} in some, {other[name]} in others" for name in first
                   if name in other and first[name] != other[name]]  # fmt: skip
        if clashes:
            return f"parts whose column types differ ({'; '.join(clashes)}); write them alike"
    return "parts whose column types differ (Spark's CANNOT_MERGE_SCHEMAS); write them alike"


def _events_frame(
    spark: SparkSession, stream: Stream, source: EventSource, *, counted: bool = False
) -> DataFrame:
    """A source's events in the canonical columns and types, valid rows once each; ``counted``:
    every row, with the reason it breaks the contract (``REASON_COLUMN``, NULL when valid)."""
    from pyspark.sql import functions

    if isinstance(source, str) and not _looks_like_path(source):
        frame = _named(source, lambda: spark.table(source))
    elif paths := ([source] if isinstance(source, str) else list(source)):
        # merged schemas: parts written before a column joined the contract lack it, and
        # Spark would otherwise take the schema of whichever part it reads first
        frame = _named(source, lambda: spark.read.option("mergeSchema", "true").parquet(*paths))
    else:
        schema = ", ".join(
            f"`{c.name}` {_SPARK_TYPES.get(c.sql_type, c.sql_type)}" for c in COLUMNS[stream]
        )
        return spark.createDataFrame([], schema)
    types = dict(frame.dtypes)
    missing = [c.name for c in COLUMNS[stream] if c.required and c.name not in types]
    if missing:  # read as NULL, a usage table as billing gave every customer an MRR of 0
        raise InputFileError(
            f"{_described(source)}: not {stream} events: no column(s) {', '.join(missing)} "
            f"(found: {', '.join(types) or 'none'})"
        )
    if isinstance(source, StoreParts):
        return frame.select(*(_canonical(column, types) for column in COLUMNS[stream]))
    values = contract_value_sql(stream, types)
    canonical = [
        functions.expr(values[column.name])
        .cast(_SPARK_TYPES.get(column.sql_type, column.sql_type))
        .alias(column.name)
        if column.name in values
        else _canonical(column, types)
        for column in COLUMNS[stream]
    ]
    # A lake's rows are held to the contract as ingestion holds a file's: a row that breaks it
    # is left out (``examine_events_spark`` counts them by reason), and a repeated event id
    # counts once. Read as they were, re-sent events counted twice and a NULL customer id made
    # a customer of its own (a data engineer's walkthrough).
    reason = functions.expr(contract_reason_sql(stream, types)).alias(REASON_COLUMN)
    checked = frame.select(*canonical, reason)
    if counted:
        return checked
    valid = checked.filter(functions.col(REASON_COLUMN).isNull()).drop(REASON_COLUMN)
    # One row per event id: the least by content, so copies that differ give the same row on
    # every run (``dropDuplicates`` kept whichever copy a task met first). Ingestion keeps the
    # first copy it stored; a lake has no such order.
    others = [c.name for c in COLUMNS[stream] if c.name != "event_id"]
    least = valid.groupBy("event_id").agg(functions.min(functions.struct(*others)).alias("__least"))
    return least.select("event_id", *(f"__least.{name}" for name in others)).select(
        *(c.name for c in COLUMNS[stream])
    )


def _described(source: EventSource) -> str:
    """A source as a message names it: a table, a path, or the first of many parts."""
    if isinstance(source, str):
        return source
    parts = list(source)
    return parts[0] if len(parts) == 1 else f"{parts[0]} (and {len(parts) - 1:,} more parts)"


def _looks_like_path(source: str) -> bool:
    return "/" in source or "\\" in source or source.endswith(".parquet")


def register_event_views(spark: SparkSession, sources: Mapping[Stream, EventSource]) -> None:
    """Expose each stream as the temporary view the feature SQL reads (empty when not given)."""
    for stream in STREAMS:
        frame = _events_frame(spark, stream, sources.get(stream, ()))
        frame.createOrReplaceTempView(EVENT_VIEWS[stream])


def build_features_spark(
    spark: SparkSession,
    sources: Mapping[Stream, EventSource],
    as_of: datetime,
    levels: LevelsChoice = ESTIMATE,
) -> DataFrame:
    """Every customer's feature vector as of ``as_of``, as a Spark DataFrame (lazy but for the
    price levels, which customers paying in several currencies need measured first).

    ``sources`` maps ``billing`` and ``usage`` to a table name or Parquet paths holding canonical
    columns (``docs/contracts/events.md``); a stream left out counts as no events. Money is in one
    currency as ``build_features`` makes it (``feature_store.currency``): by the levels the table
    shows, or by ``levels`` (None: each customer's own currency).
    """
    register_event_views(spark, sources)
    table = spark.sql(spark_feature_sql(as_of))
    if levels == ESTIMATE:
        levels = _spark_levels(spark, table, as_of)
    return _in_reporting_currency(table, levels).select("customer_id", *FEATURE_NAMES)


REASON_COLUMN = "__reason"


@dataclass(frozen=True)
class EventsExamined:
    """What a Spark build reads from its sources: the valid events' first and last instants
    (None without any), the rows left out by the reason they break the contract, and the rows
    left out for repeating an event id already read."""

    coverage: EventCoverage | None
    left_out: dict[str, int]
    repeated: int


def examine_events_spark(
    spark: SparkSession, sources: Mapping[Stream, EventSource]
) -> EventsExamined:
    """One pass over each source before a build: the range of their valid events, so a Spark
    build refuses the as-ofs a local one refuses, and what is left out, so nothing is lost
    without a count. The store's own parts are counted valid (checked when ingested)."""
    from pyspark.sql import functions

    # the range up to now, and the events after it apart, as ``coverage.event_coverage`` reads
    # the store (one event dated 9999 stretched a lake's range, and let an as-of through)
    now = functions.expr(f"TIMESTAMP_NTZ '{now_utc().isoformat(sep=' ')}'")
    at = functions.col("occurred_at")
    span = [
        functions.min(at).alias("first"),
        functions.max(at).alias("last"),
        functions.max(functions.when(at <= now, at)).alias("last_by_now"),
        functions.count(functions.when(at > now, 1)).alias("after_now"),
    ]
    spans = []
    left_out: dict[str, int] = {}
    repeated = 0
    for stream in STREAMS:
        source = sources.get(stream, ())
        frame = _events_frame(spark, stream, source, counted=True)
        if REASON_COLUMN not in frame.columns:  # the store's parts (checked), or no source
            spans.append(frame.select(*span).first())
            continue
        # one pass: per reason (NULL: valid) its rows; for the valid ones their span and ids
        groups = frame.groupBy(REASON_COLUMN).agg(
            functions.count(functions.lit(1)).alias("rows"),
            *span,
            functions.count_distinct("event_id").alias("ids"),
        )
        for group in groups.collect():
            reason = group[REASON_COLUMN]
            if reason is not None:
                left_out[reason] = left_out.get(reason, 0) + group["rows"]
                continue
            repeated += group["rows"] - group["ids"]
            spans.append(group)
    found = [row for row in spans if row["first"] is not None]
    coverage = (
        EventCoverage.of(
            min(row["first"] for row in found),
            max(row["last"] for row in found),
            max((r["last_by_now"] for r in found if r["last_by_now"] is not None), default=None),
            sum(row["after_now"] for row in found),
        )
        if found
        else None
    )
    return EventsExamined(coverage, dict(sorted(left_out.items())), repeated)


def price_levels_spark(
    spark: SparkSession, sources: Mapping[Stream, EventSource], as_of: datetime
) -> CurrencyLevels | None:
    """The price levels ``build_features_spark`` measures for these events as of ``as_of``
    (None with one currency): to pass to it and to ``pipelines.spark_jobs.stratified_sample``,
    so that a model trained on the sample records the levels its money was converted by."""
    register_event_views(spark, sources)
    return _spark_levels(spark, spark.sql(spark_feature_sql(as_of)), as_of)


def billing_currencies_spark(
    spark: SparkSession, sources: Mapping[Stream, EventSource], as_of: datetime
) -> list[str]:
    """The currencies the billing events before ``as_of`` are in, sorted: to pass to
    ``pipelines.spark_jobs.stratified_sample`` so that a model trained on the sample can say
    what its money is in (``feature_store.currency.single_currency``), as a DuckDB-built table's
    does."""
    register_event_views(spark, sources)
    return _billing_currencies(spark, as_of)


def _billing_currencies(spark: SparkSession, as_of: datetime) -> list[str]:
    rows = spark.sql(
        f"SELECT DISTINCT currency FROM {EVENT_VIEWS['billing']} "
        f"WHERE occurred_at < TIMESTAMP_NTZ '{as_of.isoformat(sep=' ')}' AND currency IS NOT NULL"
    ).collect()
    return sorted(str(row[0]) for row in rows)


def mixed_currencies_spark(
    spark: SparkSession, sources: Mapping[Stream, EventSource], as_of: datetime
) -> MixedCurrencies | None:
    """``feature_store.coverage.mixed_currency_note``'s count on Spark: the customers whose
    billing events before ``as_of`` name more than one currency (None when none do)."""
    register_event_views(spark, sources)
    count, example, currencies = spark.sql(
        f"""SELECT count(*), min(customer_id), min_by(names, customer_id)
            FROM (
                SELECT customer_id, array_sort(collect_set(currency)) AS names
                FROM {EVENT_VIEWS["billing"]}
                WHERE occurred_at < TIMESTAMP_NTZ '{as_of.isoformat(sep=" ")}'
                      AND currency IS NOT NULL
                GROUP BY customer_id
                HAVING count(DISTINCT currency) > 1
            )"""
    ).first()
    return MixedCurrencies(count, example, tuple(currencies)) if count else None


def _spark_levels(spark: SparkSession, table: DataFrame, as_of: datetime) -> CurrencyLevels | None:
    """``feature_store.currency.estimate_levels`` on Spark; one currency (the usual case) is
    told from the billing events alone, without computing the table."""
    if len(_billing_currencies(spark, as_of)) < 2:
        return None
    from pyspark.sql import functions

    # one pass over the table: customers, and the paying ones' median price per seat
    paying = functions.expr(PAYING_SQL)
    rows = (
        table.where(f"{CURRENCY_COLUMN} IS NOT NULL")
        .groupBy(CURRENCY_COLUMN)
        .agg(
            functions.count("*"),
            functions.median(functions.when(paying, functions.col("mrr_per_seat"))),
            functions.count(functions.when(paying, 1)),
        )
        .collect()
    )
    customers = {row[0]: int(row[1]) for row in rows}
    priced = {row[0]: (float(row[2]), int(row[3])) for row in rows if row[3]}
    return levels_from_prices(customers, priced)


def _in_reporting_currency(table: DataFrame, levels: CurrencyLevels | None) -> DataFrame:
    if levels is None or not levels.converts:
        return table
    from pyspark.sql import functions

    by_currency = functions.create_map(
        *(
            part
            for c, level in levels.levels.items()
            for part in (functions.lit(c), functions.lit(level))
        )
    )
    divisor = functions.coalesce(by_currency[functions.col(CURRENCY_COLUMN)], functions.lit(1.0))
    return table.withColumns({name: functions.col(name) / divisor for name in MONEY_FEATURES})


__all__ = [
    "EventSource",
    "billing_currencies_spark",
    "build_features_spark",
    "register_event_views",
    "spark_feature_sql",
    "spark_session",
    "store_event_sources",
]
