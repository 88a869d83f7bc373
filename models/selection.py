"""Choosing a segmentation without being told the number of segments.

The rule (measured in ``docs/segmentation.md`` on generated companies and 73 labelled sets):

1. Every family (``models.families``) proposes its own best candidate by its own criterion
   (``ClusteringFamily.propose``, by default its ``favourite``), or declines. k-means: among the k >= 3 whose **prediction strength**
   (Tibshirani and Walther, 2005) is at least ``kmeans.PREDICTION_STRENGTH_THRESHOLD`` (a model
   fitted on one half of the customers reproduces the other half's segments, segment by segment), the
   best Calinski-Harabasz index, near-ties going to the finer k; when no k passes, the highest
   silhouette, unless a k within the silhouette's noise reproduces clearly better (prediction
   strength higher by more than its noise). A finer k replaces that answer when its neighbouring
   segments all differ in at least ``kmeans.SEPARATING_FEATURES`` features and it reproduces at
   ``kmeans.SEPARATED_PREDICTION_STRENGTH`` (the largest such k). Last, a finer k whose
   silhouette is higher beyond its noise and whose Calinski-Harabasz index is higher beyond
   ``kmeans.CALINSKI_HARABASZ_TOLERANCE`` replaces the answer (prediction strength is the worst
   segment's, and where many clusters touch it answers too coarsely). Gaussian mixtures: BIC, and
   no proposal when its lowest value is at the most components among the admissible ones (still
   falling there: no estimate of their number), unless no other family has anything within the
   limits. HDBSCAN: its relative validity (a fast DBCV).
2. A proposal is admissible when it has between 2 and ``max_segments`` segments, leaves at most
   ``max_outlier_share`` unassigned, and its smallest segment holds at least ``min_segment_share``.
3. Among admissible proposals the most **stable** wins: each is refitted on subsamples and the
   mean adjusted Rand index between the refit's assignment and the original labels is its
   stability. A segmentation that resampling does not reproduce is not one to act on. Proposals
   within ``STABILITY_TOLERANCE`` of the most stable are tied (three resamples cannot tell them
   apart), and a tie goes to the one with more segments, then to the higher silhouette: stability
   rewards coarse answers (two segments are nearly always reproducible), so among equally stable
   answers the finer one says more, as in step 1. Where a density method's proposal with at
   least as many segments competes with the most stable partition (k-means, mixtures: families
   that cut any cloud of points), the two are compared on their stability *beyond* what the same
   candidate reproduces on points with no segments (``criteria.reference_stability``), with the
   same tolerance and ties. On uniform points k-means's proposals reproduce their own cuts at a
   median stability of 0.87 (0.61-0.98 over the suite's sets), HDBSCAN's at 0.47: raw
   stability favours a partition whatever the data (``docs/segmentation.md``, "Density against
   partitions"). Density proposals are made only on 6 columns or fewer after preprocessing (with
   the default selection sample of 4,000 customers), so never on the registry's features.

A family decides whether it is proposed at all: HDBSCAN only when the sample is large enough to
estimate densities in that many dimensions (``density_is_estimable``).

Told the number of segments (``CustomerSegmenter(n_segments=N)``), the grid is one candidate per
family that can be told a count (``told_count_grid``), only exactly N segments are admissible, and
steps 1 and 3 choose between the families.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from models.candidates import Candidate, CandidateScore, FittedCandidate
from models.criteria import (
    calinski_harabasz,
    reference_stability,
    shared_distances,
    silhouette_with_error,
    stability,
)
from models.families import FAMILIES, ClusteringFamily

STABILITY_TOLERANCE = 0.02


def candidate_grid(
    n_rows: int,
    max_segments: int,
    n_columns: int,
    families: Sequence[ClusteringFamily] = FAMILIES,
) -> list[Candidate]:
    """Every family's candidates for ``n_rows`` x ``n_columns``, family by family."""
    return [c for family in families for c in family.grid(n_rows, max_segments, n_columns)]


def told_count_grid(
    n_segments: int, families: Sequence[ClusteringFamily] = FAMILIES
) -> list[Candidate]:
    """The candidates with exactly ``n_segments`` segments: one per family that can be told a
    count (k-means, Gaussian mixtures); the selection then only chooses between families."""
    return [f.candidate(n_segments) for f in families if f.sets_segment_count]


def score(
    fitted: FittedCandidate,
    Z: np.ndarray,
    random_state: int,
    shared: tuple[np.ndarray, np.ndarray] | None = None,
) -> CandidateScore:
    labels = fitted.labels
    members = labels >= 0
    sizes = np.bincount(labels[members]) if members.any() else np.array([0])
    family = fitted.candidate.family
    silhouette, silhouette_se = silhouette_with_error(Z, labels, random_state, shared)
    return CandidateScore(
        candidate=fitted.candidate.name,
        algorithm=family.name,
        n_segments=fitted.n_segments,
        smallest_share=float(sizes.min() / len(labels)),
        outlier_share=float(1 - members.mean()),
        silhouette=silhouette,
        calinski_harabasz=calinski_harabasz(Z, labels),
        silhouette_se=silhouette_se,
        criteria={name: fitted.criteria.get(name) for name in family.criteria},
    )


