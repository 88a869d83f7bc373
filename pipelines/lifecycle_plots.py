"""Pictures of a model's life: the migration between two versions, and drift.

The migration is drawn as an alluvial (Sankey-style) diagram by hand in matplotlib: matplotlib's
own ``Sankey`` draws one flow splitting into many, not two columns of segments joined by bands, and
plotly (which has that shape) would add a dependency and a 3.5 MB HTML file with plotly.js inlined
for each comparison. A PNG is small, shows in MLflow's artifact viewer and in the docs.

Figures are made directly (``matplotlib.figure.Figure``), not through pyplot: they draw to files
with no backend chosen, so importing this module changes no process-wide matplotlib state (pyplot
needed ``matplotlib.use("Agg")`` at import, for servers and CI with no display).
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import PathPatch, Rectangle
from matplotlib.path import Path as CurvePath

from models.charts import colour
from models.drift import (
    PSI_ACT,
    PSI_WARN,
    WASSERSTEIN_ACT,
    WASSERSTEIN_WARN,
    DriftReport,
    by_urgency,
)

GAP = 0.02  # vertical space between two segments, as a share of all customers
BAR = 0.06  # width of a segment's bar, in axis units (the columns sit at 0 and 1)


def _stack(sizes: pd.Series) -> dict[int, float]:
    """Bottom of each segment's bar, segments stacked top-down in id order."""
    total = float(sizes.sum()) or 1.0
    tops, y = {}, 1.0 + GAP * (len(sizes) - 1)
    for segment, size in sizes.items():
        y -= size / total
        tops[int(segment)] = y
        y -= GAP
    return tops


def _band(x0: float, x1: float, y0: float, y1: float, height: float) -> CurvePath:
    """A band of ``height`` from (x0, y0) to (x1, y1) with S-shaped edges (cubic Bézier)."""
    middle = (x0 + x1) / 2
    vertices = [
        (x0, y0),
        (middle, y0),
        (middle, y1),
        (x1, y1),
        (x1, y1 + height),
        (middle, y1 + height),
        (middle, y0 + height),
        (x0, y0 + height),
        (x0, y0),
    ]
    codes = [CurvePath.MOVETO, *[CurvePath.CURVE4] * 3, CurvePath.LINETO]
    codes += [*[CurvePath.CURVE4] * 3, CurvePath.CLOSEPOLY]
    return CurvePath(vertices, codes)


def migration_alluvial(
    migration: pd.DataFrame,
    old_names: Mapping[int, str],
    new_names: Mapping[int, str],
    old_title: str,
    new_title: str,
    out: Path,
) -> Path:
    """Customers flowing from each old segment (left) to each new one (right)."""
    total = float(migration.to_numpy().sum()) or 1.0
    left, right = _stack(migration.sum(axis=1)), _stack(migration.sum(axis=0))
    figure = Figure(figsize=(11, 0.5 + 0.45 * max(len(left), len(right), 6)))
    axes = figure.subplots()
    out_used = dict.fromkeys(left, 0.0)
    in_used = dict.fromkeys(right, 0.0)
    for old in migration.index:
        for new in migration.columns:
            count = float(migration.loc[old, new])
            if count <= 0:
                continue
            height = count / total
            y0 = left[int(old)] + out_used[int(old)]
            y1 = right[int(new)] + in_used[int(new)]
            out_used[int(old)] += height
            in_used[int(new)] += height
            patch = PathPatch(
                _band(BAR, 1 - BAR, y0, y1, height),
                facecolor=colour(int(old)),
                alpha=0.25 if int(old) == int(new) else 0.55,
                edgecolor="none",
            )
            axes.add_patch(patch)
    for x, bottoms, sizes, names, align in (
        (0.0, left, migration.sum(axis=1), old_names, "right"),
        (1 - BAR, right, migration.sum(axis=0), new_names, "left"),
    ):
        for segment, bottom in bottoms.items():
            height = float(sizes[segment]) / total
            axes.add_patch(Rectangle((x, bottom), BAR, height, color=colour(segment)))
            label = f"{segment}: {names.get(segment, '?')} ({int(sizes[segment]):,})"
            text_x = x - 0.01 if align == "right" else x + BAR + 0.01
            axes.text(text_x, bottom + height / 2, label, ha=align, va="center", fontsize=8)
    axes.set_xlim(-0.55, 1.55)
    axes.set_ylim(-0.02, 1.02 + GAP * max(len(left), len(right)))
    axes.axis("off")
    axes.text(BAR / 2, axes.get_ylim()[1], old_title, ha="center", va="bottom", weight="bold")
    axes.text(1 - BAR / 2, axes.get_ylim()[1], new_title, ha="center", va="bottom", weight="bold")
    axes.set_title("Where customers go: segment ids before and after", pad=22)
    figure.tight_layout()
    figure.savefig(out, dpi=110)
    return out


