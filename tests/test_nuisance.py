"""An independent 0/1 column must not create segments: the other features have to agree.

The company is the tests' own generated one; the flag is drawn at random, independent of persona,
like an annual-plan flag or a country dummy that says nothing about behaviour.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import somersd
from sklearn.metrics import adjusted_rand_score

from feature_store.features import compute_customer_features
from feature_store.registry import FEATURE_NAMES
from feature_store.timeutil import parse_as_of
from models.preprocessing import FeaturePreprocessor, somers_d
from models.segmenter import CustomerSegmenter


@pytest.fixture(scope="module")
def active_features(demo_company):
    events = {"billing": demo_company.billing.to_pandas(), "usage": demo_company.usage.to_pandas()}
    features = compute_customer_features(events, parse_as_of("2026-06-30"))
    active = features[features["is_canceled"] == 0].reset_index(drop=True)
    return active[[name for name in FEATURE_NAMES if name != "is_canceled"]]


def with_random_flags(features, seed: int):
    rng = np.random.default_rng(seed)
    return features.assign(
        random_flag=(rng.random(len(features)) < 0.3).astype(float),
        random_country_dummy=(rng.random(len(features)) < 0.5).astype(float),
    )


def test_independent_flags_leave_the_segments_unchanged(active_features):
    plain = CustomerSegmenter(random_state=0).fit(active_features)
    flagged = CustomerSegmenter(random_state=0).fit(with_random_flags(active_features, seed=1))
    assert adjusted_rand_score(plain.labels_, flagged.labels_) >= 0.95
    weights = dict(
        zip(
            flagged.preprocessor_.feature_names_in_,
            flagged.preprocessor_.weights_,
            strict=True,
        )
    )
    assert weights["random_flag"] < 0.3
    assert weights["random_country_dummy"] < 0.3


def test_without_agreement_weights_the_same_flags_split_segments(active_features):
    """The mechanism is what holds the segments: range scaling alone lets the flags split them."""
    flagged = with_random_flags(active_features, seed=1)
    plain = CustomerSegmenter(random_state=0, weighting="none").fit(active_features)
    split = CustomerSegmenter(random_state=0, weighting="none").fit(flagged)
    assert adjusted_rand_score(plain.labels_, split.labels_) < 0.95


def test_somers_d_matches_scipy_and_its_null_spread():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 3, 400).astype(float)
    y = np.round(x + rng.normal(size=400), 1)  # ties on both sides
    d, _ = somers_d(x, y)
    assert d == pytest.approx(somersd(x, y).statistic)
    flag = (rng.random((200, 1000)) < 0.1).astype(float)
    null = [somers_d(f, rng.random(1000)) for f in flag]
    spread = np.std([d for d, _ in null])
    assert np.mean([se for _, se in null]) == pytest.approx(spread, rel=0.2)


def test_a_rare_flag_the_other_columns_back_keeps_its_weight():
    """Like a complaints flag: set for most customers of one group and a few elsewhere. The other
    columns tell its customers apart about as well as they tell their own values apart, so it
    weighs as a feature; an independent flag of the same rarity weighs next to nothing."""
    rng = np.random.default_rng(3)
    group = rng.random(2000) < 0.1
    dense = rng.normal(size=(2000, 4)) + 3.0 * group[:, None]
    backed = np.where(group, rng.random(2000) < 0.7, rng.random(2000) < 0.02)
    independent = rng.random(2000) < backed.mean()
    X = pd.DataFrame(dense, columns=list("abcd")).assign(
        backed=backed.astype(float), independent=independent.astype(float)
    )
    weights = dict(zip(X.columns, FeaturePreprocessor().fit(X).weights_, strict=True))
    assert weights["backed"] == 1.0
    assert weights["independent"] < 0.2
