"""The clustering families: one contract for all, and a new family needs nothing but its class."""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest
from sklearn.cluster import AgglomerativeClustering
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score

from models.assigners import CentroidAssigner, DiscriminantAssigner
from models.candidates import CandidateScore, FittedCandidate, relabel, size_order
from models.families import FAMILIES, ClusteringFamily, KMeansFamily
from models.families.kmeans import discriminant_refinement
from models.segmenter import CustomerSegmenter, _moved_share, keeps_segments
from models.selection import candidate_grid

COMMON_CRITERIA = {"silhouette", "calinski_harabasz", "stability"}


@pytest.fixture(scope="module")
def blobs() -> tuple[np.ndarray, np.ndarray]:
    return make_blobs(n_samples=[300, 200, 100], centers=[[0, 0], [8, 0], [0, 8]], random_state=0)


def test_names_and_criteria_do_not_collide():
    # Both end up in metric keys (candidate.<name>.<criterion>) and table columns.
    names = [family.name for family in FAMILIES]
    criteria = [c for family in FAMILIES for c in family.criteria]
    assert len(set(names)) == len(names)
    assert len(set(criteria)) == len(criteria)
    assert not COMMON_CRITERIA & set(criteria)
    assert sum(family.is_fallback for family in FAMILIES) == 1
    # each named in words for people (a gate's threshold reads "5 k-means segments")
    assert all(family.words for family in FAMILIES)
    assert len({family.words for family in FAMILIES}) == len(FAMILIES)


def test_every_family_written_is_listed():
    """A family class written and not added to ``FAMILIES`` failed no test: the others walk the
    families listed (a newcomer's review of `docs/architecture.md`)."""
    import importlib
    import inspect
    import pkgutil

    import models.families

    listed = {type(family) for family in FAMILIES}
    written = set()
    for info in pkgutil.iter_modules(models.families.__path__):
        module = importlib.import_module(f"models.families.{info.name}")
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, ClusteringFamily) and not inspect.isabstract(cls):
                written.add(cls)
    assert written == listed


