"""``features``: every customer's feature vector as of an instant, to a file and the online store."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pipelines.cli.common import AsOfOption, JsonFlag, console, layout, print_json, print_lines

app = typer.Typer()


@app.command()
def features(
    as_of: AsOfOption,
    out: Annotated[Path, typer.Option(help="Output table (.parquet/.csv/.jsonl, .gz).")],
    as_json: JsonFlag = False,
) -> None:
    """Compute every customer's feature vector as of a date; update the online store."""
    from feature_store import formats
    from feature_store.timeutil import parse_as_of
    from pipelines.feature_pipeline import build_features, materialize

    store = layout()
    instant = parse_as_of(as_of)
    formats.file_format(out)  # refuse a bad --out before the work, not after
    with console.status(f"Computing features as of {instant.isoformat()}Z..."):
        table = build_features(store, instant)
        formats.write_table(table, out)
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
