"""Choosing a segmentation without being told the number of segments.

The rule (measured in ``docs/segmentation.md`` on generated companies and 73 labelled sets):

1. Every family proposes its own best candidate by its own criterion. k-means: among the k >= 3
   whose **prediction strength** (Tibshirani and Walther, 2005) is at least
   ``PREDICTION_STRENGTH_THRESHOLD`` (a model fitted on one half of the customers reproduces the
   other half's segments, segment by segment), the best Calinski-Harabasz index, near-ties going
   to the finer k; when no k passes, the highest silhouette (``_kmeans_favourite``). Gaussian
   mixtures: BIC. HDBSCAN: its relative validity (a fast DBCV).
2. A proposal is admissible when it has between 2 and ``max_segments`` segments, leaves at most
   ``max_outlier_share`` unassigned, and its smallest segment holds at least ``min_segment_share``.
3. Among admissible proposals the most **stable** wins: each is refitted on subsamples and the
   mean adjusted Rand index between the refit's assignment and the original labels is its
   stability. A segmentation that resampling does not reproduce is not one to act on. Proposals
   within ``STABILITY_TOLERANCE`` of the most stable are tied (three resamples cannot tell them
   apart), and a tie goes to the one with more segments, then to the higher silhouette: stability
   rewards coarse answers (two segments are nearly always reproducible), so among equally stable
   answers the finer one says more, as in step 1.

HDBSCAN is only proposed when the sample is large enough to estimate densities in that many
dimensions (``density_is_estimable``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from sklearn.metrics import adjusted_rand_score, calinski_harabasz_score, silhouette_score

from models.candidates import Candidate, FittedCandidate, fit_candidate

SILHOUETTE_SAMPLE = 2000
# Tibshirani and Walther suggest 0.8-0.9 for well-separated clusters; the stricter end keeps
# k-means from splitting a segment in two just because the split is reproducible half the time.
PREDICTION_STRENGTH_THRESHOLD = 0.9
PREDICTION_STRENGTH_SPLITS = 4
# Relative: indices within 3% of the best are tied (5 and 6 segments of a generated company that
# differ by 1.5%); 5% would tie a split persona with the whole one (a 4.8% drop).
CALINSKI_HARABASZ_TOLERANCE = 0.03
STABILITY_TOLERANCE = 0.02
# Silverman (1986, "Density Estimation for Statistics and Data Analysis", table 4.2): the sample
# size a kernel density estimate needs in d dimensions to reach, at the mode of a normal, the
# accuracy (relative mean squared error 0.1) it has in one dimension with 4 points.
SILVERMAN_SAMPLE_SIZE = {1: 4, 2: 19, 3: 67, 4: 223, 5: 768, 6: 2790, 7: 10700, 8: 43700, 9: 187000}


@dataclass
class CandidateScore:
    """What was measured about one candidate; the comparison table users see."""

    candidate: str
    algorithm: str
    n_segments: int
    smallest_share: float
    outlier_share: float
    silhouette: float
    calinski_harabasz: float
    bic: float | None
    relative_validity: float | None
    stability: float | None = None
    prediction_strength: float | None = None
    family_best: bool = False
    admissible: bool = False
    chosen: bool = False

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def density_is_estimable(n_rows: int, n_columns: int) -> bool:
    """Whether ``n_rows`` points suffice to estimate a density in ``n_columns`` dimensions.

    HDBSCAN's segments are regions of high density. With tens of customer features the sample is
    orders of magnitude too small to estimate one (the curse of dimensionality): the "dense
    regions" it finds are clumps of near-identical customers (everyone with no usage and no
    refund), stable but not segments. Below Silverman's sample size, density candidates are not
    proposed.
    """
    return n_rows >= SILVERMAN_SAMPLE_SIZE.get(n_columns, np.inf)


def candidate_grid(n_rows: int, max_segments: int, n_columns: int) -> list[Candidate]:
    # Prediction strength fits every k on half of the rows, so k stops at half the sample.
    ks = range(2, min(max_segments, n_rows // 2) + 1)
    sizes = sorted({max(5, int(n_rows * share)) for share in (0.005, 0.01, 0.02, 0.05)})
    density = density_is_estimable(n_rows, n_columns)
    return (
        [Candidate("kmeans", k) for k in ks]
        + [Candidate("gmm", k) for k in ks]
        + [Candidate("hdbscan", size) for size in sizes if density]
    )


def silhouette(Z: np.ndarray, labels: np.ndarray, random_state: int) -> float:
    members = labels >= 0
    if len(np.unique(labels[members])) < 2:
        return -1.0
    rng = np.random.default_rng(random_state)
    rows = np.flatnonzero(members)
    if len(rows) > SILHOUETTE_SAMPLE:
        rows = rng.choice(rows, SILHOUETTE_SAMPLE, replace=False)
    return float(silhouette_score(Z[rows], labels[rows]))


def calinski_harabasz(Z: np.ndarray, labels: np.ndarray) -> float:
    """Between- over within-segment dispersion, each per degree of freedom (unassigned left out)."""
    members = labels >= 0
    if len(np.unique(labels[members])) < 2:
        return 0.0
    return float(calinski_harabasz_score(Z[members], labels[members]))


def score(fitted: FittedCandidate, Z: np.ndarray, random_state: int) -> CandidateScore:
    labels = fitted.labels
    members = labels >= 0
    sizes = np.bincount(labels[members]) if members.any() else np.array([0])
    return CandidateScore(
        candidate=fitted.candidate.name,
        algorithm=fitted.candidate.algorithm,
        n_segments=fitted.n_segments,
        smallest_share=float(sizes.min() / len(labels)),
        outlier_share=float(1 - members.mean()),
        silhouette=silhouette(Z, labels, random_state),
        calinski_harabasz=calinski_harabasz(Z, labels),
        bic=fitted.bic,
        relative_validity=fitted.relative_validity,
    )


def stability(fitted: FittedCandidate, Z: np.ndarray, n_resamples: int, random_state: int) -> float:
    """Mean ARI between the labels and the assignment of models refitted on 70% subsamples."""
    rng = np.random.default_rng(random_state)
    members = fitted.labels >= 0
    agreements = []
    for resample in range(n_resamples):
        rows = rng.choice(len(Z), int(0.7 * len(Z)), replace=False)
        refit = fit_candidate(fitted.candidate, Z[rows], random_state + resample + 1)
        predicted = refit.assigner.predict(Z)
        agreements.append(adjusted_rand_score(fitted.labels[members], predicted[members]))
    return float(np.mean(agreements))


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
    if candidate.algorithm != "hdbscan" and 2 * candidate.setting > len(Z):
        return 0.0  # a half has fewer customers than segments: nothing to reproduce
    rng = np.random.default_rng(random_state)
    scores = []
    for split in range(n_splits):
        order = rng.permutation(len(Z))
        halves = (order[: len(Z) // 2], order[len(Z) // 2 :])
        fits = [fit_candidate(candidate, Z[half], random_state + split) for half in halves]
        for test, train in ((0, 1), (1, 0)):
            predicted = fits[train].assigner.predict(Z[halves[test]])
            scores.append(worst_segment_comembership(fits[test].labels, predicted))
    return float(np.mean(scores))


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


def _family_best(scores: list[CandidateScore]) -> dict[str, int]:
    """Index of each family's own favourite among admissible candidates."""
    by_family: dict[str, list[int]] = {}
    for index, s in enumerate(scores):
        if s.admissible:
            by_family.setdefault(s.algorithm, []).append(index)
    choose = {"kmeans": _kmeans_favourite, "gmm": _lowest_bic, "hdbscan": _most_valid}
    return {family: choose[family](members, scores) for family, members in by_family.items()}


