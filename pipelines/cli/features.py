"""``features``: every customer's feature vector as of an instant, to a file and the online store."""

from __future__ import annotations

import warnings
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from feature_store.errors import SegmentsError
from pipelines.cli.common import (
    AsOfOption,
    JsonFlag,
    console,
    layout,
    print_json,
    print_lines,
    print_note,
    require_spark_extra,
    spark_errors_in_one_line,
)

app = typer.Typer()


class Engine(StrEnum):
    duckdb = "duckdb"
    spark = "spark"


EngineOption = Annotated[
    Engine,
    typer.Option(help="duckdb on this machine (default), or spark for a lake (docs/scale-out.md)."),
]
MasterOption = Annotated[
    str | None,
    typer.Option(help="Spark master or Spark Connect URL (default local[*]); with --engine spark."),
]


@app.command()
def features(
    as_of: AsOfOption,
    out: Annotated[Path, typer.Option(help="Output table (.parquet/.csv/.jsonl, .gz).")],
    engine: EngineOption = Engine.duckdb,
    master: MasterOption = None,
    billing_source: Annotated[
        str | None,
        typer.Option(
            help="With --engine spark: a table or Parquet path (default: the local store)."
        ),
    ] = None,
    usage_source: Annotated[
        str | None, typer.Option(help="With --engine spark: a table or Parquet path.")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Compute every customer's feature vector as of a date; update the online store."""
    if engine is Engine.spark:
        _features_on_spark(as_of, out, master, billing_source, usage_source, as_json)
        return
    if master or billing_source or usage_source:
        raise SegmentsError("--master, --billing-source and --usage-source go with --engine spark")
    from feature_store import formats
    from feature_store.coverage import (
        check_features_as_of,
        id_mismatch_note,
        mixed_currency_note,
        same_instant_note,
    )
    from feature_store.timeutil import parse_as_of
    from pipelines.feature_pipeline import build_features, materialize, stamped

    store = layout()
    instant = parse_as_of(as_of)
    formats.file_format(out)  # refuse a bad --out before the work, not after
    check_features_as_of(store, instant)  # a mistyped year would stick in the online store
    with console.status(f"Computing features as of {instant.isoformat()}Z..."):
        table = build_features(store, instant)
        # The file says the instant it was computed as of: `segments assign` carries it into
        # every assignment (features_as_of), as the API does.
        formats.write_table(stamped(table, instant), out)
        run = materialize(store, table, instant)
    summary = {
        "as_of": instant.isoformat() + "Z",
        "customers": run.customers,
        "features": len(table.columns) - 1,
        "out": str(out),
        "snapshot": str(run.snapshot_path),
        "online_store_written": run.online_written,
    }
    if as_json:
        print_json(summary)
    else:
        print_lines(summary)
    print_note(id_mismatch_note(store, instant))
    print_note(mixed_currency_note(store, instant))
    print_note(same_instant_note(store, instant))
    # money converted to one currency is said where it happens, as `train` says it: a new user
    # found 10 customers' MRR raised by 14% only through `segments currency show`
    from feature_store.currency import read_levels

    levels = read_levels(store)
    if levels is not None and len(levels.levels) > 1:
        print_note(levels.describe() + "; `segments currency show` has them")


def _features_on_spark(
    as_of: str,
    out: Path,
    master: str | None,
    billing_source: str | None,
    usage_source: str | None,
    as_json: bool,
) -> None:
    """The same feature SQL on Spark, written as a Parquet folder (no online store: a lake's
    vectors are served from wherever the lake publishes them)."""
    if out.suffix.lower() != ".parquet":
        raise SegmentsError(
            f"--engine spark writes a Parquet folder: give an --out ending in .parquet, not {out}"
        )
    require_spark_extra()
    from feature_store.coverage import check_as_of_covered
    from feature_store.currency import extended, read_levels
    from feature_store.offline_store import OfflineStore
    from feature_store.spark_engine import (
        examine_events_spark,
        job_session,
        mixed_currencies_spark,
        price_levels_spark,
        store_event_sources,
    )
    from feature_store.timeutil import parse_as_of
    from pipelines.spark_jobs import features_to_parquet, refuse_overwriting_inputs, source_paths

    # PySpark 4.3 warns on pandas 3; the parity tests are what we rely on (docs/scale-out.md).
    warnings.filterwarnings("ignore", "PySpark does not yet fully support pandas", FutureWarning)
    instant = parse_as_of(as_of)
    sources = store_event_sources(OfflineStore(layout()))
    for stream, given in (("billing", billing_source), ("usage", usage_source)):
        if given:
            sources[stream] = given  # type: ignore[index]
    refuse_overwriting_inputs(str(out), source_paths(sources))  # before any job runs
    with (
        spark_errors_in_one_line(),
        job_session(master, quiet=True) as spark,
        console.status(f"Computing features on Spark as of {instant.isoformat()}Z..."),
    ):
        # the as-ofs the DuckDB engine refuses (before the first event, well after the last,
        # in the future), judged on the events Spark reads
        examined = examine_events_spark(spark, sources)
        coverage = examined.coverage
        if coverage is None:
            left = f"; every row was left out: {examined.left_out}" if examined.left_out else ""
            raise SegmentsError(
                "no events in the sources (the data home's store, or --billing-source and "
                f"--usage-source); ingest events first or name a lake's tables{left}"
            )
        check_as_of_covered(coverage, instant)
        # the data home's kept price levels extended by what Spark measures, as the DuckDB
        # engine extends them (a currency the kept ones lack; all of them in a store never built
        # by DuckDB); read-only here: the lake may not be the data home's events
        levels = extended(read_levels(layout()), price_levels_spark(spark, sources, instant))
        customers = features_to_parquet(spark, sources, instant, out, levels)
        mixed = mixed_currencies_spark(spark, sources, instant)  # as the DuckDB engine warns
    summary = {
        "as_of": instant.isoformat() + "Z",
        "customers": customers,
        "engine": "spark",
        "out": str(out),
        # rows of a lake left out, as `segments ingest` quarantines and dedupes a file's
        "left_out": examined.left_out,
        "repeated_event_ids": examined.repeated,
    }
    if as_json:
        print_json(summary)
    else:
        print_lines(summary)
    print_note(None if mixed is None else mixed.describe())
