"""Choosing a segmentation without being told the number of segments.

The rule (measured in ``docs/segmentation.md`` on 73 labelled benchmark sets):

1. Every family proposes its own best candidate by its own criterion: k-means by silhouette,
   Gaussian mixtures by BIC, HDBSCAN by its relative validity (a fast DBCV).
2. A proposal is admissible when it has between 2 and ``max_segments`` segments, leaves at most
   ``max_outlier_share`` unassigned, and its smallest segment holds at least ``min_segment_share``.
3. Among admissible proposals the most **stable** wins: each is refitted on bootstrap subsamples
   and the mean adjusted Rand index between the refit's assignment and the original labels is
   its stability. A segmentation that resampling does not reproduce is not one to act on.
   Ties (within 0.01) go to the higher silhouette.
4. When k-means wins, a Gaussian mixture started from its centres refines the boundaries
   (``kmeans_gmm``), kept when it still describes the same segments (ARI with the k-means labels
   at least ``REFINE_MIN_AGREEMENT``) and is as stable.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from sklearn.metrics import adjusted_rand_score, silhouette_score

from models.candidates import Candidate, FittedCandidate, fit_candidate

SILHOUETTE_SAMPLE = 2000
REFINE_MIN_AGREEMENT = 0.8


@dataclass
class CandidateScore:
    """What was measured about one candidate; the comparison table users see."""

    candidate: str
    algorithm: str
    n_segments: int
    smallest_share: float
    outlier_share: float
    silhouette: float
    bic: float | None
    relative_validity: float | None
    stability: float | None = None
    family_best: bool = False
    admissible: bool = False
    chosen: bool = False

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def candidate_grid(n_rows: int, max_segments: int) -> list[Candidate]:
    ks = range(2, max_segments + 1)
    sizes = sorted({max(5, int(n_rows * share)) for share in (0.005, 0.01, 0.02, 0.05)})
    return (
        [Candidate("kmeans", k) for k in ks]
        + [Candidate("gmm", k) for k in ks]
        + [Candidate("hdbscan", size) for size in sizes]
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


def _family_best(scores: list[CandidateScore]) -> dict[str, int]:
    """Index of each family's own favourite among admissible candidates."""
    criteria = {
        "kmeans": lambda s: s.silhouette,
        "gmm": lambda s: -(s.bic if s.bic is not None else np.inf),
        "hdbscan": lambda s: s.relative_validity if s.relative_validity is not None else -np.inf,
    }
    best: dict[str, int] = {}
    for index, s in enumerate(scores):
        if not s.admissible:
            continue
        key = criteria[s.algorithm]
        if s.algorithm not in best or key(s) > key(scores[best[s.algorithm]]):
            best[s.algorithm] = index
    return best


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
    finalists = _family_best(scores)
    if not finalists:
        # Nothing admissible (e.g. structureless data): the most silhouette-worthy k-means.
        kmeans = [i for i, s in enumerate(scores) if s.algorithm == "kmeans"]
        finalists = {"kmeans": max(kmeans, key=lambda i: scores[i].silhouette)}
    for index in finalists.values():
        scores[index].family_best = True
        scores[index].stability = stability(fitted[index], Z, n_resamples, random_state)
    chosen = max(
        finalists.values(),
        key=lambda i: (round(scores[i].stability or 0.0, 2), scores[i].silhouette),
    )
    chosen = _refine(chosen, fitted, scores, Z, n_resamples, random_state)
    scores[chosen].chosen = True
    return chosen, scores


def _refine(
    chosen: int,
    fitted: list[FittedCandidate],
    scores: list[CandidateScore],
    Z: np.ndarray,
    n_resamples: int,
    random_state: int,
) -> int:
    """Step 4: try the mixture refinement of a winning k-means; return the final index."""
    if fitted[chosen].candidate.algorithm != "kmeans":
        return chosen
    refined = fit_candidate(
        Candidate("kmeans_gmm", fitted[chosen].candidate.setting), Z, random_state
    )
    refined_score = score(refined, Z, random_state)
    refined_score.family_best = True
    refined_score.admissible = (
        adjusted_rand_score(fitted[chosen].labels, refined.labels) >= REFINE_MIN_AGREEMENT
        and refined_score.n_segments == scores[chosen].n_segments
    )
    if refined_score.admissible:
        refined_score.stability = stability(refined, Z, n_resamples, random_state)
    fitted.append(refined)
    scores.append(refined_score)
    keep = refined_score.admissible and (refined_score.stability or 0) >= (
        (scores[chosen].stability or 0) - 0.02
    )
    return len(fitted) - 1 if keep else chosen
