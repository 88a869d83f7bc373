"""Getting events in: ``demo-data``, ``ingest`` and the ``quarantine`` of rejected rows."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from feature_store.errors import SegmentsError
from feature_store.formats import FileFormat, shortened, suffixes
from feature_store.schema import STREAMS, Reason, Stream
from pipelines.cli.common import (
    JsonFlag,
    console,
    layout,
    print_json,
    print_note,
    print_table,
    progress,
    stdout,
)

if TYPE_CHECKING:  # imported where used: `segments --help` should not load DuckDB
    from feature_store.ingest import StreamReport
    from feature_store.quarantine import QuarantinedRow

app = typer.Typer()
quarantine_app = typer.Typer(
    help="List, inspect, export and dismiss quarantined rows.", no_args_is_help=True
)
app.add_typer(quarantine_app, name="quarantine")

EXPORT_FORMATS = (FileFormat.CSV, FileFormat.JSONL)  # raw rows mix types: no Parquet schema fits
EVENT_FILE_HELP = f"({'/'.join(suffixes())})"


def _reason_code(value: str | None) -> str | None:
    if value is not None and value not in set(Reason):
        raise SegmentsError(
            f"--reason {value!r} is not a reason code; known codes: {', '.join(Reason)}"
        )
    return value


ReasonOption = Annotated[
    str | None, typer.Option(help="Only rows with this reason code.", callback=_reason_code)
]


MIN_DEMO_MONTHS = 3


@app.command("demo-data")
def demo_data(
    out: Annotated[Path, typer.Option(help="Folder to write the events and truth.csv into.")],
    customers: Annotated[int, typer.Option(min=1, help="Number of customer accounts.")] = 3000,
    # At least 3: the churned persona cancels at least 60 days after signing up, in the last 180
    # days (1 or 2 months crashed with a traceback: a review)
    months: Annotated[
        int, typer.Option(min=MIN_DEMO_MONTHS, max=120, help="Months of history.")
    ] = 12,
    seed: Annotated[int, typer.Option(help="Random seed; same seed, same company.")] = 0,
    end: Annotated[str, typer.Option(help="Last day of history (YYYY-MM-DD).")] = "2026-06-30",
) -> None:
    """Write a sample SaaS company: billing_events.parquet, usage_events.parquet, truth.csv."""
    from pipelines.demo_data import generate_company, write_company

    try:
        end_day = date.fromisoformat(end)
    except ValueError:
        raise SegmentsError(f"--end {end!r} is not a date like 2026-06-30") from None
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
    billing: Annotated[Path | None, typer.Option(help=f"Billing events {EVENT_FILE_HELP}.")] = None,
    usage: Annotated[Path | None, typer.Option(help=f"Usage events {EVENT_FILE_HELP}.")] = None,
    customers: Annotated[
        Path | None, typer.Option(help="Optional customer attributes table.")
    ] = None,
    mapping: Annotated[
        Path | None,
        typer.Option(
            help="A column-mapping file (TOML) that turns another billing system's CSV export, "
            "given as --billing or --usage, into canonical events (docs/ingestion.md)."
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Validate, de-duplicate and store events; bad rows go to quarantine with a reason."""
    files: dict[Stream, Path] = {
        stream: path for stream, path in (("billing", billing), ("usage", usage)) if path
    }
    if not files and customers is None:
        raise SegmentsError("give at least one of --billing FILE or --usage FILE")
    from feature_store.coverage import event_parts, future_events_note
    from feature_store.timeutil import now_utc

    now = now_utc()
    parts_before = event_parts(layout())  # what this ingestion writes is what is new after it
    left_out: dict[str, dict[str, int]] = {}
    if mapping is not None:
        reports, left_out = _ingest_mapped(mapping, files, customers)
    else:
        reports = _ingest_with_progress(files, customers)
    if as_json:
        print_json(
            {
                stream: {**report.as_dict(), **({"left_out": left_out[stream]} if left_out else {})}
                for stream, report in reports.items()
            }
        )
    from feature_store.ingest import rejected_files_error

    refusal = rejected_files_error(list(reports.values()))
    if not as_json:
        print_table(_ingest_table(reports), whole=["quarantine reasons"])
        _print_ingest_notes(reports, advise=refusal is None)  # the refusal says where to look
        print_note(future_events_note(event_parts(layout()) - parts_before, now))
    if refusal is not None:
        # a file none of whose rows could be stored is bad input, not a run with some bad rows:
        # it exited 0, and the next step said "run `segments ingest` first"
        raise SegmentsError(refusal)


