"""Spark jobs: the feature table, a stratified training sample, and batch assignment on a cluster.

Batch assignment applies the champion to every customer with ``mapInPandas``. Each Arrow batch of the feature table goes through ``pipelines.assign.assign_table`` (or, when
explanations are asked for, ``SegmentModel.assignments``) on an executor: the same code as the
local ``segments assign``, so the two agree row for row. Only the model travels (pickled once
per task with the function); the feature table never leaves the cluster.
"""

from __future__ import annotations

import contextlib
import shutil
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

import pandas as pd

from feature_store.currency import ESTIMATE, CurrencyLevels, LevelsChoice, with_levels
from feature_store.errors import InputFileError
from feature_store.schema import Stream
from feature_store.spark_engine import EventSource, build_features_spark
from models.assignment import ModelRef, as_of_stamp
from models.bundle import ExplanationView, SegmentModel
from models.business import CANCELED
from pipelines.assign import LAST_ACTIVE_COLUMN, as_of_stamps, as_of_values, assign_table
from pipelines.feature_pipeline import AS_OF_COLUMN

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

# Training stays on one machine: it reads a sample drawn within these strata, so that small but
# distinct groups (canceled, annual, free, inactive customers) are never sampled away.
STRATUM_SQL = (
    "concat_ws('/', is_canceled, is_annual, CAST(mrr > 0 AS INT), CAST(active_days_30d > 0 AS INT))"
)
MIN_PER_STRATUM = 200

# Column names and order of the local ``assign_table`` output; types as pandas writes them.
_PLACEMENT_SCHEMA = (
    "customer_id STRING, segment_id BIGINT, segment_name STRING, is_outlier BOOLEAN, "
    "confidence DOUBLE"
)
_RUNNER_UP_SCHEMA = ", runner_up_id BIGINT, runner_up_name STRING, margin DOUBLE"
_EXPLAINED_SCHEMA = "customer_id STRING, assignment STRING"
BatchFunction = Callable[[Iterator[pd.DataFrame]], Iterator[pd.DataFrame]]
_NUMERIC_TYPES = ("tinyint", "smallint", "int", "bigint", "float", "double", "boolean")


_AS_OF_SCHEMA = f", {AS_OF_COLUMN} STRING"


def assignment_schema(model: SegmentModel, canceled: bool = False) -> str:
    """The Spark schema of ``assign_spark``'s output for ``model`` (runner-up only with 2+;
    ``canceled``: the table has ``is_canceled``, carried last as locally, with the segment a
    cancelled customer was in when last active after it where the model knows)."""
    runner_up = _RUNNER_UP_SCHEMA if len(model.profiles) > 1 else ""
    last = f", {CANCELED} BOOLEAN" if canceled else ""
    if canceled and model.last_active_segment:
        last += f", {LAST_ACTIVE_COLUMN} BIGINT"
    return _PLACEMENT_SCHEMA + runner_up + _AS_OF_SCHEMA + last


def check_spark_features(model: SegmentModel, features: DataFrame) -> None:
    """Refuse, before any job runs, a table that lacks or mistypes a column the model needs."""
    types = dict(features.dtypes)
    if "customer_id" not in types:
        raise InputFileError("the feature table has no customer_id column")
    missing = [name for name in model.feature_names if name not in types]
    if missing:
        raise InputFileError(
            f"the feature table lacks column(s) {', '.join(missing)} that the model needs"
        )
    bad = [n for n in model.feature_names if not types[n].startswith(_NUMERIC_TYPES)]
    if bad:
        raise InputFileError(f"non-numeric values in feature column(s) {', '.join(bad)}")
    _check_customer_ids(features)


def _check_customer_ids(features: DataFrame) -> None:
    """Refuse what ``read_feature_table`` refuses locally: no rows, a row with no customer id,
    a customer on several rows (Spark assigned each, and a NULL id became a customer of its
    own). One pass over the ids, and a second only to name a repeated one."""
    from pyspark.sql import functions

    ids = functions.col("customer_id").cast("string")
    rows, missing, distinct = features.select(
        functions.count(functions.lit(1)),
        functions.count_if(ids.isNull() | (functions.trim(ids) == "")),
        functions.count_distinct(ids),
    ).first()
    if rows == 0:
        raise InputFileError("the feature table has no rows")
    if missing:
        raise InputFileError(f"{missing:,} row(s) of the feature table have no customer_id")
    if distinct < rows:
        repeated = features.groupBy(ids.alias("id")).count().filter("count > 1").first()
        raise InputFileError(
            f"customer {repeated['id']!r} has {repeated['count']} rows in the feature table; "
            "one per customer"
        )


# A table is computed as of one instant (``segments features`` stamps one); a few more, merged
# tables. Beyond this many its as-of column is not a date.
MAX_AS_OF_VALUES = 1000