def _kmeans_favourite(members: list[int], scores: list[CandidateScore]) -> int:
    """Among reproducible k, the best Calinski-Harabasz index; near-ties go to the finer k.

    Reproducible: k >= 3 with prediction strength at least the threshold. Two segments pass on
    almost any data (cutting a continuum in two is reproducible), so they are no evidence of
    segments. Reproducibility alone would take the finest passing k, but a segment that splits
    cleanly along one flag (annual vs monthly within a persona) reproduces too; among the
    reproducible k the Calinski-Harabasz index, the best of the 30 stopping rules Milligan and
    Cooper compared (1985, Psychometrika 50), says which gains enough separation to be worth its
    segments. Indices within ``CALINSKI_HARABASZ_TOLERANCE`` of the best are tied and the finer k
    wins, as in step 3. With no reproducible k the customers form a continuum, any segmentation
    is a way of slicing it, and the silhouette decides how finely.
    """
    reproducible = [
        i
        for i in members
        if scores[i].n_segments >= 3
        and (scores[i].prediction_strength or 0.0) >= PREDICTION_STRENGTH_THRESHOLD
    ]
    if not reproducible:
        return max(members, key=lambda i: scores[i].silhouette)
    best = max(scores[i].calinski_harabasz for i in reproducible)
    tied = [
        i
        for i in reproducible
        if scores[i].calinski_harabasz >= (1 - CALINSKI_HARABASZ_TOLERANCE) * best
    ]
    return max(tied, key=lambda i: scores[i].n_segments)