def _ingest_mapped(
    mapping_file: Path, files: dict[Stream, Path], customers: Path | None
) -> tuple[dict[str, StreamReport], dict[str, dict[str, int]]]:
    """One export through a mapping file; the mapping names the stream it produces. With the
    report, the rows its ``skip`` lists left out, by ``column=value``."""
    from feature_store.converted import ingest_converted
    from feature_store.mapping import convert_export, load_mapping

    mapping = load_mapping(mapping_file)
    if customers is not None or list(files) != [mapping.stream]:
        raise SegmentsError(
            f"{mapping_file} maps {mapping.stream} events: give the export as --{mapping.stream} "
            "FILE and nothing else"
        )
    home = layout()
    converted = convert_export(
        files[mapping.stream], mapping, spill_to=home.spill_dir, memory_limit=home.memory_limit
    )
    report = ingest_converted(
        home,
        mapping.stream,
        converted.rows,
        source_name=str(files[mapping.stream]),
        unreadable="no row splits into the export's columns",
    )
    if not report.received and not converted.skipped:
        # as a file with no events in it is refused without a mapping (a header only)
        raise SegmentsError(f"{files[mapping.stream]}: the export has no rows")
    for skipped, count in converted.skipped.items():  # counted as the rows were read
        console.print(f"{mapping.stream}: left out {count:,} rows that are not events ({skipped})")
    return {mapping.stream: report}, {mapping.stream: dict(sorted(converted.skipped.items()))}


def _ingest_with_progress(
    files: dict[Stream, Path], customers: Path | None
) -> dict[str, StreamReport]:
    from feature_store.ingest import ingest_files

    steps = len(files) + (customers is not None)
    with progress() as bar:
        task = bar.add_task("Ingesting", total=steps)

        def advance(step: str) -> None:
            bar.update(task, description=f"Ingesting {step}")

        reports = ingest_files(layout(), files, customers=customers, on_step=advance)
        bar.update(task, completed=steps)
    return reports


def _ingest_table(reports: dict[str, StreamReport]) -> Table:
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
    return table


def _print_ingest_notes(reports: dict[str, StreamReport], advise: bool = True) -> None:
    from feature_store.ingest import comma_note, thousands_note

    for report in reports.values():
        if report.unknown_columns:
            console.print(
                f"{report.stream}: ignored unknown columns {', '.join(report.unknown_columns)}"
            )
        if report.resolved_from_quarantine:
            console.print(
                f"{report.stream}: {report.resolved_from_quarantine} quarantined rows now accepted"
            )
        if report.superseded:  # a customers file: counted apart from copies, not lost unsaid
            console.print(
                f"{report.stream}: {report.superseded:,} rows replaced by a later row of the same "
                "customer_id in the file (the later attributes are kept)"
            )
        clashes = report.conflicts_with_store
        if report.received and clashes * 2 > report.received:
            # Most of a file's event ids are stored already with other contents: usually another
            # export of another company, or regenerated data, under the same ids. The store then
            # mixes two companies, and a retrain on it would segment the mixture.
            console.print(
                f"{report.stream}: {clashes:,} of {report.received:,} events "
                f"({clashes / report.received:.0%}) reuse the ids of stored events with other "
                "contents: is this another company's data? They stay quarantined; only the "
                "rest was stored."
            )
        print_note(thousands_note(report))
        print_note(comma_note(report))
    if advise and any(report.quarantined for report in reports.values()):
        console.print("Inspect rejected rows with `segments quarantine list`.")


def _check_stream(stream: str | None) -> None:
    if stream is not None and stream not in STREAMS:
        raise SegmentsError(f"--stream must be one of {', '.join(STREAMS)}")


