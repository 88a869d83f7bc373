"""Segment profiles in the terms a product team uses: size, MRR, churn, LTV, what sets it apart,
a name built from those differences, typical ranges and example customers.

Pure functions of the feature table and the assignment; no I/O.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from models.business import SegmentBacktest
from models.naming import name_segments, phrases_held

TYPICAL_QUANTILES = (0.25, 0.75)
N_DISTINGUISHING = 4
N_EXAMPLES = 5
N_DRIVERS = 5
MIN_SPREAD_SHARE = 0.1


@dataclass
class Distinction:
    """How far the segment's mean sits from the rest, in pooled standard deviations."""

    feature: str
    effect: float
    segment_mean: float
    rest_mean: float


@dataclass
class Driver:
    """A feature that matters for placing customers in the segment: mean |SHAP| over its members."""

    feature: str
    mean_abs_contribution: float


@dataclass
class SegmentProfile:
    segment_id: int
    name: str
    size: int
    share: float
    mrr_total: float
    mrr_mean: float
    mrr_share: float
    ltv_median: float
    tenure_median_days: float
    # Backtested over ``models.business.BACKTEST_WINDOW_DAYS`` (``attach_backtest``); None until
    # measured, or when there is too little history to measure it.
    churn_rate: float | None
    mrr_lost_90d: float
    outlier_share: float
    distinguishing: list[Distinction] = field(default_factory=list)
    typical_ranges: dict[str, list[float]] = field(default_factory=dict)
    medians: dict[str, float] = field(default_factory=dict)
    # Share of the segment's customers with a value above zero, and the mean, per described
    # feature: what tells a segment apart where the medians read the same ("median 0 vs 0": the
    # segment has upgrades far less often than the rest). Empty in models profiled before them.
    positive_shares: dict[str, float] = field(default_factory=dict)
    means: dict[str, float] = field(default_factory=dict)
    example_customers: list[str] = field(default_factory=list)
    drivers: list[Driver] = field(default_factory=list)
    # The model version in which ``segment_id`` (the public id) first appeared; set at registration.
    since: str | None = None
    backtest: dict[str, object] | None = None  # models.business.SegmentBacktest.as_dict()
    # Share of all customers' lifetime value (revenue to date): what the pages show in place of
    # the MRR share when nobody holds a subscription (a retailer's invoices make no MRR, and every
    # segment read "0% of MRR"). None in models profiled before it.
    ltv_share: float | None = None

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def _column(features: pd.DataFrame, name: str) -> pd.Series:
    """A business column when present, zeros otherwise (generic data has no MRR)."""
    return features[name] if name in features else pd.Series(0.0, index=features.index)


def distinctions(
    Z: np.ndarray, names: list[str], members: np.ndarray, spread: np.ndarray | None = None
) -> list[Distinction]:
    """Standardised mean differences on the preprocessed scale, strongest first (both signs).

    ``spread`` is ``Z.std(axis=0)``, computed here unless the caller, profiling every segment of
    the same ``Z``, passes it in.
    """
    inside, outside = Z[members], Z[~members]
    if len(outside) == 0:
        return []
    pooled = np.sqrt((inside.var(axis=0) + outside.var(axis=0)) / 2)
    # A feature constant within both groups (a flag that splits them exactly) has no pooled spread;
    # the floor, a tenth of the feature's spread over everyone, keeps its effect large but finite.
    floor = MIN_SPREAD_SHARE * (Z.std(axis=0) if spread is None else spread)
    pooled = np.maximum(pooled, floor) + 1e-12
    effects = (inside.mean(axis=0) - outside.mean(axis=0)) / pooled
    order = np.argsort(-np.abs(effects))
    return [
        Distinction(
            names[i], float(effects[i]), float(inside[:, i].mean()), float(outside[:, i].mean())
        )
        for i in order
    ]


