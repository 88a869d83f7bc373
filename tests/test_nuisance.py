"""An independent 0/1 column must not create segments: the other features have to agree.

The company is the tests' own generated one; the flag is drawn at random, independent of persona,
like an annual-plan flag or a country dummy that says nothing about behaviour.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from feature_store.features import compute_customer_features
from feature_store.registry import FEATURE_NAMES
from feature_store.timeutil import parse_as_of
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
