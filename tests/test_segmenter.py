"""The segmentation estimator on data whose structure is known."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score

from models.naming import name_segments
from models.preprocessing import FeaturePreprocessor
from models.profiles import Distinction
from models.segmenter import CustomerSegmenter


@pytest.fixture(scope="module")
def blobs():
    X, y = make_blobs(
        n_samples=[400, 250, 150, 100],
        centers=[[0, 0, 0], [8, 0, 0], [0, 8, 0], [0, 0, 8]],
        cluster_std=1.0,
        random_state=0,
    )
    frame = pd.DataFrame(X, columns=["a", "b", "c"]).assign(constant=1.0)
    return frame, y


@pytest.fixture(scope="module")
def fitted(blobs):
    frame, _ = blobs
    return CustomerSegmenter(random_state=0).fit(frame)


def test_finds_the_planted_segments_without_being_told_how_many(fitted, blobs):
    _, y = blobs
    assert fitted.n_segments_ == 4
    assert adjusted_rand_score(y, fitted.labels_) > 0.95
    assert sum(score.chosen for score in fitted.candidate_scores_) == 1


def test_predict_reproduces_the_fitted_labels(fitted, blobs):
    frame, _ = blobs
    members = ~fitted.is_outlier_
    agreement = (fitted.predict(frame)[members] == fitted.labels_[members]).mean()
    assert agreement >= 0.99


def test_probabilities_are_a_distribution_over_segments(fitted, blobs):
    frame, _ = blobs
    proba = fitted.predict_proba(frame)
    assert proba.shape == (len(frame), fitted.n_segments_)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert (proba.argmax(axis=1) == fitted.predict(frame)).all()


def test_same_data_and_seed_give_the_same_segments(fitted, blobs):
    frame, _ = blobs
    again = CustomerSegmenter(random_state=0).fit(frame)
    assert (again.labels_ == fitted.labels_).all()


def test_far_away_customers_are_outliers_but_keep_a_segment(fitted):
    far = pd.DataFrame({"a": [60.0], "b": [60.0], "c": [-60.0], "constant": [1.0]})
    assert fitted.outlier_flags(far)[0]
    assert 0 <= fitted.predict(far)[0] < fitted.n_segments_


def test_predict_names_missing_columns(fitted, blobs):
    frame, _ = blobs
    with pytest.raises(ValueError, match="missing feature column"):
        fitted.predict(frame.drop(columns=["b"]))


def test_constant_columns_are_dropped_and_tails_compressed():
    frame = pd.DataFrame(
        {"mrr": [0, 10, 100, 1000, 10000.0], "is_annual": [0, 1, 0, 1, 0], "flat": [3.0] * 5}
    )
    pre = FeaturePreprocessor(clip_quantile=0).fit(frame)
    assert list(pre.get_feature_names_out()) == ["mrr", "is_annual"]
    Z = pre.transform(frame)
    assert np.allclose(Z.mean(axis=0), 0)
    assert np.allclose(Z.std(axis=0), 1)
    # log1p makes the MRR ladder evenly spaced: the steps are equal after the first.
    steps = np.diff(Z[1:, 0])
    assert np.allclose(steps, steps[0], rtol=0.05)


def test_names_are_unique_and_follow_the_strongest_differences():
    effects = [
        [Distinction("mrr", 2.0, 0, 0), Distinction("api_share_30d", 1.5, 0, 0)],
        [
            Distinction("mrr", 2.0, 0, 0),
            Distinction("api_share_30d", 1.5, 0, 0),
            Distinction("is_annual", 1.0, 0, 0),
        ],
        [Distinction("usage_trend", -1.2, 0, 0)],
        [Distinction("seats", 0.1, 0, 0)],
    ]
    names = name_segments(effects)
    assert names[0] == "High MRR · Heavy API use"
    assert names[2] == "Usage collapsing"
    assert names[3] == "Typical customers"
    assert len(set(names)) == len(names)
