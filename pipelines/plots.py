"""The training run's picture in business terms (customers, MRR share, backtested churn, LTV).

The rest of what a product team reads (segment cards, differences in feature units, the map of
customers) is the report, ``models.report``, drawn with the same figures as the web pages.

Figures are made directly (``matplotlib.figure.Figure``), not through pyplot: they draw to files
with no backend chosen, so importing this module changes no process-wide matplotlib state (pyplot
needed ``matplotlib.use("Agg")`` at import, for servers and CI with no display).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator, PercentFormatter

from models.business import BACKTEST_WINDOW_DAYS, too_few_text
from models.charts import colour
from models.profiles import SegmentProfile
from models.summaries import percent, range_text


def business_panels(
    profiles: list[SegmentProfile],
    out: Path,
    currency: str | None = None,
    subtitle: str | None = None,
) -> Path:
    """``business_figure`` drawn to ``out`` (PNG)."""
    business_figure(profiles, currency, subtitle).savefig(out, dpi=120)
    return out


def business_figure(
    profiles: list[SegmentProfile], currency: str | None = None, subtitle: str | None = None
) -> Figure:
    """Per segment, side by side: customers, share of all MRR, churn rate, median lifetime value.

    The four numbers a product team asks first, as bars on one row per segment, so a segment that
    is small but carries the revenue, or large and churning, shows at a glance. Churn carries its
    90% interval, or why there is none; lifetime revenue its ``currency`` where known; shares
    read as the pages round them (``models.summaries.percent``). ``subtitle`` says which model,
    as of when and of whom, so the picture can be passed on alone.
    """
    labels = [f"{p.segment_id}: {p.name}" for p in profiles]
    # Churn is backtested; an unmeasured rate draws no bar (its label says so) rather than 0%.
    churn = [p.churn_rate if p.churn_rate is not None else 0.0 for p in profiles]
    # A business of invoices alone: its share of revenue to date and the share who bought again,
    # where MRR and churn would draw 0 and "not measured" on every row (a review)
    again = [_repurchase(p) for p in profiles]
    buyers = any((p.backtest or {}).get("cohort_kind") == "buyers" for p in profiles)
    if not any(p.mrr_share for p in profiles) and all(p.ltv_share is not None for p in profiles):
        money = ("share of revenue to date", [p.ltv_share or 0.0 for p in profiles])
    else:
        money = ("share of MRR", [p.mrr_share for p in profiles])
    if buyers:
        backtest = (
            f"bought again, {BACKTEST_WINDOW_DAYS}-day backtest",
            [rate if rate is not None else 0.0 for rate in again],
            ["too few" if rate is None else percent(rate) for rate in again],
        )
    else:
        backtest = (
            f"churn, {BACKTEST_WINDOW_DAYS}-day backtest",
            churn,
            [churn_label(p) for p in profiles],
        )
    panels: list[tuple[str, list[float], list[str], bool]] = [
        ("customers", [p.size for p in profiles], [f"{p.size:,}" for p in profiles], False),
        (money[0], money[1], [percent(v) for v in money[1]], True),
        (*backtest, True),
        (
            "median lifetime revenue" + (f" ({currency})" if currency else ""),
            [p.ltv_median for p in profiles],
            [f"{p.ltv_median:,.0f}" for p in profiles],
            False,
        ),
    ]
    figure = Figure(figsize=(14, 1.5 + 0.45 * len(profiles)))
    FigureCanvasAgg(figure)  # this figure's own canvas, to measure its labels (no backend chosen)
    axes = figure.subplots(1, len(panels), sharey=True)
    rows = np.arange(len(profiles))
    colours = [colour(p.segment_id) for p in profiles]  # as in every other picture
    for axis, (title, values, texts, share) in zip(axes, panels, strict=True):
        axis.barh(rows, values, color=colours)
        top = max(values) if max(values) > 0 else 1.0
        axis.set_xlim(0, top * 1.3)
        for row, value, text in zip(rows, values, texts, strict=True):
            axis.text(value + top * 0.02, row, text, va="center", fontsize=7)
        axis.set_title(title, fontsize=9)
        axis.tick_params(axis="x", labelsize=7)
        # Three ticks with thousands separators (lifetime values run into six digits); shares
        # in percent (their ticks read "0, 40, 80" with no unit).
        axis.xaxis.set_major_locator(MaxNLocator(3))
        axis.xaxis.set_major_formatter(PercentFormatter(1.0, None) if share else "{x:,.0f}")
    axes[0].set_yticks(rows, labels, fontsize=8)
    axes[0].invert_yaxis()  # segment 0, the largest, on top
    figure.suptitle(
        "Segments in business terms" + (f"\n{subtitle}" if subtitle else ""), fontsize=11
    )
    figure.tight_layout()
    _labels_inside(figure, axes)
    return figure


def _labels_inside(figure: Figure, axes: np.ndarray) -> None:
    """Widen each panel's range until its bar labels end inside it: a churn label with its
    interval ("14% (12% to 17%)") ran across the frame into the next panel (a product manager's
    review). A label starts at a value and is as wide in pixels whatever the range, so the
    range it needs is solved for, not searched (two widening passes fell short beside long
    segment names)."""
    renderer = figure.canvas.get_renderer()
    for axis in axes:
        width = axis.get_window_extent(renderer).width
        low, high = axis.get_xlim()
        needed = high
        for text in axis.texts:
            room = 1 - (text.get_window_extent(renderer).width + 4) / width  # 4 px to the frame
            start = text.get_position()[0]
            needed = max(needed, low + (start - low) / max(room, 0.1))
        axis.set_xlim(low, needed)


def _repurchase(profile: SegmentProfile) -> float | None:
    """The share of a segment's buyers who bought again (a business of invoices alone)."""
    measured = (profile.backtest or {}).get("repurchase")
    return None if measured is None else float(measured["rate"])


def churn_label(profile: SegmentProfile) -> str:
    """A churn bar's label: '6.8% (5.2% to 8.7%)', its 90% interval beside it, or why there is no
    rate ('too few: would have held 3 paying then'; a picture said only "not measured")."""
    backtest = profile.backtest or {}
    churn = backtest.get("churn")
    if isinstance(churn, dict):
        return f"{percent(churn['rate'])} ({range_text(churn['low'], churn['high'])})"
    if backtest and profile.churn_rate is None:
        cohort = backtest.get("cohort")
        return too_few_text(int(cohort) if isinstance(cohort, int | float) else 0)
    return "not measured" if profile.churn_rate is None else percent(profile.churn_rate)
