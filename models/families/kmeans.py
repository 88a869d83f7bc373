"""k-means: compact, roughly spherical segments around centres; proposes the largest k whose
prediction strength, corrected for chance, shows the segments reproduce."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from sklearn.cluster import KMeans

from models.assigners import CentroidAssigner
from models.candidates import CandidateScore, FittedCandidate, relabel, size_order
from models.criteria import prediction_strength
from models.families.base import ClusteringFamily, segment_counts

# Tibshirani and Walther (2005) take the largest k whose prediction strength is at least 0.8-0.9.
# The threshold here applies to the strength corrected for chance (``required_strength``).
PREDICTION_STRENGTH_THRESHOLD = 0.8
PREDICTION_STRENGTH_SPLITS = 4


def required_strength(k: int) -> float:
    """The prediction strength k segments need to count as reproducible.

    Prediction strength is a share of pairs kept together, so it has a floor that grows as k
    falls: a model that puts the other half's customers into k equal segments at random keeps
    1/k of the pairs of any segment together. As the adjusted Rand index does for agreement, the
    strength is corrected for that chance level, (PS - 1/k) / (1 - 1/k), and the corrected value
    must reach ``PREDICTION_STRENGTH_THRESHOLD``: PS >= 0.87 for 3 segments, 0.83 for 6, 0.82
    for 12, all within Tibshirani and Walther's 0.8-0.9.
    """
    return PREDICTION_STRENGTH_THRESHOLD + (1 - PREDICTION_STRENGTH_THRESHOLD) / k


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
        """The largest reproducible k (Tibshirani and Walther's rule).

        Reproducible: k >= 3 with prediction strength at least ``required_strength(k)``. Two
        segments pass on almost any data (cutting a continuum in two is reproducible), so they
        are no evidence of segments. A k beyond the segments that are there cuts some segment
        in two at a place each half of the data puts elsewhere, and its strength drops; a k
        below them merges segments and still reproduces, so the largest reproducible k is the
        number of segments that are there. With no reproducible k the customers form a
        continuum, any segmentation is a way of slicing it, and the silhouette decides how
        finely.
        """
        reproducible = [i for i in members if _reproducible(scores[i])]
        if not reproducible:
            return max(members, key=lambda i: scores[i].silhouette)
        return max(reproducible, key=lambda i: scores[i].n_segments)


def _reproducible(score: CandidateScore) -> bool:
    strength = score.criterion("prediction_strength") or 0.0
    return score.n_segments >= 3 and strength >= required_strength(score.n_segments)
