"""The ``segments`` command line: the edge where files are read and written and errors are shown."""

from __future__ import annotations

import contextlib
import json
import sys
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from feature_store.errors import SegmentsError
from feature_store.layout import StoreLayout
from feature_store.schema import STREAMS, Stream

app = typer.Typer(
    help="Discover customer segments from billing and usage events.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
quarantine_app = typer.Typer(
    help="List, inspect and export quarantined rows.", no_args_is_help=True
)
app.add_typer(quarantine_app, name="quarantine")

console = Console(stderr=True)
stdout = Console()

ExistingFile = Annotated[Path, typer.Option(exists=True, dir_okay=False, readable=True)]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON object instead of a table.")]


def _layout() -> StoreLayout:
    return StoreLayout.from_environment()


def _fail(error: SegmentsError) -> typer.Exit:
    console.print(f"[bold red]error:[/] {error}", highlight=False)
    return typer.Exit(code=2)


def _progress() -> Progress:
    """A progress bar on stderr; it disappears when done so stdout stays clean for --json."""
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, default=str))


@app.command("demo-data")
def demo_data(
    out: Annotated[Path, typer.Option(help="Folder to write the events and truth.csv into.")],
    customers: Annotated[int, typer.Option(min=1, help="Number of customer accounts.")] = 3000,
    months: Annotated[int, typer.Option(min=1, max=120, help="Months of history.")] = 12,
    seed: Annotated[int, typer.Option(help="Random seed; same seed, same company.")] = 0,
    end: Annotated[str, typer.Option(help="Last day of history (YYYY-MM-DD).")] = "2026-06-30",
) -> None:
    """Write a sample SaaS company: billing_events.parquet, usage_events.parquet, truth.csv."""
    from pipelines.demo_data import generate_company, write_company

    try:
        end_day = date.fromisoformat(end)
    except ValueError:
        raise _fail(SegmentsError(f"--end {end!r} is not a date like 2026-06-30")) from None
    with console.status(f"Generating {customers:,} customers over {months} months..."):
        company = generate_company(customers, months, seed, end_day)
        paths = write_company(company, out)
    console.print(
        f"Wrote {company.billing.num_rows:,} billing and {company.usage.num_rows:,} usage events "
        f"for {customers:,} customers to {out}"
    )
    for kind, path in paths.items():
        stdout.print(f"{kind}: {path}", highlight=False)


