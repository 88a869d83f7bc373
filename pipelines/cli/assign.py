"""``assign``: a segment for every customer of a feature table (or of raw events as of a date)."""

from __future__ import annotations

import warnings
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from feature_store import formats
from feature_store.errors import SegmentsError
from feature_store.formats import FileFormat
from feature_store.schema import Stream
from pipelines.cli.common import (
    console,
    layout,
    print_note,
    quiet_mlflow,
    registry,
    require_spark_extra,
    spark_errors_in_one_line,
)
from pipelines.cli.features import Engine, EngineOption, MasterOption

if TYPE_CHECKING:  # imported where used: `segments --help` should not load pandas or MLflow
    import pandas as pd

    from models.assignment import ModelRef
    from models.bundle import ExplanationView, SegmentModel

app = typer.Typer()


class ExplainView(StrEnum):
    """Which question an explanation answers (``models.bundle.ExplanationView``)."""

    contrast = "contrast"
    segment = "segment"


@app.command()
def assign(
    input_path: Annotated[
        Path | None, typer.Option("--in", help="Feature table (.parquet/.csv/.jsonl, .gz).")
    ] = None,
    out: Annotated[Path, typer.Option(help="Output (.parquet/.csv/.jsonl, .gz).")] = Path(
        "assignments.csv"
    ),
    model_version: Annotated[
        str | None, typer.Option(help="Registered version; default: champion.")
    ] = None,
    billing: Annotated[Path | None, typer.Option(help="Billing events instead of --in.")] = None,
    usage: Annotated[Path | None, typer.Option(help="Usage events instead of --in.")] = None,
    as_of: Annotated[
        str | None,
        typer.Option(
            "--as-of",
            help="With events: the as-of instant. With --in: the instant the table was computed "
            "as of (a table from `segments features` says so itself, in features_as_of).",
        ),
    ] = None,
    explain: Annotated[
        bool,
        typer.Option(
            "--explain", help="Write one explained assignment object per customer (.jsonl)."
        ),
    ] = False,
    top_k: Annotated[
        int, typer.Option("--top-k", min=1, max=100, help="Features per explanation.")
    ] = 5,
    explain_view: Annotated[
        ExplainView,
        typer.Option(
            "--explain-view",
            help="With --explain: contrast (why this segment rather than the runner-up) or "
            "segment (the segment's own log-odds).",
        ),
    ] = ExplainView.contrast,
    engine: EngineOption = Engine.duckdb,
    master: MasterOption = None,
) -> None:
    """Assign customers to segments with the champion (or a given version)."""
    view: ExplanationView = "segment" if explain_view is ExplainView.segment else "contrast"
    if engine is Engine.spark:
        # dropped without a word before (a data engineer's review): the run wrote the table's own
        # as-of beside --as-of 2025-01-01, and never read --billing
        given = [name for name, value in (("--billing", billing), ("--usage", usage)) if value]
        if given:
            raise SegmentsError(
                f"--engine spark assigns a feature table (--in), not events: leave out "
                f"{' and '.join(given)}, or build the table with `segments features --engine "
                "spark --billing-source ... --usage-source ...` first"
            )
        if as_of is not None:
            raise SegmentsError(
                "--engine spark dates its output by the table's own features_as_of column "
                "(written by `segments features`) and cannot check or set another: leave out "
                "--as-of (a table without that column is assigned with no date on Spark)"
            )
        _assign_on_spark(input_path, out, model_version, explain, top_k, view, master)
        return
    events: dict[Stream, Path] = {s: p for s, p in (("billing", billing), ("usage", usage)) if p}
    _check_request(input_path, events, as_of, out, explain)
    features = _read_features(input_path, events, as_of)  # before MLflow loads: fail fast
    quiet_mlflow()
    from models.assignment import ModelRef

    models = registry()
    version = models.resolve_version(model_version)
    model = models.load_version(version)
    if events:
        features = _converted(features, model, as_of)
    written = (
        _write_explained(
            model, ModelRef(name=models.model_name, version=version), features, top_k, view, out
        )
        if explain
        else _write_assigned(model, features, out)
    )
    console.print(f"Assigned {written:,} customers with model version {version} -> {out}")


def _check_request(
    input_path: Path | None, events: dict[Stream, Path], as_of: str | None, out: Path, explain: bool
) -> None:
    """Refuse a contradictory command line before any file is read or model loaded."""
    if (input_path is None) == (not events):
        raise SegmentsError("give either --in FEATURES or --billing/--usage events with --as-of")
    if events and as_of is None:
        raise SegmentsError("--as-of is required when assigning from events")
    if formats.file_format(out) is not FileFormat.JSONL and explain:
        raise SegmentsError(
            f"--explain writes JSON Lines: give an --out ending in .jsonl, not {out}"
        )