@quarantine_app.command("list")
def quarantine_list(
    stream: Annotated[str | None, typer.Option(help="billing or usage.")] = None,
    reason: ReasonOption = None,
    include_resolved: Annotated[bool, typer.Option("--all", help="Include resolved rows.")] = False,
    limit: Annotated[int, typer.Option(min=1, help="At most this many rows.")] = 50,
    as_json: JsonFlag = False,
) -> None:
    """Summarise the quarantine by reason and list its rows."""
    from feature_store import quarantine

    _check_stream(stream)
    with quarantine.catalog_for_reading(layout()) as con:
        rows = quarantine.list_rows(
            con,
            stream=stream,
            reason=reason,
            include_resolved=include_resolved,
            limit=limit,
        )
        counts = quarantine.summary(con, stream=stream, reason=reason)
    if as_json:
        summary = [
            {"stream": s, "reason": r, "open": o, "resolved": d, "open_times_seen": t}
            for s, r, o, d, t in counts
        ]
        print_json({"summary": summary, "rows": [row.as_dict() for row in rows]})
        return
    # "received" reconciles with the ingestion reports: a row sent again is counted there each
    # time, and here once, with how often it was seen (a user read 148,605 against 148,959)
    overview = Table("stream", "reason", "open", "received", "resolved", title="Quarantine")
    for s, r, o, d, t in counts:
        overview.add_row(s, r, f"{o:,}", f"{t:,}", f"{d:,}")
    print_table(overview, whole=["stream", "reason"])
    print_table(
        _quarantine_listing(rows, include_resolved),
        whole=["quarantine_id", "stream", "reason", "file:row", "event_id", "resolved by"],
    )


def _quarantine_listing(rows: list[QuarantinedRow], include_resolved: bool = False) -> Table:
    listing = Table("quarantine_id", "stream", "reason", "file:row", "event_id", "raw")
    # wide enough to read what arrived: in a pipe (80 columns) the ids took the width and raw
    # read `{"e…` (a data engineer's review); `quarantine show` has it whole
    listing.columns[-1].min_width = 40
    if include_resolved:  # which are still open, which a batch resolved, which were dismissed
        listing.add_column("resolved by")
    for row in rows:
        cells = [
            row.quarantine_id,
            row.stream,
            row.reason,
            f"{Path(row.source_file).name}:{row.source_row}",
            # a 300-character id took the table's width and left the raw content 4 characters
            # (`quarantine show` has it whole)
            shortened(row.event_id or "-", 40),
            json.dumps(row.raw)[:80],
        ]
        if include_resolved:
            cells.append("open" if row.resolved_at is None else row.resolved_by or "-")
        listing.add_row(*cells)
    return listing


@quarantine_app.command("show")
def quarantine_show(
    quarantine_id: Annotated[str, typer.Argument(help="Id from `quarantine list`.")],
) -> None:
    """Show one quarantined row in full."""
    from feature_store import quarantine

    with quarantine.catalog_for_reading(layout()) as con:
        row = quarantine.get_row(con, quarantine_id)
    if row is None:
        raise SegmentsError(f"no quarantined row {quarantine_id!r}; see `segments quarantine list`")
    print_json(row.as_dict())