def _check_as_of_values(features: DataFrame) -> None:
    """Refuse, before any job, a table whose as-of column holds something other than instants:
    each batch writes them as the contract does (``as_of_stamps``), which would fail inside the
    job instead. Its distinct values are few, so they are checked on the driver."""
    said = features.select(AS_OF_COLUMN).distinct().limit(MAX_AS_OF_VALUES + 1).collect()
    if len(said) > MAX_AS_OF_VALUES:
        raise InputFileError(
            f"the feature table's {AS_OF_COLUMN} holds more than {MAX_AS_OF_VALUES:,} different "
            "values; a table is computed as of one instant"
        )
    as_of_stamps([row[0] for row in said], "the feature table", rows=False)


def _placements(model: SegmentModel) -> BatchFunction:
    def place(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for batch in batches:
            yield assign_table(model, batch.reset_index(drop=True))

    return place


def _explained(
    model: SegmentModel, model_ref: ModelRef, top_k: int, view: ExplanationView
) -> BatchFunction:
    def explain(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for batch in batches:
            ids = batch["customer_id"].astype(str).tolist()
            objects = model.assignments(batch, ids, model_ref, top_k=top_k, view=view)
            dated = [
                a.model_copy(update={"features_as_of": as_of})
                for a, as_of in zip(objects, as_of_values(batch), strict=True)
            ]
            yield pd.DataFrame(
                {"customer_id": ids, "assignment": [a.model_dump_json() for a in dated]}
            )

    return explain


def assign_spark(
    model: SegmentModel,
    features: DataFrame,
    *,
    explain_top_k: int | None = None,
    model_ref: ModelRef | None = None,
    view: ExplanationView = "contrast",
) -> DataFrame:
    """Every row of ``features`` assigned by ``model``, as a lazy Spark DataFrame.

    Without ``explain_top_k``: the columns of the local ``segments assign`` table. With it: the
    customer id and the assignment object of ``docs/contracts/api.md`` as JSON (needs
    ``model_ref`` and a model with an explainer).
    """
    check_spark_features(model, features)
    # The table's as-of travels with each row when it says one (``segments features`` writes it).
    dated = [AS_OF_COLUMN] if AS_OF_COLUMN in features.columns else []
    if dated:
        _check_as_of_values(features)
    canceled = CANCELED in features.columns
    extra = [CANCELED] if canceled and CANCELED not in model.feature_names else []
    rows = features.select("customer_id", *model.feature_names, *extra, *dated)
    if explain_top_k is None:
        return rows.mapInPandas(_placements(model), assignment_schema(model, canceled))
    if model.explainer is None or model_ref is None:
        raise InputFileError("explained assignments need a model with an explainer and its ref")
    return rows.mapInPandas(_explained(model, model_ref, explain_top_k, view), _EXPLAINED_SCHEMA)


def write_spark_table(frame: DataFrame, out: str | Path, inputs: Sequence[str | Path] = ()) -> None:
    """Write a Spark result where Spark writes: a directory of parts, Parquet unless ``.jsonl``.

    An ``.jsonl`` directory holds the ``assignment`` column as JSON Lines text parts. ``inputs``:
    the paths the result is computed from; an output that is one of them, or holds or is held by
    one, is refused. Spark's overwrite deletes the folder before its lazy job reads the inputs, so
    `--in` = `--out` lost the input, and a billing source given as `--out` was replaced by the
    features. Where Spark writes to the driver's own disk (``_writes_on_this_machine``) the result
    is written beside the output and moved into place once complete: a job that fails leaves the
    previous result as it was (Spark's overwrite had emptied it first). On a cluster's file system
    (``s3://``, ``hdfs://``, a bare path on YARN or Databricks) Spark overwrites.
    """
    target = str(out)
    suffix = target.lower().rstrip("/")
    if not suffix.endswith((".jsonl", ".parquet")):
        raise InputFileError(f"{out}: Spark output must end in .parquet or .jsonl")
    as_text = suffix.endswith(".jsonl")
    refuse_overwriting_inputs(target, inputs)
    local = _local_path(target) if _writes_on_this_machine(frame, target) else None
    if local is None:
        _write_parts(frame, target, as_text)
        return
    staging = local.with_name(f".{local.name}.writing-{uuid.uuid4().hex[:8]}")
    try:
        _write_parts(frame, staging.as_uri(), as_text)
        if not local.exists():
            staging.rename(local)
            return
        replaced = local.with_name(f".{local.name}.replaced-{uuid.uuid4().hex[:8]}")
        local.rename(replaced)
        try:
            staging.rename(local)
        except OSError:
            replaced.rename(local)  # the previous result back where it was
            raise
        _remove(replaced)
    finally:
        if staging.exists():
            _remove(staging)


def _writes_on_this_machine(frame: DataFrame, target: str) -> bool:
    """Whether Spark writes ``target`` to this machine's disk, where the driver can move it: a
    ``file:`` address, or a bare path on a local master whose default file system is the local
    one. Elsewhere (YARN's HDFS, Databricks' DBFS, a Spark Connect server's disk) a bare path is
    the cluster's, and Spark's own overwrite is kept."""
    if target.startswith("file:"):
        return True
    if "://" in target:
        return False
    try:
        context = frame.sparkSession.sparkContext  # Spark Connect has none: the server writes
        default = context._jsc.hadoopConfiguration().get("fs.defaultFS") or "file:///"
        return context.master.startswith("local") and default.startswith("file:")
    except Exception:
        return False


def _write_parts(frame: DataFrame, target: str, as_text: bool) -> None:
    if as_text:
        frame.select("assignment").write.mode("overwrite").text(target)
    else:
        frame.write.mode("overwrite").parquet(target)


def _local_path(target: str) -> Path | None:
    """``target`` as a path of this machine's file system; None for another file system's URI."""
    if target.startswith("file:"):
        return Path(target.removeprefix("file://").removeprefix("file:")).absolute()
    return None if "://" in target else Path(target).absolute()


def refuse_overwriting_inputs(target: str, inputs: Sequence[str | Path]) -> None:
    """Refuse an output that is one of ``inputs``, or holds or is held by one (paths of this
    machine, or addresses of another file system compared as written)."""
    output = _comparable(target)
    for given in inputs:
        source = _comparable(str(given))
        if output == source or output in source.parents or source in output.parents:
            raise InputFileError(
                f"{target}: the output would overwrite an input ({given}); write it elsewhere"
            )


def _comparable(address: str) -> PurePosixPath:
    """A path or address in a form two of them compare by: a path of this machine resolved; an
    address of another file system (``s3://bucket/lake``) as written, without its scheme's
    slashes, so that a folder still holds its parts."""
    local = _local_path(address)
    if local is not None:
        return PurePosixPath(local.resolve())
    scheme, rest = address.split("://", 1)
    return PurePosixPath(f"/{scheme}:/{rest.rstrip('/')}")


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def source_paths(sources: Mapping[Stream, EventSource]) -> list[str]:
    """Every path or table name ``sources`` reads, one per entry."""
    return [
        path
        for source in sources.values()
        for path in ([source] if isinstance(source, str) else list(source))
    ]


def features_to_parquet(
    spark: SparkSession,
    sources: Mapping[Stream, EventSource],
    as_of: datetime,
    out: str | Path,
    levels: LevelsChoice = ESTIMATE,
) -> int:
    """``segments features --engine spark``: the feature table written as Parquet, stamped with
    its as-of as the DuckDB command stamps its table (``stamped``); its rows. Money converted by
    ``levels`` (``build_features_spark``)."""
    from pyspark.sql import functions

    table = build_features_spark(spark, sources, as_of, levels)
    stamped = table.withColumn(AS_OF_COLUMN, functions.lit(as_of_stamp(as_of)))
    write_spark_table(stamped, out, inputs=source_paths(sources))
    return spark.read.parquet(str(out)).count()


def stratified_sample(
    features: DataFrame,
    size: int,
    *,
    seed: int = 0,
    levels: CurrencyLevels | None = None,
    currencies: Sequence[str] = (),
) -> pd.DataFrame:
    """About ``size`` customers to train on, drawn within strata (``STRATUM_SQL``).

    Every stratum is kept in proportion, but with at least ``MIN_PER_STRATUM`` customers (all of a
    smaller one). A customer is in or out by a hash of its id and ``seed``, not by partition order:
    the same table and seed give the same sample on any cluster.

    ``levels``: the price levels ``features``' money was converted by (``build_features_spark``'s
    ``levels``), noted on the sample as ``build_features`` notes them, so that a model fitted on
    it records them (``feature_store.currency.levels_of``). A Spark table cannot carry them.
    ``currencies``: the currencies its customers pay in
    (``feature_store.spark_engine.billing_currencies_spark``); with one, the model records it,
    and its pages say what the money is in.
    """
    from pyspark import StorageLevel
    from pyspark.sql import functions

    # Two passes read the table (the strata's sizes, then the draw): kept after the first, so the
    # feature SQL over every event runs once, not twice (one row per customer: small to keep).
    strata = features.withColumn("_stratum", functions.expr(STRATUM_SQL))
    with contextlib.suppress(Exception):  # a platform without the cache: read it twice
        strata = strata.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        counts = {
            row["_stratum"]: row["count"] for row in strata.groupBy("_stratum").count().collect()
        }
        total = sum(counts.values())
        rates = {
            s: min(1.0, max(size / max(total, 1), MIN_PER_STRATUM / n)) for s, n in counts.items()
        }
        rate = functions.create_map(
            *(part for s, r in rates.items() for part in (functions.lit(s), functions.lit(r)))
        )
        hashed = functions.xxhash64("customer_id", functions.lit(seed)).bitwiseAND(2**52 - 1)
        draw = hashed / float(2**52)
        kept = strata.filter(draw < rate[functions.col("_stratum")]).drop("_stratum")
        sample = kept.toPandas().sort_values("customer_id", ignore_index=True)
    finally:
        with contextlib.suppress(Exception):  # a lost session: its own error is the one to see
            strata.unpersist()
    return with_levels(sample, levels, currencies)


__all__ = [
    "assign_spark",
    "assignment_schema",
    "check_spark_features",
    "features_to_parquet",
    "stratified_sample",
    "write_spark_table",
]
