"""``segments report``: the segments as one self-contained HTML file to share."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from feature_store.errors import SegmentsError
from pipelines.cli.common import console, quiet_mlflow, registry

if TYPE_CHECKING:  # imported where used: `segments --help` should not load pandas
    import pandas as pd

    from models.bundle import SegmentModel

app = typer.Typer()


@app.command()
def report(
    out: Annotated[Path, typer.Option(help="The HTML file to write (opens offline).")],
    model_version: Annotated[
        str | None, typer.Option(help="Registered version (default: the champion).")
    ] = None,
    features: Annotated[
        Path | None,
        typer.Option(
            "--features", help="A feature table (from `segments features`) to draw the map from."
        ),
    ] = None,
) -> None:
    """Segment cards, business metrics and what sets each segment apart, in plain words."""
    if out.suffix.lower() not in (".html", ".htm"):
        raise SegmentsError(f"--out writes HTML: give a file ending in .html, not {out}")
    table = _read_features(features)  # before MLflow loads: fail fast on a bad file
    quiet_mlflow()
    from models.report import customer_map_points, render_report, training_sample_points
    from pipelines.assign import check_feature_table

    models = registry()
    version = models.resolve_version(model_version)
    model = models.load_version(version)
    if table is not None:
        check_feature_table(model, table)
        points = customer_map_points(model, table)
        note = f"The {len(points.x):,} active customers of the feature table it was given."
    else:  # the sample of its training customers the model carries
        points = training_sample_points(model)
        note = None if points is None else _sample_note(len(points.x), model)
    out.parent.mkdir(parents=True, exist_ok=True)
    from models.registry import CHAMPION

    served = models.alias_version(CHAMPION)
    out.write_text(
        render_report(model, version, map_points=points, map_note=note, served=served),
        encoding="utf-8",
    )
    console.print(f"Report of model version {version} -> {out}")


def _sample_note(shown: int, model: SegmentModel) -> str:
    segmented = sum(profile.size for profile in model.profiles)
    if shown >= segmented:  # the sample holds every customer it segmented
        return f"All {shown:,} customers it segmented, as of the date of its features."
    return (
        f"A sample of {shown:,} of the {segmented:,} customers it segmented, as of the date of "
        "its features."
    )


def _read_features(path: Path | None) -> pd.DataFrame | None:
    if path is None:
        return None
    from pipelines.assign import read_feature_table

    return read_feature_table(path)
