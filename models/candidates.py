"""Candidate segmentations: one clustering family with one setting, fitted on a preprocessed matrix.

Every candidate returns segment labels ``0..k-1`` ordered by size (largest first), ``-1`` for the
points a density method leaves unassigned, and an assigner for new customers. What a candidate
is fitted with, and how it is judged, belongs to its family (``models.families``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING

import numpy as np

from models.assigners import Assigner

if TYPE_CHECKING:
    from models.families.base import ClusteringFamily


@dataclass(frozen=True)
class Candidate:
    """``setting`` means what the family says (``setting_name``): the number of segments for
    k-means and Gaussian mixtures, the minimum cluster size for HDBSCAN."""

    family: ClusteringFamily
    setting: int

    @property
    def name(self) -> str:
        return f"{self.family.name}({self.family.setting_name}={self.setting})"

    def fit(self, Z: np.ndarray, random_state: int) -> FittedCandidate:
        return self.family.fit(self.setting, Z, random_state)


@dataclass
class FittedCandidate:
    """``criteria``: what the family measured while fitting (BIC, relative validity), by name."""

    candidate: Candidate
    labels: np.ndarray
    assigner: Assigner
    criteria: dict[str, float] = field(default_factory=dict)

    @property
    def n_segments(self) -> int:
        return int(self.labels.max()) + 1 if (self.labels >= 0).any() else 0


@dataclass
class CandidateScore:
    """What was measured about one candidate; the comparison table users see.

    ``criteria`` holds the family's own criteria (``ClusteringFamily.criteria``), None where one
    was not measured (prediction strength of an inadmissible k); the other measures are taken for
    every candidate. ``samples`` keeps the repeated measurements a criterion is the mean of
    (prediction strength's split scores), so a rule can tell a difference from noise; they are
    not in the table or the metrics.
    """

    candidate: str
    algorithm: str  # the family's name
    n_segments: int
    smallest_share: float
    outlier_share: float
    silhouette: float
    calinski_harabasz: float
    criteria: dict[str, float | None] = field(default_factory=dict)
    # Standard error of ``silhouette`` (a mean over customers): differences below about two of
    # these are not differences the silhouette can vouch for.
    silhouette_se: float = 0.0
    stability: float | None = None
    # Stability of the same candidate on points with no segments (``criteria.reference_stability``):
    # measured for the most stable partition and the density proposal only, where the two are
    # compared beyond it (``models.selection``); None for every other candidate.
    reference_stability: float | None = None
    family_best: bool = False
    admissible: bool = False
    chosen: bool = False
    samples: dict[str, tuple[float, ...]] = field(default_factory=dict)

    def record(self, measured: Mapping[str, float | Sequence[float]]) -> None:
        """Store a family's measurements: a number as the criterion, repeated measurements as
        their mean (the criterion) and in ``samples``."""
        for name, value in measured.items():
            if isinstance(value, Sequence):
                self.samples[name] = tuple(float(v) for v in value)
                self.criteria[name] = float(np.mean(self.samples[name]))
            else:
                self.criteria[name] = float(value)

    def criterion(self, name: str) -> float | None:
        """A family criterion, None where it was not measured."""
        return self.criteria.get(name)

    def measured(self) -> dict[str, float]:
        """Every selection criterion this candidate was scored on, by name (one metric each)."""
        every = {
            "silhouette": self.silhouette,
            "calinski_harabasz": self.calinski_harabasz,
            **self.criteria,
            "stability": self.stability,
            "reference_stability": self.reference_stability,
        }
        return {name: value for name, value in every.items() if value is not None}

    def as_dict(self) -> dict[str, object]:
        """One flat row: the fields, with the family criteria as columns of their own."""
        row: dict[str, object] = {}
        for f in fields(self):
            if f.name == "samples":
                continue
            row.update(self.criteria if f.name == "criteria" else {f.name: getattr(self, f.name)})
        return row


def size_order(labels: np.ndarray) -> np.ndarray:
    """Old label for each new label: largest segment first, ties by old label."""
    present = labels[labels >= 0]
    counts = np.bincount(present) if present.size else np.array([], dtype=int)
    return np.array(sorted(range(len(counts)), key=lambda old: (-counts[old], old)), dtype=int)


def relabel(labels: np.ndarray, order: np.ndarray) -> np.ndarray:
    mapping = np.full(max(len(order), int(labels.max()) + 1 if labels.size else 0), -1)
    mapping[order] = np.arange(len(order))
    return np.where(labels >= 0, mapping[np.maximum(labels, 0)], -1)