def _lowest_bic(members: list[int], scores: list[CandidateScore]) -> int:
    return min(members, key=lambda i: scores[i].bic if scores[i].bic is not None else np.inf)


def _most_valid(members: list[int], scores: list[CandidateScore]) -> int:
    def validity(i: int) -> float:
        value = scores[i].relative_validity
        return -np.inf if value is None else value

    return max(members, key=validity)


@dataclass(frozen=True)
class SelectionLimits:
    max_segments: int
    min_segment_share: float
    max_outlier_share: float


def select(
    fitted: list[FittedCandidate],
    Z: np.ndarray,
    limits: SelectionLimits,
    n_resamples: int,
    random_state: int,
) -> tuple[int, list[CandidateScore]]:
    """Index of the chosen candidate and the scores of all of them."""
    scores = [score(f, Z, random_state) for f in fitted]
    for s in scores:
        s.admissible = (
            2 <= s.n_segments <= limits.max_segments
            and s.outlier_share <= limits.max_outlier_share
            and s.smallest_share >= limits.min_segment_share
        )
    for index, s in enumerate(scores):
        if s.admissible and s.algorithm == "kmeans":
            s.prediction_strength = prediction_strength(
                fitted[index].candidate, Z, PREDICTION_STRENGTH_SPLITS, random_state
            )
    finalists = _family_best(scores)
    if not finalists:
        # Nothing admissible (e.g. structureless data): the most silhouette-worthy k-means.
        kmeans = [i for i, s in enumerate(scores) if s.algorithm == "kmeans"]
        finalists = {"kmeans": max(kmeans, key=lambda i: scores[i].silhouette)}
    for index in finalists.values():
        scores[index].family_best = True
        scores[index].stability = stability(fitted[index], Z, n_resamples, random_state)
    chosen = _most_stable(list(finalists.values()), scores)
    scores[chosen].chosen = True
    return chosen, scores


def _most_stable(finalists: list[int], scores: list[CandidateScore]) -> int:
    """Step 3: the most stable finalist; near-ties go to more segments, then higher silhouette."""
    top = max(scores[i].stability or 0.0 for i in finalists)
    tied = [i for i in finalists if (scores[i].stability or 0.0) >= top - STABILITY_TOLERANCE]
    return max(tied, key=lambda i: (scores[i].n_segments, scores[i].silhouette))
