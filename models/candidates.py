"""Candidate segmentations: one algorithm with one setting, fitted on a preprocessed matrix.

Every candidate returns segment labels ``0..k-1`` ordered by size (largest first), ``-1`` for the
points a density method leaves unassigned, and an assigner for new customers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import hdbscan
import numpy as np
from sklearn.cluster import KMeans
from sklearn.mixture import GaussianMixture

from models.assigners import CentroidAssigner, MixtureAssigner, NeighbourAssigner

Algorithm = Literal["kmeans", "gmm", "hdbscan"]
Assigner = CentroidAssigner | MixtureAssigner | NeighbourAssigner


@dataclass(frozen=True)
class Candidate:
    """``setting`` is the number of segments (k-means, GMM) or the minimum cluster size (HDBSCAN)."""

    algorithm: Algorithm
    setting: int

    @property
    def name(self) -> str:
        key = "min_cluster_size" if self.algorithm == "hdbscan" else "k"
        return f"{self.algorithm}({key}={self.setting})"


@dataclass
class FittedCandidate:
    candidate: Candidate
    labels: np.ndarray
    assigner: Assigner
    bic: float | None = None
    relative_validity: float | None = None

    @property
    def n_segments(self) -> int:
        return int(self.labels.max()) + 1 if (self.labels >= 0).any() else 0


def size_order(labels: np.ndarray) -> np.ndarray:
    """Old label for each new label: largest segment first, ties by old label."""
    present = labels[labels >= 0]
    counts = np.bincount(present) if present.size else np.array([], dtype=int)
    return np.array(sorted(range(len(counts)), key=lambda old: (-counts[old], old)), dtype=int)


def relabel(labels: np.ndarray, order: np.ndarray) -> np.ndarray:
    mapping = np.full(max(len(order), int(labels.max()) + 1 if labels.size else 0), -1)
    mapping[order] = np.arange(len(order))
    return np.where(labels >= 0, mapping[np.maximum(labels, 0)], -1)


def fit_candidate(candidate: Candidate, Z: np.ndarray, random_state: int) -> FittedCandidate:
    fit = {
        "kmeans": _fit_kmeans,
        "gmm": _fit_gmm,
        "hdbscan": _fit_hdbscan,
    }[candidate.algorithm]
    return fit(candidate, Z, random_state)


def _fit_kmeans(candidate: Candidate, Z: np.ndarray, random_state: int) -> FittedCandidate:
    # Ten starts rather than four: prediction strength compares fits on two halves, and one
    # half stuck in a poor local optimum would read as a segmentation that does not reproduce.
    model = KMeans(candidate.setting, n_init=10, random_state=random_state).fit(Z)
    order = size_order(model.labels_)
    labels = relabel(model.labels_, order)
    centers = model.cluster_centers_[order]
    return FittedCandidate(candidate, labels, CentroidAssigner(centers, Z, labels))


def _fit_gmm(candidate: Candidate, Z: np.ndarray, random_state: int) -> FittedCandidate:
    model = GaussianMixture(
        candidate.setting,
        covariance_type="full",
        n_init=2,
        reg_covar=1e-4,
        random_state=random_state,
        max_iter=200,
    ).fit(Z)
    raw = model.predict(Z)
    order = size_order(raw)
    # Components that own no point are dropped from the segment list (they stay in the mixture).
    labels = relabel(raw, order)
    return FittedCandidate(candidate, labels, MixtureAssigner(model, Z, order), bic=model.bic(Z))


def _fit_hdbscan(candidate: Candidate, Z: np.ndarray, random_state: int) -> FittedCandidate:
    model = hdbscan.HDBSCAN(
        min_cluster_size=candidate.setting,
        min_samples=min(candidate.setting, 10),
        gen_min_span_tree=True,
        core_dist_n_jobs=1,
    ).fit(Z)
    raw = model.labels_
    if not (raw >= 0).any():
        raw = np.zeros(len(Z), dtype=int)  # everything is noise: one segment is the honest answer
    order = size_order(raw)
    labels = relabel(raw, order)
    validity = float(model.relative_validity_) if (model.labels_ >= 0).any() else -1.0
    return FittedCandidate(
        candidate, labels, NeighbourAssigner(Z, labels), relative_validity=validity
    )
