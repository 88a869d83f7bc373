"""Measures of a candidate segmentation, shared by the selection rule and the families.

Each takes the preprocessed matrix and labels (``-1`` for unassigned, left out) or a fitted
candidate; none knows which family produced them.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import (
    adjusted_rand_score,
    calinski_harabasz_score,
    pairwise_distances,
    silhouette_samples,
)

from models.candidates import Candidate, FittedCandidate

SILHOUETTE_SAMPLE = 2000


def silhouette_rows(n_rows: int, random_state: int) -> np.ndarray:
    """The rows the silhouette of a candidate that assigns every row is measured on."""
    rows = np.arange(n_rows)
    if n_rows > SILHOUETTE_SAMPLE:
        rows = np.random.default_rng(random_state).choice(rows, SILHOUETTE_SAMPLE, replace=False)
    return rows


def shared_distances(Z: np.ndarray, random_state: int) -> tuple[np.ndarray, np.ndarray]:
    """``silhouette_rows`` and their pairwise distances, computed once for all the candidates
    of a selection: most assign every row, so they are all measured on the same customers."""
    rows = silhouette_rows(len(Z), random_state)
    return rows, pairwise_distances(Z[rows])


def silhouette(
    Z: np.ndarray,
    labels: np.ndarray,
    random_state: int,
    shared: tuple[np.ndarray, np.ndarray] | None = None,
) -> float:
    """On at most ``SILHOUETTE_SAMPLE`` rows; with ``shared`` (``shared_distances``) the same
    value from distances computed once, when every row is assigned."""
    return silhouette_with_error(Z, labels, random_state, shared)[0]


def silhouette_with_error(
    Z: np.ndarray,
    labels: np.ndarray,
    random_state: int,
    shared: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[float, float]:
    """``silhouette`` and its standard error: the silhouette is a mean over the sampled
    customers of each one's own silhouette, so its standard error is their standard deviation
    over the square root of their number. Two candidates whose silhouettes differ by less than
    a couple of these are not told apart by it."""
    members = labels >= 0
    if len(np.unique(labels[members])) < 2:
        return -1.0, 0.0
    if shared is not None and members.all():
        rows, distances = shared
        if len(np.unique(labels[rows])) < 2:
            return -1.0, 0.0
        return _mean_and_error(silhouette_samples(distances, labels[rows], metric="precomputed"))
    rng = np.random.default_rng(random_state)
    rows = np.flatnonzero(members)
    if len(rows) > SILHOUETTE_SAMPLE:
        rows = rng.choice(rows, SILHOUETTE_SAMPLE, replace=False)
    return _mean_and_error(silhouette_samples(Z[rows], labels[rows]))


def _mean_and_error(values: np.ndarray) -> tuple[float, float]:
    return float(values.mean()), float(values.std(ddof=1) / np.sqrt(len(values)))


def calinski_harabasz(Z: np.ndarray, labels: np.ndarray) -> float:
    """Between- over within-segment dispersion, each per degree of freedom (unassigned left out)."""
    members = labels >= 0
    if len(np.unique(labels[members])) < 2:
        return 0.0
    return float(calinski_harabasz_score(Z[members], labels[members]))


def separating_features(Z: np.ndarray, labels: np.ndarray, effect: float = 1.0) -> int:
    """The fewest columns that tell two neighbouring segments apart.

    For each pair of neighbouring segments, the columns whose means differ by more than
    ``effect`` pooled within-pair standard deviations (a standardised mean difference, so a
    column's scale and weight do not matter, only whether it separates); the least such count
    over the pairs. Neighbours are Gabriel neighbours of the segment centres: no third centre
    lies inside the sphere whose diameter joins the two. That leaves out pairs with a segment
    between them; with tens of columns nearly every other pair qualifies, so the count is close
    to the minimum over all pairs. Segments are groups that differ in several features at once;
    a segment cut in two along one gradient or one flag differs from its other half in few.
    Unassigned points (``-1``) are left out; fewer than two segments give 0, and so does a pair
    with a segment of one customer (it has no spread to compare with).
    """
    segments = [s for s in np.unique(labels) if s >= 0]
    if len(segments) < 2:
        return 0
    blocks = [Z[labels == s] for s in segments]
    centres = np.array([block.mean(axis=0) for block in blocks])
    # sums of squared deviations, pooled over both segments' degrees of freedom
    squares = np.array([((block - block.mean(axis=0)) ** 2).sum(axis=0) for block in blocks])
    sizes = np.array([len(block) for block in blocks])
    fewest = Z.shape[1]
    for i, j in gabriel_neighbours(centres):
        if min(sizes[i], sizes[j]) < 2:
            return 0
        pooled = (squares[i] + squares[j]) / (sizes[i] + sizes[j] - 2)
        gap = np.abs(centres[i] - centres[j])
        # a column constant in both segments separates them only if their values differ
        separates = np.where(pooled > 1e-12, gap > effect * np.sqrt(pooled), gap > 1e-9)
        fewest = min(fewest, int(separates.sum()))
    return fewest


def gabriel_neighbours(centres: np.ndarray) -> list[tuple[int, int]]:
    """Pairs of centres with no third centre inside the sphere whose diameter joins them."""
    squared = ((centres[:, None] - centres[None]) ** 2).sum(axis=-1)
    n = len(centres)
    return [
        (i, j)
        for i in range(n)
        for j in range(i + 1, n)
        if all(squared[i, m] + squared[j, m] >= squared[i, j] for m in range(n) if m not in (i, j))
    ]


def stability(fitted: FittedCandidate, Z: np.ndarray, n_resamples: int, random_state: int) -> float:
    """Mean ARI between the labels and the assignment of models refitted on 70% subsamples."""
    rng = np.random.default_rng(random_state)
    members = fitted.labels >= 0
    candidate = fitted.candidate
    agreements = []
    for resample in range(n_resamples):
        rows = rng.choice(len(Z), int(0.7 * len(Z)), replace=False)
        refit = candidate.family.refit(candidate, Z[rows], random_state + resample + 1)
        predicted = refit.assigner.predict(Z)
        agreements.append(adjusted_rand_score(fitted.labels[members], predicted[members]))
    return float(np.mean(agreements))


def reference_stability(
    candidate: Candidate, Z: np.ndarray, n_resamples: int, random_state: int
) -> float:
    """``candidate``'s stability on data with no segments: as many points as ``Z``, uniform in the
    box of its principal axes (the reference of the gap statistic, Tibshirani, Walther and
    Hastie, 2001, JRSS B 63); 0 where the candidate finds no segments there. What a candidate
    reproduces there it reproduces whatever the data, so it says nothing about segments."""
    rng = np.random.default_rng(random_state)
    centre = Z.mean(axis=0)
    _, _, axes = np.linalg.svd(Z - centre, full_matrices=False)
    projected = (Z - centre) @ axes.T
    reference = rng.uniform(projected.min(axis=0), projected.max(axis=0), projected.shape)
    reference = reference @ axes + centre
    fitted = candidate.fit(reference, random_state)
    if fitted.n_segments < 2:
        return 0.0
    return stability(fitted, reference, n_resamples, random_state)


def prediction_strength(
    candidate: Candidate, Z: np.ndarray, n_splits: int, random_state: int
) -> float:
    """How well the segments of one half of the data are predicted by a model fitted on the other.

    Tibshirani and Walther (2005, "Cluster validation by prediction strength", JCGS 14): split the
    rows in two halves, fit the candidate on each, and for every segment of one half measure the
    share of its pairs of customers that the other half's model also puts together. The score of
    a split is that share for the *worst* segment, so one segment that does not reproduce is
    enough to fail; the result is the mean over ``n_splits`` random splits, both directions.
    """
    return float(np.mean(prediction_strength_scores(candidate, Z, n_splits, random_state)))


def prediction_strength_scores(
    candidate: Candidate, Z: np.ndarray, n_splits: int, random_state: int
) -> list[float]:
    """The ``2 * n_splits`` scores ``prediction_strength`` averages (each split, both
    directions); the same halves for every candidate with the same ``random_state``."""
    rng = np.random.default_rng(random_state)
    scores = []
    for split in range(n_splits):
        order = rng.permutation(len(Z))
        halves = (order[: len(Z) // 2], order[len(Z) // 2 :])
        fits = [candidate.family.refit(candidate, Z[half], random_state + split) for half in halves]
        for test, train in ((0, 1), (1, 0)):
            predicted = fits[train].assigner.predict(Z[halves[test]])
            scores.append(worst_segment_comembership(fits[test].labels, predicted))
    return scores


def worst_segment_comembership(labels: np.ndarray, predicted: np.ndarray) -> float:
    """Over segments of ``labels`` (-1 ignored), the smallest share of member pairs that
    ``predicted`` also assigns to one segment."""
    worst = 1.0
    for segment in np.unique(labels[labels >= 0]):
        counts = np.bincount(predicted[labels == segment])
        members = counts.sum()
        if members >= 2:
            worst = min(worst, float((counts * (counts - 1)).sum() / (members * (members - 1))))
    return worst