@quarantine_app.command("dismiss")
def quarantine_dismiss(
    quarantine_ids: Annotated[
        list[str] | None, typer.Argument(help="Ids from `quarantine list`.", show_default=False)
    ] = None,
    note: Annotated[
        str, typer.Option(help="Why: kept with the rows (`quarantine show`, `list --all`).")
    ] = "",
    stream: Annotated[
        str | None, typer.Option(help="With --reason: only this stream's rows.")
    ] = None,
    reason: ReasonOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Close quarantined rows that no correction will resolve (a footer line, another system's
    rows), keeping them for the record; a row received again is open again."""
    from feature_store import quarantine

    _check_stream(stream)
    if quarantine_ids and (reason or stream):
        raise SegmentsError("give quarantine ids, or --reason (and --stream), not both")
    with quarantine.catalog_for_reading(layout()) as con:
        dismissed = quarantine.dismiss_rows(
            con, note, quarantine_ids=quarantine_ids or (), stream=stream, reason=reason
        )
    if as_json:
        print_json({"dismissed": dismissed, "note": note.strip()})
        return
    console.print(f"dismissed {dismissed:,} quarantined rows ({note.strip()})")


@quarantine_app.command("export")
def quarantine_export(
    stream: Annotated[str, typer.Option(help="billing or usage.")],
    out: Annotated[
        Path,
        typer.Option(help=f"File to fix and re-ingest ({'/'.join(suffixes(EXPORT_FORMATS))})."),
    ],
    reason: ReasonOption = None,
) -> None:
    """Write open quarantined rows, as they arrived plus their quarantine_id, for fixing.

    After fixing, `segments ingest --<stream> FILE` accepts the corrected rows and marks them
    resolved in the quarantine.
    """
    import pandas as pd

    from feature_store import formats, quarantine
    from feature_store.quarantine import export_row
    from feature_store.schema import AS_WRITTEN_COLUMN, column_names

    _check_stream(stream)
    formats.file_format(out, EXPORT_FORMATS)
    with quarantine.catalog_for_reading(layout()) as con:  # the file is written after
        rows = quarantine.list_rows(con, stream=stream, reason=reason)
    frame = pd.DataFrame([export_row(row) for row in rows])
    # Lines that did not split into columns have only their text (_raw_line): a file of those
    # alone had no column to fill in, so it gets the contract's, empty. Not otherwise: a row sent
    # back unchanged must read as the same content, and columns it never had would change it.
    if not any(name in frame.columns for name in column_names(stream)):  # type: ignore[arg-type]
        for name in column_names(stream):  # type: ignore[arg-type]
            frame[name] = None
    formats.write_table(frame, out, accepted=EXPORT_FORMATS)
    console.print(
        f"Exported {len(frame):,} rows to {out}; fix them, then `segments ingest --{stream} {out}`"
    )
    as_written = int(frame[AS_WRITTEN_COLUMN].notna().sum()) if AS_WRITTEN_COLUMN in frame else 0
    if as_written:
        console.print(
            f"{as_written:,} of them hold values as a mapped export wrote them (local times, "
            f"minor units): their {AS_WRITTEN_COLUMN} column says which; write those in the "
            "events contract's form"
        )


import_app = typer.Typer(help="Backfill events from another system's export.", no_args_is_help=True)
app.add_typer(import_app, name="import")


@import_app.command("stripe")
def import_stripe(
    events_file: Annotated[
        Path, typer.Argument(help="Stripe event objects, one per line (.jsonl, .jsonl.gz).")
    ],
    as_json: JsonFlag = False,
) -> None:
    """Map Stripe events (subscriptions, invoices, refunds) to billing events and ingest them."""
    from feature_store.stripe import import_stripe_export

    imported, report = import_stripe_export(layout(), events_file)
    if as_json:
        print_json({"stripe": imported.as_dict(), "billing": report.as_dict()})
        return
    print_table(_ingest_table({"billing": report}), whole=["quarantine reasons"])
    ignored = ", ".join(f"{kind}: {count:,}" for kind, count in sorted(imported.ignored.items()))
    console.print(
        f"stripe: {imported.mapped:,} events mapped, {imported.malformed:,} malformed"
        + (f"; acknowledged but not billing events: {ignored}" if ignored else "")
    )
    if imported.several_subscriptions:
        console.print(
            f"{imported.several_subscriptions:,} customers have several subscriptions at once: "
            "their MRR and seats are summed, and they churn when the last one ends "
            "(docs/ingestion.md, 'Several subscriptions')"
        )


@app.command()
def compact(
    min_parts: Annotated[
        int,
        typer.Option(
            min=2, help="Merge a stream's small parts once it has at least this many of them."
        ),
    ] = 64,
    as_json: JsonFlag = False,
) -> None:
    """Merge the offline store's small Parquet parts (one per ingestion) into one per stream;
    safe while the service and other readers run. The service also does it by itself."""
    from filelock import FileLock

    from feature_store.compaction import compact_stream
    from feature_store.engine import connect

    home = layout()
    if not home.events_dir.is_dir():
        raise SegmentsError(f"no events stored under {home.home}: run segments ingest first")
    con = connect()
    try:
        with FileLock(str(home.lock_path)):
            done = [compact_stream(con, home, stream, min_parts=min_parts) for stream in STREAMS]
    finally:
        con.close()
    if as_json:
        print_json([compaction.as_dict() for compaction in done])
        return
    table = Table("stream", "parts merged", "events", "into", "replaced parts deleted")
    for compaction in done:
        table.add_row(
            compaction.stream,
            f"{compaction.merged_parts:,}",
            f"{compaction.events:,}",
            compaction.part or "-",
            f"{compaction.deleted_parts:,}",
        )
    print_table(table, whole=["into"])
