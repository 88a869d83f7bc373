"""Gaussian mixtures: elliptical segments of any orientation and size; proposes its number of
components by BIC, unless the BIC still falls at the most components."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from sklearn.mixture import GaussianMixture

from models.assigners import MixtureAssigner
from models.candidates import CandidateScore, FittedCandidate, relabel, size_order
from models.families.base import ClusteringFamily, segment_counts


@dataclass(frozen=True)
class GaussianMixtureFamily(ClusteringFamily):
    name: ClassVar[str] = "gmm"
    words: ClassVar[str] = "Gaussian-mixture"
    setting_name: ClassVar[str] = "k"
    criteria: ClassVar[tuple[str, ...]] = ("bic",)
    sets_segment_count: ClassVar[bool] = True

    def settings(self, n_rows: int, max_segments: int, n_columns: int) -> list[int]:
        return segment_counts(n_rows, max_segments)

    def fit(self, setting: int, Z: np.ndarray, random_state: int) -> FittedCandidate:
        model = GaussianMixture(
            setting,
            covariance_type="full",
            n_init=1,
            reg_covar=1e-4,
            random_state=random_state,
            max_iter=100,
        ).fit(Z)
        raw = model.predict(Z)
        order = size_order(raw)
        # Components that own no point are dropped from the segment list (they stay in the
        # mixture).
        labels = relabel(raw, order)
        assigner = MixtureAssigner(model, Z, order)
        return FittedCandidate(self.candidate(setting), labels, assigner, {"bic": model.bic(Z)})

    def favourite(self, members: list[int], scores: list[CandidateScore]) -> int:
        """The lowest BIC."""

        def bic(i: int) -> float:
            value = scores[i].criterion("bic")
            return np.inf if value is None else value

        return min(members, key=bic)

    def propose(
        self, members: list[int], scores: list[CandidateScore], measure: Callable[[int], object]
    ) -> int | None:
        """The lowest BIC, unless it is at the most components among the admissible ones (the
        last member: the grid runs from 2 components up): there the BIC was still falling, which
        says only that more components fit better still (on customer data, by splitting along
        zero-inflated columns, ``docs/segmentation.md``), not how many there are. Such a mixture
        is not proposed, and the other families' proposals compete without it."""
        best = super().propose(members, scores, measure)
        return None if best == max(members) else best