@pytest.mark.parametrize("family", FAMILIES, ids=lambda family: family.name)
def test_every_family_keeps_the_contract(family: ClusteringFamily, blobs):
    X, y = blobs
    candidate = family.grid(len(X), 3, X.shape[1])[-1]
    fitted = candidate.fit(X, random_state=0)
    assert fitted.candidate == candidate
    sizes = np.bincount(fitted.labels[fitted.labels >= 0])
    assert (np.diff(sizes) <= 0).all(), "labels are ordered by size, largest first"
    assert adjusted_rand_score(y, fitted.labels) > 0.9
    assert set(fitted.criteria) <= set(family.criteria)
    assert set(family.measure(fitted, X, 0)) <= set(family.criteria)
    assigner = fitted.assigner
    members = fitted.labels >= 0
    assert (assigner.predict(X)[members] == fitted.labels[members]).mean() >= 0.99
    proba, outlier_score = assigner.proba_and_outlier_score(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert (proba.argmax(axis=1) == assigner.predict(X)).all()
    np.testing.assert_allclose(outlier_score, assigner.outlier_score(X))
    assert (outlier_score > assigner.threshold_).mean() <= 0.02


@pytest.mark.parametrize("family", FAMILIES, ids=lambda family: family.name)
def test_a_candidate_survives_pickling(family: ClusteringFamily):
    candidate = family.candidate(4)
    assert pickle.loads(pickle.dumps(candidate)) == candidate
    assert candidate.name == f"{family.name}({family.setting_name}=4)"


def test_a_score_lists_what_was_measured_and_flattens_its_criteria():
    score = CandidateScore("kmeans(k=3)", "kmeans", 3, 0.2, 0.0, 0.5, 900.0)
    score.criteria = {"prediction_strength": None}
    assert score.measured() == {"silhouette": 0.5, "calinski_harabasz": 900.0}
    score.criteria["prediction_strength"], score.stability = 0.95, 0.99
    assert score.measured()["prediction_strength"] == 0.95
    assert score.measured()["stability"] == 0.99
    row = score.as_dict()
    assert "criteria" not in row
    assert list(row).index("prediction_strength") == list(row).index("calinski_harabasz") + 1


@dataclass(frozen=True)
class WardFamily(ClusteringFamily):
    """A family the project does not have, to show that one class is all a family needs (named
    apart from any real family one might add: `docs/architecture.md`)."""

    name: ClassVar[str] = "demo_ward"
    words: ClassVar[str] = "Ward"
    setting_name: ClassVar[str] = "k"
    criteria: ClassVar[tuple[str, ...]] = ("merge_height",)

    def settings(self, n_rows: int, max_segments: int, n_columns: int) -> list[int]:
        return list(range(2, max_segments + 1))

    def fit(self, setting: int, Z: np.ndarray, random_state: int) -> FittedCandidate:
        model = AgglomerativeClustering(setting, compute_distances=True).fit(Z)
        labels = relabel(model.labels_, size_order(model.labels_))
        centers = np.array([Z[labels == s].mean(axis=0) for s in range(setting)])
        height = {"merge_height": float(model.distances_[-setting + 1])}
        return FittedCandidate(
            self.candidate(setting), labels, CentroidAssigner(centers, Z, labels), height
        )

    def favourite(self, members: list[int], scores: list[CandidateScore]) -> int:
        return max(members, key=lambda i: scores[i].criterion("merge_height") or 0.0)


def test_a_new_family_joins_the_grid_and_the_selection_without_other_changes(blobs):
    X, y = blobs
    grid = candidate_grid(len(X), 4, X.shape[1], (*FAMILIES, WardFamily()))
    assert [c.name for c in grid if c.family == WardFamily()] == [
        "demo_ward(k=2)",
        "demo_ward(k=3)",
        "demo_ward(k=4)",
    ]
    candidates = [WardFamily().candidate(3), KMeansFamily().candidate(3)]
    frame = pd.DataFrame(X, columns=["a", "b"])
    model = CustomerSegmenter(candidates=candidates, n_resamples=1).fit(frame)
    ward = next(s for s in model.candidate_scores_ if s.algorithm == "demo_ward")
    assert ward.family_best
    assert ward.stability is not None
    assert "merge_height" in ward.measured()
    assert adjusted_rand_score(y, model.labels_) > 0.9


def _wide_within_segments(seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Five segments whose customers spread wider along one feature (c) than the gaps between
    segment centres in the others: k-means cuts along c."""
    rng = np.random.default_rng(seed)
    centres = np.array([[0, 0, 0], [3, 0, 0], [0, 3, 0], [3, 3, 0], [1.5, 1.5, 3]], float)
    truth = rng.integers(0, 5, 2000)
    values = centres[truth] + rng.normal(0, 1, (2000, 3)) * [0.5, 0.5, 1.6]
    return pd.DataFrame(values, columns=["a", "b", "c"]), truth


@pytest.mark.parametrize("seed", [0, 1])
def test_discriminant_refinement_recovers_segments_kmeans_cuts_across(seed: int):
    frame, truth = _wide_within_segments(seed)
    Z = frame.to_numpy()
    kmeans = KMeansFamily().fit(5, Z, random_state=0)
    assert adjusted_rand_score(truth, kmeans.labels) < 0.8
    labels, projection = discriminant_refinement(Z, kmeans.labels)
    assert adjusted_rand_score(truth, labels) > 0.93
    assert projection.shape == (3, 3)  # k - 1 = 4 directions, at most the 3 columns


def test_the_segmenter_serves_the_refined_segments_and_reproduces_them():
    frame, truth = _wide_within_segments(0)
    model = CustomerSegmenter(candidates=[KMeansFamily().candidate(5)], n_resamples=1).fit(frame)
    assert isinstance(model.assigner_, DiscriminantAssigner)
    assert adjusted_rand_score(truth, model.labels_) > 0.93
    assert (model.predict(frame) == model.labels_).all()
    proba = model.predict_proba(frame)
    assert np.allclose(proba.sum(axis=1), 1.0)
    assert (proba.argmax(axis=1) == model.labels_).all()
    assert model.is_outlier_.mean() <= 0.02
    assert 0.0 < model.finish_moved_share_ < 0.5


def test_far_out_along_a_direction_no_segment_differs_in_is_an_outlier(blobs):
    X, _ = blobs
    Z = np.c_[X, np.random.default_rng(0).normal(0, 1, len(X))]  # c: the same in every segment
    labels = KMeansFamily().fit(3, Z, random_state=0).labels
    refined, projection = discriminant_refinement(Z, labels)
    assert projection.shape == (3, 2)  # the two directions that separate three segments
    assigner = DiscriminantAssigner(projection, Z, refined)
    assert (assigner.predict(Z) == refined).all()
    far = np.array([[0.0, 0.0, 40.0]])  # a typical first segment member but for c
    assert assigner.outlier_score(far)[0] > assigner.threshold_
    proba, score = assigner.proba_and_outlier_score(far)
    assert np.isclose(proba.sum(), 1.0)
    assert score[0] == assigner.outlier_score(far)[0]


@dataclass(frozen=True)
class MergingFinish(KMeansFamily):
    """A finish that breaks its promise: it merges every segment into one."""

    name: ClassVar[str] = "merging"

    def finish(self, fitted: FittedCandidate, Z: np.ndarray, random_state: int) -> FittedCandidate:
        merged = np.zeros_like(fitted.labels)
        one_centre = CentroidAssigner(Z.mean(axis=0, keepdims=True), Z, merged)
        return FittedCandidate(fitted.candidate, merged, one_centre, fitted.criteria)


def test_a_finish_that_changes_the_number_of_segments_is_not_kept(blobs):
    X, y = blobs
    frame = pd.DataFrame(X, columns=["a", "b"])
    model = CustomerSegmenter(candidates=[MergingFinish().candidate(3)], n_resamples=1).fit(frame)
    assert model.n_segments_ == 3
    assert adjusted_rand_score(y, model.labels_) > 0.9
    assert model.finish_moved_share_ == 0.0
    assert model.finish_discarded_


def test_segments_with_no_spread_keep_their_kmeans_segments():
    # Every customer is one of three profiles: the within-segment covariance is zero, and the
    # discriminant cannot be fitted; the k-means segments stand (this raised before).
    frame = pd.DataFrame({"a": np.repeat([1.0, 2.0, 3.0], 40), "b": np.repeat([10.0, 0, 5], 40)})
    assert discriminant_refinement(frame.to_numpy(), np.repeat([0, 1, 2], 40)) is None
    model = CustomerSegmenter(candidates=[KMeansFamily().candidate(3)], n_resamples=1).fit(frame)
    assert model.n_segments_ == 3
    assert isinstance(model.assigner_, CentroidAssigner)
    assert not model.finish_discarded_


@pytest.mark.parametrize("seed", [9, 16, 26])
def test_refinement_labels_are_where_its_assigner_places_them_even_when_cut_short(seed: int):
    # Overlapping blobs, refinement stopped after a few rounds: k-means stopping at a tolerance
    # left a few customers nearer another centre than their own on these (seeds found so).
    Z, _ = make_blobs(1500, n_features=4, centers=5, cluster_std=2.5, random_state=seed)
    start = KMeansFamily().fit(5, Z, random_state=0).labels
    for rounds in (1, 2, 3):
        labels, projection = discriminant_refinement(Z, start, rounds=rounds)
        assert (DiscriminantAssigner(projection, Z, labels).predict(Z) == labels).all()


def test_the_refit_on_more_rows_is_refined_too():
    # Fewer rows in the selection sample than in the data: the chosen k is refitted on all of
    # them, then refined.
    frame, truth = _wide_within_segments(3)
    model = CustomerSegmenter(
        candidates=[KMeansFamily().candidate(5)], n_resamples=1, selection_sample=500
    ).fit(frame)
    assert isinstance(model.assigner_, DiscriminantAssigner)
    assert adjusted_rand_score(truth, model.labels_) > 0.93


def test_moved_share_matches_segments_one_to_one():
    before = np.array([0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2])
    after = np.array([0, 0, 0, 0, 0, 0, 0, 1, 2, 2, 2, 2])
    assert _moved_share(before, after) == pytest.approx(3 / 12)
    assert _moved_share(before, (before + 1) % 3) == 0.0  # renumbered, nobody moved


def test_a_finish_leaving_a_tiny_segment_is_discarded():
    before = np.repeat([0, 1, 2], 40)
    after = before.copy()
    after[:39] = 1  # segment 0 keeps one customer
    assert not keeps_segments(before, after, 0.01)
    assert keeps_segments(before, np.roll(before, 3), 0.01)


def test_a_mixture_whose_bic_still_falls_at_the_most_components_is_not_proposed():
    """The lowest BIC at the largest k tried says only that more components fit better; at an
    inner k it is the mixture's proposal."""
    from models.families.gaussian_mixture import GaussianMixtureFamily

    def scores(bics: list[float]) -> list[CandidateScore]:
        return [
            CandidateScore(f"gmm(k={k})", "gmm", k, 0.1, 0.0, 0.3, 100.0, {"bic": bic})
            for k, bic in enumerate(bics, start=2)
        ]

    family = GaussianMixtureFamily()
    members = [0, 1, 2, 3]
    falling = scores([300.0, 200.0, 150.0, 100.0])
    assert family.favourite(members, falling) == 3
    assert family.propose(members, falling, lambda i: None) is None
    inner = scores([300.0, 200.0, 100.0, 150.0])
    assert family.propose(members, inner, lambda i: None) == 2

    # with nothing else within the limits, the declined favourite still competes: better than a
    # fallback among candidates that break them
    from models.selection import _family_best

    fitted = [
        FittedCandidate(family.candidate(k), np.arange(k), None, {"bic": bic})
        for k, bic in zip(range(2, 6), [300.0, 200.0, 150.0, 100.0], strict=True)
    ]
    for score in falling:
        score.admissible = True
    assert _family_best(fitted, falling, lambda i: None) == [3]
