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
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import sqlglot
from sqlglot import exp

from feature_store.currency import (
    CURRENCY_COLUMN,
    ESTIMATE,
    MONEY_FEATURES,
    PAYING_SQL,
    CurrencyLevels,
    LevelsChoice,
    levels_from_prices,
)
from feature_store.errors import InputFileError
from feature_store.features import feature_sql
from feature_store.offline_store import EVENT_VIEWS, OfflineStore
from feature_store.registry import FEATURE_NAMES
from feature_store.schema import COLUMNS, STREAMS, Column, Stream

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


def _rewrite(node: exp.Expression) -> exp.Expression:
    if isinstance(node, exp.ArgMax | exp.ArgMin):
        return _arg_extreme(node)
    rewrite = _ANONYMOUS_REWRITES.get(_name(node))
    return rewrite(node) if rewrite else node  # type: ignore[arg-type]


# DuckDB functions sqlglot leaves as they are, with their Spark meaning. What needs no entry here,
# because sqlglot already writes the Spark form with the same meaning: FILTER (WHERE ...) clauses,
# ``ts - INTERVAL n DAY`` (zone-less timestamps: no daylight-saving shift), integer ``//`` -> ``DIV``
# (both truncate towards zero), ``bool_or``, ``lag`` with a default, ``NULLS LAST`` made explicit.
_ANONYMOUS_REWRITES: dict[str, Callable[[exp.Anonymous], exp.Expression]] = {
    "EPOCH_US": _epoch_us,
    "ARG_MAX_NULL": _arg_max_null,
}


def spark_feature_sql(as_of: datetime) -> str:
    """The feature SQL of ``feature_sql(as_of)`` as Spark SQL over the same ``EVENT_VIEWS``."""
    tree = sqlglot.parse_one(feature_sql(as_of), read="duckdb").transform(_rewrite)
    # Quoted identifiers: ``interval`` and ``usage`` are keywords to Spark, columns and CTEs to us.
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
    builder = SparkSession.builder.appName("customer-segments")
    if master.startswith("sc://"):
        builder = builder.remote(master)
    else:
        builder = builder.master(master)
        builder = builder.config("spark.sql.execution.arrow.pyspark.enabled", "true")
    builder = builder.config("spark.sql.session.timeZone", "UTC")
    for key, value in (config or {}).items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    if master.startswith("local"):
        # Without PYSPARK_PYTHON, workers run whatever ``python3`` is first on PATH, which may not
        # see this virtualenv. Set on this session's context only; cluster executors keep theirs.
        session.sparkContext.pythonExec = sys.executable
    return session


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
    session = spark_session(master, config=config)
    try:
        yield session
    finally:
        session.stop()


def store_event_sources(store: OfflineStore) -> dict[Stream, list[str]]:
    """The Parquet parts of the local offline store, as Spark sources."""
    return {stream: [str(part) for part in store.parts(stream)] for stream in STREAMS}


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
    return functions.col(column.name).cast(spark_type).alias(column.name)


def _events_frame(spark: SparkSession, stream: Stream, source: EventSource) -> DataFrame:
    if isinstance(source, str) and not _looks_like_path(source):
        frame = spark.table(source)
    elif paths := ([source] if isinstance(source, str) else list(source)):
        # merged schemas: parts written before a column joined the contract lack it, and
        # Spark would otherwise take the schema of whichever part it reads first
        frame = spark.read.option("mergeSchema", "true").parquet(*paths)
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
    return frame.select(*(_canonical(column, types) for column in COLUMNS[stream]))


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