@app.command()
def ingest(
    billing: Annotated[
        Path | None, typer.Option(help="Billing events (.csv/.parquet/.jsonl, .gz).")
    ] = None,
    usage: Annotated[
        Path | None, typer.Option(help="Usage events (.csv/.parquet/.jsonl, .gz).")
    ] = None,
    customers: Annotated[
        Path | None, typer.Option(help="Optional customer attributes table.")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Validate, de-duplicate and store events; bad rows go to quarantine with a reason."""
    from feature_store.ingest import ingest_files

    files: dict[Stream, Path] = {
        stream: path for stream, path in (("billing", billing), ("usage", usage)) if path
    }
    if not files and customers is None:
        raise _fail(SegmentsError("give at least one of --billing FILE or --usage FILE"))
    try:
        with _progress() as progress:
            task = progress.add_task("Ingesting", total=len(files) + (customers is not None))

            def advance(step: str) -> None:
                progress.update(task, description=f"Ingesting {step}")

            reports = ingest_files(_layout(), files, customers=customers, on_step=advance)
            progress.update(task, completed=len(files) + (customers is not None))
    except SegmentsError as error:
        raise _fail(error) from None
    if as_json:
        _print_json({stream: report.as_dict() for stream, report in reports.items()})
        return
    table = Table(
        "stream", "received", "accepted", "duplicates", "quarantined", "quarantine reasons"
    )
    for stream, report in reports.items():
        reasons = "\n".join(f"{reason}: {count:,}" for reason, count in report.reasons.items())
        table.add_row(
            stream,
            f"{report.received:,}",
            f"{report.accepted:,}",
            f"{report.duplicates:,}",
            f"{report.quarantined:,}",
            reasons or "-",
        )
    stdout.print(table)
    for report in reports.values():
        if report.unknown_columns:
            console.print(
                f"{report.stream}: ignored unknown columns {', '.join(report.unknown_columns)}"
            )
        if report.resolved_from_quarantine:
            console.print(
                f"{report.stream}: {report.resolved_from_quarantine} quarantined rows now accepted"
            )
    if any(report.quarantined for report in reports.values()):
        console.print("Inspect rejected rows with `segments quarantine list`.")


@app.command()
def features(
    as_of: Annotated[
        str, typer.Option("--as-of", help="Date (whole day included) or ISO instant.")
    ],
    out: Annotated[Path, typer.Option(help="Output table, .parquet or .csv.")],
    as_json: JsonFlag = False,
) -> None:
    """Compute every customer's feature vector as of a date; update the online store."""
    from feature_store.timeutil import parse_as_of
    from pipelines.feature_pipeline import build_features, materialize, write_table

    layout = _layout()
    try:
        instant = parse_as_of(as_of)
        with console.status(f"Computing features as of {instant.isoformat()}Z..."):
            table = build_features(layout, instant)
            write_table(table, out)
            run = materialize(layout, table, instant)
    except SegmentsError as error:
        raise _fail(error) from None
    summary = {
        "as_of": instant.isoformat() + "Z",
        "customers": run.customers,
        "features": len(table.columns) - 1,
        "out": str(out),
        "snapshot": str(run.snapshot_path),
        "online_store_written": run.online_written,
    }
    if as_json:
        _print_json(summary)
    else:
        for key, value in summary.items():
            stdout.print(f"{key}: {value}", highlight=False)


@quarantine_app.command("list")
def quarantine_list(
    stream: Annotated[str | None, typer.Option(help="billing or usage.")] = None,
    reason: Annotated[str | None, typer.Option(help="Only rows with this reason code.")] = None,
    include_resolved: Annotated[bool, typer.Option("--all", help="Include resolved rows.")] = False,
    limit: Annotated[int, typer.Option(min=1, help="At most this many rows.")] = 50,
    as_json: JsonFlag = False,
) -> None:
    """Summarise the quarantine by reason and list its rows."""
    from feature_store import quarantine
    from feature_store.engine import connect

    if stream is not None and stream not in STREAMS:
        raise _fail(SegmentsError(f"--stream must be one of {', '.join(STREAMS)}"))
    con = connect()
    quarantine.attach_catalog(con, _layout())
    rows = quarantine.list_rows(
        con, stream=stream, reason=reason, include_resolved=include_resolved, limit=limit
    )
    counts = quarantine.summary(con)
    if as_json:
        _print_json(
            {
                "summary": [
                    {"stream": s, "reason": r, "open": o, "resolved": d} for s, r, o, d in counts
                ],
                "rows": [row.as_dict() for row in rows],
            }
        )
        return
    overview = Table("stream", "reason", "open", "resolved", title="Quarantine")
    for s, r, o, d in counts:
        overview.add_row(s, r, f"{o:,}", f"{d:,}")
    stdout.print(overview)
    listing = Table("quarantine_id", "stream", "reason", "file:row", "event_id", "raw")
    for row in rows:
        listing.add_row(
            row.quarantine_id,
            row.stream,
            row.reason,
            f"{Path(row.source_file).name}:{row.source_row}",
            row.event_id or "-",
            json.dumps(row.raw)[:80],
        )
    stdout.print(listing)


@quarantine_app.command("show")
def quarantine_show(
    quarantine_id: Annotated[str, typer.Argument(help="Id from `quarantine list`.")],
) -> None:
    """Show one quarantined row in full."""
    from feature_store import quarantine
    from feature_store.engine import connect

    con = connect()
    quarantine.attach_catalog(con, _layout())
    row = quarantine.get_row(con, quarantine_id)
    if row is None:
        raise _fail(
            SegmentsError(f"no quarantined row {quarantine_id!r}; see `segments quarantine list`")
        )
    _print_json(row.as_dict())


@quarantine_app.command("export")
def quarantine_export(
    stream: Annotated[str, typer.Option(help="billing or usage.")],
    out: Annotated[Path, typer.Option(help="File to fix and re-ingest (.csv or .jsonl).")],
    reason: Annotated[str | None, typer.Option(help="Only rows with this reason code.")] = None,
) -> None:
    """Write open quarantined rows, as they arrived plus their quarantine_id, for fixing.

    After fixing, `segments ingest --<stream> FILE` accepts the corrected rows and marks them
    resolved in the quarantine.
    """
    import pandas as pd

    from feature_store import quarantine
    from feature_store.engine import connect
    from feature_store.schema import QUARANTINE_ID_COLUMN

    if stream not in STREAMS:
        raise _fail(SegmentsError(f"--stream must be one of {', '.join(STREAMS)}"))
    if not out.name.endswith((".csv", ".jsonl")):
        raise _fail(SegmentsError(f"{out}: export writes .csv or .jsonl"))
    con = connect()
    quarantine.attach_catalog(con, _layout())
    rows = quarantine.list_rows(con, stream=stream, reason=reason)
    frame = pd.DataFrame(
        [
            {QUARANTINE_ID_COLUMN: row.quarantine_id, "_reasons": ",".join(row.reasons), **row.raw}
            for row in rows
        ]
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.name.endswith(".csv"):
        frame.to_csv(out, index=False)
    else:
        frame.to_json(out, orient="records", lines=True)
    console.print(
        f"Exported {len(frame):,} rows to {out}; fix them, then `segments ingest --{stream} {out}`"
    )


def _quiet_mlflow() -> None:
    import logging
    import os

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "ERROR")
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    logging.getLogger("alembic").setLevel(logging.ERROR)


@app.command()
def train(
    as_of: Annotated[
        str, typer.Option("--as-of", help="Date (whole day included) or ISO instant.")
    ],
    seed: Annotated[int, typer.Option(help="Random seed; same data and seed, same segments.")] = 0,
    max_segments: Annotated[
        int, typer.Option(min=2, max=30, help="Cap on the number of segments.")
    ] = 12,
    as_json: JsonFlag = False,
) -> None:
    """Discover segments from the features as of a date; track and register them in MLflow."""
    _quiet_mlflow()
    from feature_store.timeutil import parse_as_of
    from models.segmenter import CustomerSegmenter
    from pipelines.train import train as run_training

    try:
        instant = parse_as_of(as_of)
        # MLflow prints run links on stdout; keep stdout for our own output (--json).
        with (
            console.status("Training: features, candidate segmentations, profiles, MLflow..."),
            contextlib.redirect_stdout(sys.stderr),
        ):
            result = run_training(
                _layout(), instant, CustomerSegmenter(max_segments=max_segments, random_state=seed)
            )
    except SegmentsError as error:
        raise _fail(error) from None
    if as_json:
        _print_json(result.as_dict())
        return
    stdout.print(
        f"run {result.run_id}: model version {result.model_version}, {result.n_segments} segments, "
        f"silhouette {result.metrics['silhouette']:.3f}, stability {result.metrics['stability']:.3f}, "
        f"{result.seconds:.1f} s",
        highlight=False,
    )
    table = Table("id", "segment", "customers", "MRR share", "churn rate")
    for segment in result.segments:
        table.add_row(
            str(segment["id"]),
            str(segment["name"]),
            f"{segment['size']:,}",
            f"{segment['mrr_share']:.1%}",
            f"{segment['churn_rate']:.1%}",
        )
    stdout.print(table)
    if result.promoted:
        stdout.print(f"version {result.model_version} is now champion")
    else:
        stdout.print(
            f"version {result.model_version} is challenger; champion stays {result.champion_version} "
            f"({'; '.join(result.gate_failures)})"
        )


@app.command()
def promote(
    version: Annotated[str, typer.Argument(help="Registered model version to make champion.")],
) -> None:
    """Move the champion alias to a version by hand."""
    _quiet_mlflow()
    from pipelines import tracking

    try:
        client = tracking.connect(tracking.TrackingConfig.from_environment(_layout()))
        resolved = tracking.resolve_version(client, version)
        previous = tracking.alias_version(client, tracking.CHAMPION)
        tracking.set_alias(client, tracking.CHAMPION, resolved)
    except SegmentsError as error:
        raise _fail(error) from None
    stdout.print(f"champion: version {previous or '-'} -> {resolved}")


@app.command()
def assign(
    input_path: Annotated[
        Path | None, typer.Option("--in", help="Feature table (.parquet/.csv).")
    ] = None,
    out: Annotated[Path, typer.Option(help="Output (.parquet/.csv/.jsonl).")] = Path(
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
    _quiet_mlflow()
    from feature_store.timeutil import parse_as_of
    from models.assignment import ModelRef
    from pipelines import tracking
    from pipelines.assign import (
        assign_table,
        features_from_events,
        read_feature_table,
        write_assignments,
        write_explained_assignments,
    )

    events = {s: p for s, p in (("billing", billing), ("usage", usage)) if p}
    try:
        if (input_path is None) == (not events):
            raise SegmentsError(
                "give either --in FEATURES or --billing/--usage events with --as-of"
            )
        if events and as_of is None:
            raise SegmentsError("--as-of is required when assigning from events")
        if explain and not out.name.lower().endswith(".jsonl"):
            raise SegmentsError(
                f"--explain writes JSON Lines: give an --out ending in .jsonl, not {out}"
            )
        features = (
            read_feature_table(input_path)
            if input_path
            else features_from_events(events, parse_as_of(as_of or ""))
        )
        client = tracking.connect(tracking.TrackingConfig.from_environment(_layout()))
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
            write_assignments(table, out)
            written = len(table)
    except SegmentsError as error:
        raise _fail(error) from None
    console.print(f"Assigned {written:,} customers with model version {version} -> {out}")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, max=64, help="Worker processes.")] = 1,
    access_log: Annotated[bool, typer.Option(help="Log every request.")] = False,
) -> None:
    """Serve the scoring API (docs/service.md); settings come from SEGMENTS_* variables."""
    _quiet_mlflow()
    from service.server import check_settings
    from service.server import run as run_server

    try:
        check_settings()  # fail here, with a message, rather than in every worker
    except SegmentsError as error:
        raise _fail(error) from None
    run_server(host, port, workers, access_log=access_log)


def main() -> None:
    app()