def build_profiles(
    features: pd.DataFrame,
    customer_ids: pd.Series,
    labels: np.ndarray,
    is_outlier: np.ndarray,
    typicality: np.ndarray,
    Z: np.ndarray,
    model_features: list[str],
    n_segments: int,
    described_features: list[str] | None = None,
    effects: list[list[Distinction]] | None = None,
) -> list[SegmentProfile]:
    """One profile per segment; ``Z`` is the preprocessed matrix with ``model_features`` columns.

    Typical ranges and medians cover ``described_features`` (default ``model_features``): every
    feature an explanation may cite, including those the preprocessing dropped as constant.
    ``effects`` are ``segment_effects`` of the same matrix, when the caller has them already.
    ``typicality`` ranks the example customers: the segment's most typical members (the
    segmenter's ``placement_and_typicality_from_matrix``), never an outlier before a member. They
    were ranked by membership probability, which is near 1 for almost everyone on well separated
    segments, outliers included: a segment's first example was a customer its page calls
    "unlike the members of every segment" (a product manager's walkthrough).
    """
    described = described_features or model_features
    total_mrr = float(_column(features, "mrr").sum()) or 1.0
    total_ltv = float(_column(features, "ltv").sum()) or 1.0
    # Every effect, strongest first: the profile keeps the strongest, the name reads them all.
    if effects is None:
        effects = segment_effects(Z, model_features, labels, n_segments)
    profiles = []
    for segment in range(n_segments):
        members = labels == segment
        block = features[members]
        mrr = _column(block, "mrr")
        growth = _column(block, "mrr_growth_90d")
        # outliers last whatever their score; ties (a model without typicality) keep row order
        ranked = np.lexsort((-typicality[members], is_outlier[members]))[:N_EXAMPLES]
        if not members.any():
            block = features.iloc[:0]
        low, high = TYPICAL_QUANTILES
        profiles.append(
            SegmentProfile(
                segment_id=segment,
                name="",
                size=int(members.sum()),
                share=float(members.mean()),
                mrr_total=float(mrr.sum()),
                mrr_mean=float(mrr.mean()) if len(block) else 0.0,
                mrr_share=float(mrr.sum() / total_mrr),
                ltv_share=float(_column(block, "ltv").sum() / total_ltv),
                ltv_median=held_median(_column(block, "ltv")) if len(block) else 0.0,
                tenure_median_days=held_median(_column(block, "tenure_days"))
                if len(block)
                else 0.0,
                churn_rate=None,
                mrr_lost_90d=float((-growth).clip(lower=0).sum()),
                outlier_share=float(is_outlier[members].mean()) if members.any() else 0.0,
                distinguishing=effects[segment][:N_DISTINGUISHING],
                # Values some member holds (the nearest at or beyond each quartile), never one
                # between two customers: a count reads "551 to 1,379 events", not "551.25 to
                # 1,376.25".
                typical_ranges={
                    name: [
                        float(block[name].quantile(low, interpolation="lower")),
                        float(block[name].quantile(high, interpolation="higher")),
                    ]
                    for name in described
                },
                medians={name: held_median(block[name]) for name in described},
                positive_shares={name: float((block[name] > 0).mean()) for name in described}
                if len(block)
                else {},
                means={name: float(block[name].mean()) for name in described} if len(block) else {},
                example_customers=[str(c) for c in customer_ids[members].iloc[ranked]],
            )
        )
    overall = overall_medians(features, described)
    shares = shares_with_any(features, profiles)
    names = name_segments(effects, [profile.medians for profile in profiles], overall, shares)
    for profile, name in zip(profiles, names, strict=True):
        profile.name = name
    return profiles


def segment_effects(
    Z: np.ndarray, names: list[str], labels: np.ndarray, n_segments: int
) -> list[list[Distinction]]:
    """Per segment, every feature's ``distinctions``, strongest first."""
    spread = Z.std(axis=0)
    return [distinctions(Z, names, labels == segment, spread) for segment in range(n_segments)]


def held_median(values: pd.Series) -> float:
    """The lower median: a value some customer holds ("169 seats", never "169.5 seats" between
    two members), as the population's quantile grid and the typical ranges are. NaN when empty."""
    return float(values.quantile(0.5, interpolation="lower")) if len(values) else float("nan")


def overall_medians(features: pd.DataFrame, described: list[str]) -> dict[str, float]:
    return {name: held_median(features[name]) for name in described if name in features}


def held_phrases(
    features: pd.DataFrame,
    effects: list[list[Distinction]],
    profiles: list[SegmentProfile],
) -> list[frozenset[str]]:
    """Per segment, the phrases its data still supports (``naming.phrases_held``, from the
    ``segment_effects`` its profiles were built from): what a name kept from an earlier version
    may say."""
    described = list(profiles[0].medians) if profiles else []
    overall = overall_medians(features, described)
    shares = shares_with_any(features, profiles)
    return [
        phrases_held(segment, profile.medians, overall, shares=segment_shares)
        for segment, profile, segment_shares in zip(effects, profiles, shares, strict=True)
    ]


def shares_with_any(
    features: pd.DataFrame, profiles: list[SegmentProfile]
) -> list[dict[str, tuple[float, float]]]:
    """Per segment, per feature it records: (the share of its customers above 0, the share of
    every customer's), what a name says "most have" by (``naming.Shares``)."""
    everyone = {
        name: float((features[name] > 0).mean())
        for name in (profiles[0].positive_shares if profiles else {})
        if name in features
    }
    return [
        {
            name: (share, everyone[name])
            for name, share in profile.positive_shares.items()
            if name in everyone
        }
        for profile in profiles
    ]


def attach_backtest(profiles: list[SegmentProfile], backtests: list[SegmentBacktest]) -> None:
    """Store each segment's backtested business metrics; its churn rate is the backtested one."""
    for profile, backtest in zip(profiles, backtests, strict=True):
        document = backtest.as_dict()
        # the profile is the segment: its position would sit beside its public id and, once ids
        # are traced across versions, disagree with it (``--json`` output, ``profiles.json``)
        del document["segment"]
        profile.backtest = document
        profile.churn_rate = None if backtest.churn is None else backtest.churn.rate


def attach_drivers(profiles: list[SegmentProfile], drivers: dict[int, dict[str, float]]) -> None:
    """Store each segment's strongest drivers (mean |SHAP|, largest first) in its profile."""
    for profile in profiles:
        ranked = sorted(drivers.get(profile.segment_id, {}).items(), key=lambda item: -item[1])
        profile.drivers = [Driver(name, value) for name, value in ranked[:N_DRIVERS]]