def _family_best(
    fitted: list[FittedCandidate],
    scores: list[CandidateScore],
    measure: Callable[[int], object],
) -> list[int]:
    """Index of each family's own favourite among admissible candidates, families in the order
    their first admissible candidate appears; each family measures what its rule needs."""
    by_family: dict[ClusteringFamily, list[int]] = {}
    for index, s in enumerate(scores):
        if s.admissible:
            by_family.setdefault(fitted[index].candidate.family, []).append(index)
    # A family with one admissible candidate (told a number of segments, or the only one within
    # the limits) proposes it as it is: its criteria could not change the answer.
    proposals = {
        family: members[0] if len(members) == 1 else family.propose(members, scores, measure)
        for family, members in by_family.items()
    }
    made = [index for index in proposals.values() if index is not None]
    if made or not by_family:
        return made
    # Every family that has admissible candidates declined (a mixture whose BIC still falls at
    # its most components, and nothing else within the limits): its favourite still beats an
    # inadmissible fallback.
    return [family.favourite(by_family[family], scores) for family in proposals]


def _fallback(
    fitted: list[FittedCandidate], scores: list[CandidateScore], min_segment_share: float = 0.0
) -> list[int]:
    """Nothing admissible (e.g. structureless data): the fallback family's candidate with the
    best silhouette (any family's, when the grid has none of the fallback family), among those
    whose segments all hold ``min_segment_share`` where any does: on a dozen customers the best
    silhouette is often a few customers' own segments."""
    pool = [i for i, f in enumerate(fitted) if f.candidate.family.is_fallback] or list(
        range(len(fitted))
    )
    pool = [i for i in pool if scores[i].smallest_share >= min_segment_share] or pool
    return [max(pool, key=lambda i: scores[i].silhouette)]


@dataclass(frozen=True)
class SelectionLimits:
    max_segments: int
    min_segment_share: float
    max_outlier_share: float
    # The number of segments the user asked for, when they did: a candidate with another number
    # (fewer distinct groups than asked) is not admissible.
    exact_segments: int | None = None

    def admit(self, s: CandidateScore) -> bool:
        return (
            2 <= s.n_segments <= self.max_segments
            and (self.exact_segments is None or s.n_segments == self.exact_segments)
            and s.outlier_share <= self.max_outlier_share
            and s.smallest_share >= self.min_segment_share
        )


def select(
    fitted: list[FittedCandidate],
    Z: np.ndarray,
    limits: SelectionLimits,
    n_resamples: int,
    random_state: int,
) -> tuple[int, list[CandidateScore]]:
    """Index of the chosen candidate and the scores of all of them."""
    shared = shared_distances(Z, random_state)  # one distance matrix for every silhouette
    scores = [score(f, Z, random_state, shared) for f in fitted]
    for s in scores:
        s.admissible = limits.admit(s)
    measured: set[int] = set()

    def measure(index: int) -> None:
        """A family's costly criteria, once, for an admissible candidate its rule asks about."""
        if index not in measured:
            measured.add(index)
            family = fitted[index].candidate.family
            scores[index].record(family.measure(fitted[index], Z, random_state))

    finalists = _family_best(fitted, scores, measure) or _fallback(
        fitted, scores, limits.min_segment_share
    )
    for index in finalists:
        scores[index].family_best = True
        scores[index].stability = stability(fitted[index], Z, n_resamples, random_state)
    chosen = _choose_finalist(finalists, fitted, scores, Z, n_resamples, random_state)
    scores[chosen].chosen = True
    return chosen, scores


def _choose_finalist(
    finalists: list[int],
    fitted: list[FittedCandidate],
    scores: list[CandidateScore],
    Z: np.ndarray,
    n_resamples: int,
    random_state: int,
) -> int:
    """Step 3: the most stable finalist; a density proposal with at least as many segments as the
    most stable partition competes with it on stability beyond a structureless reference."""
    partitions = [i for i in finalists if fitted[i].candidate.family.partitions_any_cloud]
    densities = [i for i in finalists if i not in partitions]
    if not (partitions and densities):
        return _most_stable(finalists, scores)
    partition = _most_stable(partitions, scores)
    density = _most_stable(densities, scores)
    # A coarser density answer competes on raw stability, as before: HDBSCAN can merge touching
    # groups into a few stable ones that no featureless cloud shows, and beyond the reference
    # that outbids a partition's finer, right answer (Gaussian blobs in 2-4 columns: ARI 0.813
    # with this condition, 0.591 without, 0.815 before the reference; ``docs/segmentation.md``).
    if scores[density].n_segments < scores[partition].n_segments:
        return _most_stable(finalists, scores)
    for index in (partition, density):
        scores[index].reference_stability = reference_stability(
            fitted[index].candidate, Z, n_resamples, random_state
        )
    return _most_stable([partition, density], scores, _beyond_reference)


def _stability(candidate: CandidateScore) -> float:
    return candidate.stability or 0.0


def _beyond_reference(candidate: CandidateScore) -> float:
    return (candidate.stability or 0.0) - (candidate.reference_stability or 0.0)


def _most_stable(
    finalists: list[int],
    scores: list[CandidateScore],
    stable: Callable[[CandidateScore], float] = _stability,
) -> int:
    """Step 3: the most ``stable`` finalist; near-ties go to more segments, then higher
    silhouette."""
    top = max(stable(scores[i]) for i in finalists)
    tied = [i for i in finalists if stable(scores[i]) >= top - STABILITY_TOLERANCE]
    return max(tied, key=lambda i: (scores[i].n_segments, scores[i].silhouette))