def _read_features(
    input_path: Path | None, events: dict[Stream, Path], as_of: str | None
) -> pd.DataFrame:
    """The feature table given, or the events' vectors with money still in each customer's own
    currency (``_converted`` converts them once the model is loaded)."""

    from feature_store.timeutil import parse_as_of
    from pipelines.assign import (
        as_of_values,
        local_features_from_events,
        read_feature_table,
        set_aside_text,
    )
    from pipelines.feature_pipeline import stamped

    if input_path is not None:
        table = read_feature_table(input_path)
        if as_of is None:
            return table
        given = stamped(table, parse_as_of(as_of))
        # the table's stamps are read as the contract writes them (a Parquet timestamp or
        # "+00:00" gives the same stamp as "Z"), so equal instants are equal stamps
        said = {value for value in as_of_values(table) if value is not None}
        if said - set(as_of_values(given)):
            # the table's own date was replaced without a word (a 2026 table written out "as of
            # 1971"); a table that says nothing takes --as-of, as the help says
            raise SegmentsError(
                f"{input_path}: its features say they are as of {', '.join(sorted(said)[:3])}; "
                f"--as-of {as_of} differs: leave --as-of out for a table that says its date"
            )
        return given
    local, reports = local_features_from_events(events, parse_as_of(as_of or ""))
    for report in reports.values():
        print_note(set_aside_text(report))
    return local


def _converted(local: pd.DataFrame, model: SegmentModel, as_of: str | None) -> pd.DataFrame:
    """Vectors computed from events, money converted as the service converts them: by the
    model's price levels extended by any the data home has kept since, so a file scored against
    a registry shared from another home, or after the levels file was deleted, reads as the
    model was trained."""
    from feature_store.currency import extended, read_levels
    from feature_store.timeutil import parse_as_of
    from pipelines.assign import converted_events_features

    levels = extended(model.currency, read_levels(layout()))
    return converted_events_features(local, levels, parse_as_of(as_of or ""))


def _write_assigned(model: SegmentModel, features: pd.DataFrame, out: Path) -> int:
    from pipelines.assign import assign_table

    table = assign_table(model, features)
    formats.write_table(table, out)
    return len(table)


def _write_explained(
    model: SegmentModel,
    ref: ModelRef,
    features: pd.DataFrame,
    top_k: int,
    view: ExplanationView,
    out: Path,
) -> int:
    from pipelines.assign import write_explained_assignments

    if model.explainer is None:
        raise SegmentsError(
            f"model version {ref.version} has no explainer; retrain with `segments train`"
        )
    return write_explained_assignments(model, features, ref, top_k, out, view)


def _assign_on_spark(
    input_path: Path | None,
    out: Path,
    model_version: str | None,
    explain: bool,
    top_k: int,
    view: ExplanationView,
    master: str | None,
) -> None:
    """Every row of a Parquet feature table assigned inside Spark (``mapInPandas``), written as
    a Parquet folder (or JSON Lines parts of explained assignments with ``--explain``)."""
    if input_path is None:
        raise SegmentsError("--engine spark assigns a feature table: give --in FEATURES.parquet")
    wanted = ".jsonl" if explain else ".parquet"
    if out.suffix.lower() != wanted:
        raise SegmentsError(
            f"--engine spark writes a {wanted} folder here: give an --out ending in {wanted}"
        )
    require_spark_extra()
    quiet_mlflow()
    from feature_store.spark_engine import job_session
    from models.assignment import ModelRef
    from pipelines.spark_jobs import assign_spark, refuse_overwriting_inputs, write_spark_table

    refuse_overwriting_inputs(str(out), [input_path])  # before the model loads or a job runs

    # PySpark 4.3 warns on pandas 3; the parity tests are what we rely on (docs/scale-out.md).
    warnings.filterwarnings("ignore", "PySpark does not yet fully support pandas", FutureWarning)
    models = registry()
    version = models.resolve_version(model_version)
    model = models.load_version(version)
    ref = ModelRef(name=models.model_name, version=version)
    with spark_errors_in_one_line(), job_session(master, quiet=True) as spark:
        features = spark.read.parquet(str(input_path))
        assigned = assign_spark(
            model, features, explain_top_k=top_k if explain else None, model_ref=ref, view=view
        )
        write_spark_table(assigned, out, inputs=[input_path])
    console.print(f"Assigned {input_path} on Spark with model version {version} -> {out}")
