"""k-means: compact, roughly spherical segments around centres; proposes its k by prediction
strength and the Calinski-Harabasz index."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from sklearn.cluster import KMeans

from models.assigners import CentroidAssigner
from models.candidates import CandidateScore, FittedCandidate, relabel, size_order
from models.criteria import prediction_strength
from models.families.base import ClusteringFamily, segment_counts

# Tibshirani and Walther suggest 0.8-0.9 for well-separated clusters; the stricter end keeps
# k-means from splitting a segment in two just because the split is reproducible half the time.
PREDICTION_STRENGTH_THRESHOLD = 0.9
PREDICTION_STRENGTH_SPLITS = 4
# Relative: indices within 3% of the best are tied (5 and 6 segments of a generated company that
# differ by 1.5%); 5% would tie a split persona with the whole one (a 4.8% drop).
CALINSKI_HARABASZ_TOLERANCE = 0.03


@dataclass(frozen=True)
class KMeansFamily(ClusteringFamily):
    name: ClassVar[str] = "kmeans"
    setting_name: ClassVar[str] = "k"
    criteria: ClassVar[tuple[str, ...]] = ("prediction_strength",)
    # k-means always returns the k it is asked for, so it has an answer on any data.
    is_fallback: ClassVar[bool] = True

    def settings(self, n_rows: int, max_segments: int, n_columns: int) -> list[int]:
        return segment_counts(n_rows, max_segments)

    def fit(self, setting: int, Z: np.ndarray, random_state: int) -> FittedCandidate:
        # Ten starts rather than four: prediction strength compares fits on two halves, and one
        # half stuck in a poor local optimum would read as a segmentation that does not reproduce.
        model = KMeans(setting, n_init=10, random_state=random_state).fit(Z)
        order = size_order(model.labels_)
        labels = relabel(model.labels_, order)
        centers = model.cluster_centers_[order]
        return FittedCandidate(
            self.candidate(setting), labels, CentroidAssigner(centers, Z, labels)
        )

    def measure(
        self, fitted: FittedCandidate, Z: np.ndarray, random_state: int
    ) -> dict[str, float]:
        if 2 * fitted.candidate.setting > len(Z):
            return {"prediction_strength": 0.0}  # a half has fewer customers than segments
        strength = prediction_strength(
            fitted.candidate, Z, PREDICTION_STRENGTH_SPLITS, random_state
        )
        return {"prediction_strength": strength}

    def favourite(self, members: list[int], scores: list[CandidateScore]) -> int:
        """Among reproducible k, the best Calinski-Harabasz index; near-ties go to the finer k.

        Reproducible: k >= 3 with prediction strength at least the threshold. Two segments pass
        on almost any data (cutting a continuum in two is reproducible), so they are no evidence
        of segments. Reproducibility alone would take the finest passing k, but a segment that
        splits cleanly along one flag (annual vs monthly within a persona) reproduces too; among
        the reproducible k the Calinski-Harabasz index, the best of the 30 stopping rules
        Milligan and Cooper compared (1985, Psychometrika 50), says which gains enough separation
        to be worth its segments. Indices within ``CALINSKI_HARABASZ_TOLERANCE`` of the best are
        tied and the finer k wins, as in the selection's step 3. With no reproducible k the
        customers form a continuum, any segmentation is a way of slicing it, and the silhouette
        decides how finely.
        """
        return self.propose(members, scores, lambda member: None)

    def propose(
        self, members: list[int], scores: list[CandidateScore], measure: Callable[[int], object]
    ) -> int:
        """``favourite``'s rule, measuring prediction strength only where it decides: k >= 3 in
        order of decreasing Calinski-Harabasz index, until the first reproducible k (the best
        index among reproducible k), then the k whose index is tied with it. The others cannot
        change the answer, and prediction strength is most of the cost of selection."""
        by_index = sorted(
            (i for i in members if scores[i].n_segments >= 3),
            key=lambda i: scores[i].calinski_harabasz,
            reverse=True,
        )
        tied: list[int] = []
        for i in by_index:
            if tied and scores[i].calinski_harabasz < (
                (1 - CALINSKI_HARABASZ_TOLERANCE) * scores[tied[0]].calinski_harabasz
            ):
                break
            measure(i)
            if _reproducible(scores[i]):
                tied.append(i)
        if not tied:
            return max(members, key=lambda i: scores[i].silhouette)
        return max(tied, key=lambda i: scores[i].n_segments)


def _reproducible(score: CandidateScore) -> bool:
    strength = score.criterion("prediction_strength") or 0.0
    return score.n_segments >= 3 and strength >= PREDICTION_STRENGTH_THRESHOLD
