"""``assign``: a segment for every customer of a feature table (or of raw events as of a date)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from feature_store.errors import SegmentsError
from pipelines.cli.common import console, layout, quiet_mlflow

app = typer.Typer()


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
        str | None, typer.Option("--as-of", help="With events: the as-of instant.")
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
) -> None:
    """Assign customers to segments with the champion (or a given version)."""
    quiet_mlflow()
    from feature_store import formats
    from feature_store.formats import FileFormat
    from feature_store.timeutil import parse_as_of
    from models.assignment import ModelRef
    from pipelines import tracking
    from pipelines.assign import (
        assign_table,
        features_from_events,
        read_feature_table,
        write_explained_assignments,
    )

    events = {s: p for s, p in (("billing", billing), ("usage", usage)) if p}
    if (input_path is None) == (not events):
        raise SegmentsError("give either --in FEATURES or --billing/--usage events with --as-of")
    if events and as_of is None:
        raise SegmentsError("--as-of is required when assigning from events")
    if explain and formats.file_format(out) is not FileFormat.JSONL:
        raise SegmentsError(
            f"--explain writes JSON Lines: give an --out ending in .jsonl, not {out}"
        )
    features = (
        read_feature_table(input_path)
        if input_path
        else features_from_events(events, parse_as_of(as_of or ""))
    )
    client = tracking.connect(tracking.TrackingConfig.from_environment(layout()))
    version = tracking.resolve_version(client, model_version)
    model = tracking.load_version(client, version)
    if explain:
        if model.explainer is None:
            raise SegmentsError(
                f"model version {version} has no explainer; retrain with `segments train`"
            )
        ref = ModelRef(name=tracking.MODEL_NAME, version=version)
        written = write_explained_assignments(model, features, ref, top_k, out)
    else:
        table = assign_table(model, features)
        formats.write_table(table, out)
        written = len(table)
    console.print(f"Assigned {written:,} customers with model version {version} -> {out}")
