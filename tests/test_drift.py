"""Drift measures on distributions whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from models.drift import (
    PlacementSummary,
    drift_report,
    feature_psi,
    normalised_wasserstein,
    psi_from_shares,
)

rng = np.random.default_rng(0)


def test_psi_by_hand():
    # (0.6 - 0.5) ln(0.6/0.5) + (0.4 - 0.5) ln(0.4/0.5) = 0.0182 + 0.0223
    assert psi_from_shares(np.array([0.5, 0.5]), np.array([0.6, 0.4])) == pytest.approx(
        0.1 * np.log(1.2) + 0.1 * np.log(1.25)
    )


def test_same_distribution_does_not_drift():
    reference, current = rng.normal(size=5000), rng.normal(size=5000)
    assert feature_psi(reference, current) < 0.02
    assert normalised_wasserstein(reference, current) < 0.05


def test_a_shift_of_half_the_spread_is_acted_on():
    reference = rng.normal(size=5000)
    iqr = 1.349  # of a standard normal
    shifted = reference + 0.5 * iqr
    assert normalised_wasserstein(reference, shifted) == pytest.approx(0.5, abs=0.02)
    assert feature_psi(reference, shifted) > 0.25


def test_a_flag_uses_its_own_values_as_bins():
    reference = (rng.random(4000) < 0.3).astype(float)
    current = (rng.random(4000) < 0.6).astype(float)
    # shares 0.7/0.3 -> 0.4/0.6: PSI = 0.3 ln(0.7/0.4) + 0.3 ln(0.6/0.3), about 0.38
    assert feature_psi(reference, current) == pytest.approx(0.38, abs=0.05)


def test_a_zero_inflated_column_keeps_its_zeros_apart():
    """Deciles all 0 (4% of customers with a failed payment): zeros and the rest were one bin,
    so 4% -> 11% read PSI 0; and a count nobody had in training (all 0) read 0 whatever came."""
    reference = np.where(rng.random(5000) < 0.04, rng.uniform(0.05, 1, 5000), 0.0)
    current = np.where(rng.random(5000) < 0.11, rng.uniform(0.05, 1, 5000), 0.0)
    by_hand = psi_from_shares(np.array([0.96, 0.04]), np.array([0.89, 0.11]))
    assert feature_psi(reference, current) == pytest.approx(by_hand, abs=0.02)
    assert feature_psi(reference, current) > 0.05
    assert feature_psi(reference, reference[::-1]) == 0.0
    never = np.zeros(5000)
    assert feature_psi(never, np.where(rng.random(5000) < 0.11, 1.0, 0.0)) > 0.25
    assert feature_psi(never, never) == 0.0


def test_a_small_reference_of_one_distribution_does_not_read_as_drift():
    """A decile falling on one reference customer's value (every decile of 10n + 1 customers) is
    not a bin of its own: a bin of 1/n in training and ~0 now made two samples of one normal
    distribution read PSI 0.23 on average at 201 customers (0.09 is the sampling noise)."""
    local = np.random.default_rng(7)
    pairs = [feature_psi(local.normal(size=201), local.normal(size=201)) for _ in range(20)]
    assert np.mean(pairs) < 0.13


def test_samples_of_the_training_customers_themselves_are_not_drift_whatever_their_size():
    """A heavy-tailed column's Wasserstein distance over its IQR is large between two samples of
    one distribution (900 of a model's own training customers read 0.3-0.9 on `events_90d`, 81
    of them 1.2-3.1: "act" every time, an ML engineer's walkthrough). Levels are judged on what
    each score exceeds sampling noise by; a real shift is still acted on."""
    from models.drift import feature_drift

    local = np.random.default_rng(3)
    # a mixture of personas: most customers quiet, a few heavy, so the IQR is small
    heavy = np.r_[local.lognormal(2, 0.5, 2400), local.lognormal(6, 1.0, 600)]
    reference = np.column_stack([heavy, local.normal(size=3000)])
    names = ["events_90d", "tenure"]
    for size in (81, 900):
        raw = [normalised_wasserstein(heavy, local.choice(heavy, size)) for _ in range(5)]
        assert max(raw) > 0.25  # what read as "act" before
        for _ in range(5):
            sample = reference[local.choice(len(reference), size, replace=False)]
            assert {f.level for f in feature_drift(names, reference, sample)} == {"ok"}, size
    shifted = reference[local.choice(len(reference), 900, replace=False)].copy()
    shifted[:, 0] *= 1.5
    events, tenure = feature_drift(names, reference, shifted)
    assert events.level == "act"
    assert events.wasserstein > events.wasserstein_noise
    assert tenure.level == "ok"


def test_values_new_since_training_fall_in_bins_of_their_own():
    flag = np.r_[np.zeros(900), np.ones(100)]
    assert feature_psi(flag, flag + 2) > 1.0  # a value never seen: all mass outside both bins


def test_report_levels_segment_shares_and_margins():
    names = ["a", "b"]
    reference = rng.normal(size=(1000, 2))
    current = reference.copy()
    current[:, 1] += 2.0
    before = PlacementSummary(np.repeat([0, 1], 500), np.zeros(1000, bool), np.ones(1000))
    after = PlacementSummary(
        np.repeat([0, 1], [900, 100]), np.r_[np.ones(50, bool), np.zeros(950, bool)], np.zeros(1000)
    )
    report = drift_report(names, reference, current, before, after, {4: "x", 7: "y"})
    assert [f.level for f in report.features] == ["ok", "act"]
    assert [s.segment_id for s in report.segments] == [4, 7]
    assert report.segments[0].current_share == pytest.approx(0.9)
    assert report.segment_level == "act"
    assert report.outlier_share == pytest.approx(0.05)
    assert report.low_margin_share == 1.0
    assert report.reference_low_margin_share == 0.0
    assert report.as_dict()["level"] == "act"


def test_features_to_act_on_are_listed_first_whichever_score_decided():
    """Sorted by the distance alone, `contractions_365d` at "act" by its PSI (0.804) was listed
    below six features at "warn" (an ML engineer's walkthrough)."""
    from models.drift import FeatureDrift, by_urgency

    features = [
        FeatureDrift("mrr", 0.15, 0.40, "warn"),
        FeatureDrift("contractions_365d", 0.804, 0.05, "act"),
        FeatureDrift("seats", 0.01, 0.02, "ok"),
        FeatureDrift("tenure_days", 0.12, 0.30, "warn"),
    ]
    assert [f.feature for f in by_urgency(features)] == [
        "contractions_365d",
        "mrr",
        "tenure_days",
        "seats",
    ]


def test_a_snapshots_as_of_is_said_as_every_stamp_is_and_an_odd_folder_as_named(tmp_path):
    """`segments drift` said "as of 2026-07-08T000000", the folder's path-safe name; a folder
    named by hand must not turn that into a traceback."""
    import pandas as pd

    from feature_store.layout import StoreLayout
    from pipelines.monitor import current_vectors

    layout = StoreLayout(tmp_path / "home")
    frame = pd.DataFrame({"customer_id": ["c1"], "mrr": [1.0]})
    for name in ("as_of=2026-07-01T000000", "as_of=2026-07-02"):
        (layout.snapshots_dir / name).mkdir(parents=True)
        frame.to_parquet(layout.snapshots_dir / name / "features.parquet")
        expected = "2026-07-01T00:00:00Z" if name.endswith("T000000") else "2026-07-02"
        assert current_vectors(layout, "snapshot").as_of == expected
