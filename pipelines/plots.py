"""Pictures for product teams: segments in business terms, a 2-D map of customers by segment,
a profile heatmap and a driver heatmap."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on servers or in CI

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import MaxNLocator, StrMethodFormatter
from sklearn.decomposition import PCA

from models.business import BACKTEST_WINDOW_DAYS
from models.profiles import SegmentProfile

MAP_POINTS = 5000


def segment_map(
    Z: np.ndarray, labels: np.ndarray, names: list[str], out: Path, seed: int = 0
) -> Path:
    """Customers on their first two principal components, coloured by segment."""
    rng = np.random.default_rng(seed)
    rows = rng.choice(len(Z), min(len(Z), MAP_POINTS), replace=False)
    points = (
        PCA(n_components=2, random_state=seed).fit_transform(Z[rows])
        if Z.shape[1] > 1
        else (np.column_stack([Z[rows, 0], np.zeros(len(rows))]))
    )
    figure, axes = plt.subplots(figsize=(9, 7))
    colours = plt.get_cmap("tab20")
    for segment, name in enumerate(names):
        chosen = labels[rows] == segment
        axes.scatter(
            points[chosen, 0],
            points[chosen, 1],
            s=6,
            alpha=0.6,
            color=colours(segment % 20),
            label=f"{segment}: {name} ({(labels == segment).sum():,})",
        )
    axes.set_title("Customers by segment (first two principal components)")
    axes.set_xlabel("component 1")
    axes.set_ylabel("component 2")
    axes.legend(fontsize=7, markerscale=3, loc="best")
    figure.tight_layout()
    figure.savefig(out, dpi=120)
    plt.close(figure)
    return out


def business_panels(profiles: list[SegmentProfile], out: Path) -> Path:
    """Per segment, side by side: customers, share of all MRR, churn rate, median lifetime value.

    The four numbers a product team asks first, as bars on one row per segment, so a segment that
    is small but carries the revenue, or large and churning, shows at a glance.
    """
    labels = [f"{p.segment_id}: {p.name}" for p in profiles]
    # Churn is backtested; an unmeasured rate draws no bar (its label says so) rather than 0%.
    churn = [100 * p.churn_rate if p.churn_rate is not None else 0.0 for p in profiles]
    panels = [
        ("customers", [p.size for p in profiles], "{:,.0f}"),
        ("share of MRR", [100 * p.mrr_share for p in profiles], "{:.1f}%"),
        (
            f"churn, {BACKTEST_WINDOW_DAYS}-day backtest",
            churn,
            ["not measured" if p.churn_rate is None else "{:.1f}%" for p in profiles],
        ),
        ("median lifetime value", [p.ltv_median for p in profiles], "{:,.0f}"),
    ]
    figure, axes = plt.subplots(
        1, len(panels), figsize=(14, 1.2 + 0.45 * len(profiles)), sharey=True
    )
    rows = np.arange(len(profiles))
    colours = plt.get_cmap("tab20")([p.segment_id % 20 for p in profiles])
    for axis, (title, values, text) in zip(axes, panels, strict=True):
        axis.barh(rows, values, color=colours)
        top = max(values) if max(values) > 0 else 1.0
        axis.set_xlim(0, top * 1.3)
        for row, value in zip(rows, values, strict=True):
            shown = text[row] if isinstance(text, list) else text
            axis.text(value + top * 0.02, row, shown.format(value), va="center", fontsize=7)
        axis.set_title(title, fontsize=9)
        axis.tick_params(axis="x", labelsize=7)
        # Three ticks with thousands separators: lifetime values run into six digits.
        axis.xaxis.set_major_locator(MaxNLocator(3))
        axis.xaxis.set_major_formatter(StrMethodFormatter("{x:,.0f}"))
    axes[0].set_yticks(rows, labels, fontsize=8)
    axes[0].invert_yaxis()  # segment 0, the largest, on top
    figure.suptitle("Segments in business terms")
    figure.tight_layout()
    figure.savefig(out, dpi=120)
    plt.close(figure)
    return out


def profile_heatmap(
    Z: np.ndarray, labels: np.ndarray, names: list[str], features: list[str], out: Path
) -> Path:
    """Each segment's mean of each (preprocessed, standardised) feature: what sets it apart."""
    means = np.array(
        [
            Z[labels == s].mean(axis=0) if (labels == s).any() else np.zeros(Z.shape[1])
            for s in range(len(names))
        ]
    )
    limit = max(1.0, float(np.abs(means).max()))
    return _segment_heatmap(
        means,
        names,
        features,
        out,
        title="Segment profiles",
        colour_label="standardised mean (0 = all customers)",
        cmap="RdBu_r",
        limits=(-limit, limit),
    )


def driver_heatmap(drivers: np.ndarray, names: list[str], features: list[str], out: Path) -> Path:
    """Each segment's mean |SHAP| per feature: which features place customers in it."""
    return _segment_heatmap(
        drivers,
        names,
        features,
        out,
        title="Segment drivers: what places a customer in each segment",
        colour_label="mean |SHAP| (log-odds)",
        cmap="viridis",
        limits=(0.0, None),
    )


def _segment_heatmap(
    values: np.ndarray,
    names: list[str],
    features: list[str],
    out: Path,
    *,
    title: str,
    colour_label: str,
    cmap: str,
    limits: tuple[float, float | None],
) -> Path:
    """A segments x features heatmap, one row per named segment."""
    figure, axes = plt.subplots(figsize=(max(8, 0.45 * len(features)), 1 + 0.5 * len(names)))
    image = axes.imshow(values, cmap=cmap, vmin=limits[0], vmax=limits[1], aspect="auto")
    axes.set_xticks(range(len(features)), features, rotation=60, ha="right", fontsize=8)
    axes.set_yticks(range(len(names)), [f"{i}: {n}" for i, n in enumerate(names)], fontsize=8)
    figure.colorbar(image, ax=axes, label=colour_label)
    axes.set_title(title)
    figure.tight_layout()
    figure.savefig(out, dpi=120)
    plt.close(figure)
    return out
