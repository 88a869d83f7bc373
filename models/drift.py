"""Drift between the customers a model was trained on and the customers it sees now.

Two views, both pure functions of arrays:

- **per feature**: the population stability index (PSI) over the reference's deciles, and the
  Wasserstein (earth mover's) distance divided by the reference's interquartile range (or its
  standard deviation when the IQR is 0, as for flags; the feature's own unit when the reference is
  constant), so "0.25" means "the distribution moved by a quarter of its typical spread" whatever
  the unit;
- **per segment**: PSI of the segment shares, the share of outliers and the share of assignments
  whose margin over the runner-up is small (customers between two segments).

Thresholds follow the credit-scoring practice PSI was made for (Siddiqi, "Credit Risk Scorecards",
2006): below 0.1 nothing to do, 0.1-0.25 watch, above 0.25 act. The same bands are used for the
normalised Wasserstein distance, whose scale (a share of the spread) reads the same way.

A feature's level is judged on what each score exceeds **sampling noise** by: the 99th
percentile of the same score between the reference and ``NOISE_DRAWS`` samples of the current
sample's size drawn from the reference itself. Both scores grow as the sample shrinks, and a
heavy-tailed column's Wasserstein distance over its IQR is large even between two samples of one
distribution: 900 of the model's own training customers read 0.3-0.9 on ``events_90d`` and 81
of them 1.2-3.1, all "act", so the signal was "act" whatever happened (an ML engineer's
walkthrough).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Literal, get_args

import numpy as np
from scipy.stats import wasserstein_distance

Level = Literal["ok", "warn", "act"]
# the levels from least to most urgent: a level's index is its urgency
LEVEL_ORDER: tuple[Level, ...] = get_args(Level)
PSI_WARN, PSI_ACT = 0.1, 0.25
WASSERSTEIN_WARN, WASSERSTEIN_ACT = 0.1, 0.25
# A margin below this (confidence minus the runner-up's) means the customer sits between segments.
LOW_MARGIN = 0.2
# Empty bins get this share so that PSI stays finite (the usual smoothing).
_EPSILON = 1e-4
_DECILES = np.linspace(0, 1, 11)[1:-1]
# Samples of the current sample's size drawn from the reference, to measure what sampling alone
# makes of each score; the 99th percentile of the draws is the noise (``noise_of``): with 25
# features a report asks 25 times, and at the 95th (20 draws) a heavy-tailed column of 81
# customers still read "act" in one report in ten.
NOISE_DRAWS = 50
NOISE_QUANTILE = 0.99
# A value held by at least this share of the reference customers, a decile's worth, is a PSI bin
# of its own: such a value is what makes decile cuts coincide (0 failed payments for 96%), and a
# rarer one is binned as before, so the bins stay about ten and PSI's usual bands still apply.
POINT_MASS = 0.1


def level(value: float, warn: float, act: float) -> Level:
    return "act" if value >= act else "warn" if value >= warn else "ok"


def psi_from_shares(expected: np.ndarray, actual: np.ndarray) -> float:
    """PSI = sum((a - e) * ln(a / e)) over bins, with empty bins smoothed."""
    e = np.clip(np.asarray(expected, float), _EPSILON, None)
    a = np.clip(np.asarray(actual, float), _EPSILON, None)
    e, a = e / e.sum(), a / a.sum()
    return float(np.sum((a - e) * np.log(a / e)))


def feature_psi(reference: np.ndarray, current: np.ndarray) -> float:
    """PSI over bins cut at the reference's deciles (at its values, for a column with ten or
    fewer), a value that holds at least ``POINT_MASS`` of the reference being a bin of its own
    (``_bin_shares``): a zero-inflated column whose deciles are all 0 keeps its zeros apart from
    the rest, so customers with a failed payment going from 4% to 11% is drift, not one bin
    holding everyone."""
    reference, current = _finite(reference), _finite(current)
    if reference.size == 0 or current.size == 0:
        return 0.0
    values, counts = np.unique(reference, return_counts=True)
    edges = values if values.size <= 10 else np.unique(np.quantile(reference, _DECILES))
    # Only a value many reference customers hold: a decile that falls on one customer's value
    # (every decile of a sample of 10n + 1) would be a bin of 1/n in training and ~0 now, and
    # two samples of one distribution would read as drift.
    points = values[counts >= POINT_MASS * reference.size]
    return psi_from_shares(
        _bin_shares(reference, edges, points), _bin_shares(current, edges, points)
    )


def normalised_wasserstein(reference: np.ndarray, current: np.ndarray) -> float:
    """Earth mover's distance in units of the reference's spread (IQR, else std, else 1)."""
    reference, current = _finite(reference), _finite(current)
    if reference.size == 0 or current.size == 0:
        return 0.0
    q1, q3 = np.quantile(reference, [0.25, 0.75])
    # a reference with no spread at all (a count nobody had in training) is measured in the
    # feature's own unit: 0.11 contractions per customer more reads as 0.11
    spread = float(q3 - q1) or float(np.std(reference)) or 1.0
    return float(wasserstein_distance(reference, current) / spread)


@dataclass(frozen=True)
class FeatureDrift:
    feature: str
    psi: float
    wasserstein: float
    level: Level
    # what sampling alone makes of each score at this sample size (``noise_of``); the level is
    # judged on the excess over it
    psi_noise: float = 0.0
    wasserstein_noise: float = 0.0


@dataclass(frozen=True)
class SegmentShareDrift:
    segment_id: int
    name: str
    reference_share: float
    current_share: float


@dataclass(frozen=True)
class DriftReport:
    reference_customers: int
    current_customers: int
    features: tuple[FeatureDrift, ...]
    segments: tuple[SegmentShareDrift, ...]
    segment_psi: float
    segment_level: Level
    outlier_share: float
    reference_outlier_share: float
    low_margin_share: float
    reference_low_margin_share: float

    @property
    def level(self) -> Level:
        levels = [self.segment_level, *(f.level for f in self.features)]
        return "act" if "act" in levels else "warn" if "warn" in levels else "ok"

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "level": self.level}


def by_urgency(features: Sequence[FeatureDrift]) -> list[FeatureDrift]:
    """Features to act on first, then to watch, then the rest, each by distance: sorted by the
    distance alone, a feature at "act" by its PSI was listed below six at "warn"."""
    order = ("act", "warn", "ok")
    return sorted(features, key=lambda f: (order.index(f.level), -f.wasserstein))


def noise_of(reference: np.ndarray, size: int, random_state: int = 0) -> tuple[float, float]:
    """PSI and normalised Wasserstein distance that ``size`` customers drawn from ``reference``
    itself show against it: the 99th percentile over ``NOISE_DRAWS`` draws (with replacement)."""
    reference = _finite(reference)
    if reference.size == 0 or size == 0:
        return 0.0, 0.0
    rng = np.random.default_rng(random_state)
    draws = [rng.choice(reference, size, replace=True) for _ in range(NOISE_DRAWS)]
    psis = [feature_psi(reference, draw) for draw in draws]
    distances = [normalised_wasserstein(reference, draw) for draw in draws]
    return float(np.quantile(psis, NOISE_QUANTILE)), float(np.quantile(distances, NOISE_QUANTILE))


def feature_drift(
    names: Sequence[str], reference: np.ndarray, current: np.ndarray
) -> tuple[FeatureDrift, ...]:
    """Per-feature drift of ``current`` against ``reference`` (both customers x features), each
    level judged on what its scores exceed sampling noise by (``noise_of``)."""
    out = []
    for column, name in enumerate(names):
        psi = feature_psi(reference[:, column], current[:, column])
        distance = normalised_wasserstein(reference[:, column], current[:, column])
        psi_noise, distance_noise = noise_of(
            reference[:, column], int(np.isfinite(current[:, column]).sum()), random_state=column
        )
        worst = max(
            LEVEL_ORDER.index(level(psi - psi_noise, PSI_WARN, PSI_ACT)),
            LEVEL_ORDER.index(level(distance - distance_noise, WASSERSTEIN_WARN, WASSERSTEIN_ACT)),
        )
        out.append(
            FeatureDrift(
                name,
                round(psi, 6),
                round(distance, 6),
                LEVEL_ORDER[worst],
                round(psi_noise, 6),
                round(distance_noise, 6),
            )
        )
    return tuple(out)


@dataclass(frozen=True)
class PlacementSummary:
    """What drift needs of a batch of assignments: segment positions, outlier flags, margins."""

    segments: np.ndarray
    is_outlier: np.ndarray
    margin: np.ndarray | None

    def shares(self, k: int) -> np.ndarray:
        counts = np.bincount(self.segments.astype(int), minlength=k)[:k]
        return counts / max(counts.sum(), 1)

    def outlier_share(self) -> float:
        return float(np.mean(self.is_outlier)) if self.is_outlier.size else 0.0

    def low_margin_share(self) -> float:
        if self.margin is None or self.margin.size == 0:
            return 0.0
        return float(np.mean(self.margin < LOW_MARGIN))


def drift_report(
    names: Sequence[str],
    reference: np.ndarray,
    current: np.ndarray,
    reference_placement: PlacementSummary,
    current_placement: PlacementSummary,
    segments: Mapping[int, str],
) -> DriftReport:
    """The whole report; ``segments`` maps each segment position to (public id, name) order."""
    k = len(segments)
    expected, actual = reference_placement.shares(k), current_placement.shares(k)
    segment_psi = psi_from_shares(expected, actual)
    return DriftReport(
        reference_customers=len(reference),
        current_customers=len(current),
        features=feature_drift(names, reference, current),
        segments=tuple(
            SegmentShareDrift(int(sid), name, round(float(e), 6), round(float(a), 6))
            for (sid, name), e, a in zip(segments.items(), expected, actual, strict=True)
        ),
        segment_psi=round(segment_psi, 6),
        segment_level=level(segment_psi, PSI_WARN, PSI_ACT),
        outlier_share=current_placement.outlier_share(),
        reference_outlier_share=reference_placement.outlier_share(),
        low_margin_share=current_placement.low_margin_share(),
        reference_low_margin_share=reference_placement.low_margin_share(),
    )


def _finite(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=float)
    return values[np.isfinite(values)]


def _bin_shares(values: np.ndarray, edges: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Shares of ``values`` in the bins [e_i, e_i+1) between the sorted ``edges`` (and below
    the first), each of the sorted ``points`` taken out into a bin of its own."""
    index = np.searchsorted(edges, values, side="right")
    if points.size:
        at = np.minimum(np.searchsorted(points, values), points.size - 1)
        on_point = points[at] == values
        index = np.where(on_point, len(edges) + 1 + at, index)
    counts = np.bincount(index, minlength=len(edges) + 1 + points.size)
    return counts / max(counts.sum(), 1)