def drift_picture(report: DriftReport, out: Path, what: str | None = None) -> Path:
    """Left: each feature's PSI and normalised Wasserstein distance beyond sampling noise, side by
    side against the warn/act lines (the same for both), coloured by the feature's level, on a
    scale linear up to the act line and logarithmic beyond. Right: each segment's share in
    training and now. ``what``: the picture's title, what was compared ("model version 3:
    training as of … against vectors as of …"), so a saved picture says what it measured."""
    # in the table's order, most urgent at the top (barh draws the first row at the bottom)
    features = by_urgency(report.features)[::-1]
    figure = Figure(figsize=(13, 0.8 + 0.36 * max(len(features), 8)))
    left, right = figure.subplots(1, 2, width_ratios=(3, 2))
    level_colour = {"ok": "tab:green", "warn": "tab:orange", "act": "tab:red"}
    # The level is judged on each score's excess over sampling noise (``models.drift.noise_of``),
    # so the bars are those excesses, read against the lines the level uses: raw distances showed
    # a green `mrr` bar past the "act" line (0.32, where a same-size draw of the training
    # customers gives 0.53). Both scores are drawn: by distance alone, a feature at "act" by its
    # PSI (3.12) showed no bar at all beside one at 380 (an ML engineer's walkthrough), which the
    # logarithmic part of the scale now keeps from flattening the others.
    rows = np.arange(len(features))
    colours = [level_colour[f.level] for f in features]
    psi = [max(f.psi - f.psi_noise, 0.0) for f in features]
    distance = [max(f.wasserstein - f.wasserstein_noise, 0.0) for f in features]
    left.barh(rows + 0.2, psi, 0.4, color=colours, label="PSI")
    left.barh(
        rows - 0.2,
        distance,
        0.4,
        color=colours,
        hatch="///",
        alpha=0.6,
        label="Wasserstein / training IQR",
    )
    left.set_yticks(rows, [f.feature for f in features])
    left.set_xscale("symlog", linthresh=WASSERSTEIN_ACT)
    left.set_xlim(left=0)
    lines = ((PSI_WARN, ":"), (PSI_ACT, "--"), (WASSERSTEIN_WARN, ":"), (WASSERSTEIN_ACT, "--"))
    for line, style in set(lines):
        left.axvline(line, color="grey", linestyle=style, linewidth=1)
    left.set_xlabel(
        textwrap.fill(
            "beyond sampling noise: PSI (solid; warn "
            f"{PSI_WARN:g}, act {PSI_ACT:g}) and Wasserstein distance / training IQR (hatched; "
            f"warn {WASSERSTEIN_WARN:g}, act {WASSERSTEIN_ACT:g}); linear to "
            f"{WASSERSTEIN_ACT:g}, logarithmic beyond; colour: the feature's level",
            90,
        ),
        fontsize=8,
    )
    left.legend(fontsize=8, loc="lower right")
    left.set_title("Feature drift")
    left.tick_params(axis="y", labelsize=7)
    labels = [textwrap.fill(f"{s.segment_id}: {s.name}", 32) for s in report.segments]
    rows = np.arange(len(labels))
    right.barh(rows + 0.2, [s.reference_share for s in report.segments], 0.4, label="training")
    right.barh(rows - 0.2, [s.current_share for s in report.segments], 0.4, label="now")
    right.set_yticks(rows, labels, fontsize=7)
    right.invert_yaxis()
    right.set_xlabel("share of customers")
    right.set_title(f"Segment shares (PSI {report.segment_psi:.3f}, {report.segment_level})")
    right.legend(fontsize=8)
    if what:
        figure.suptitle(what, fontsize=10)
    figure.tight_layout()
    figure.savefig(out, dpi=110)
    return out
