"""Drift of a model's inputs and placements: its training reference against current vectors.

The one function both ``segments drift`` and the service's gauges call, so the CLI and
``/metrics`` report the same numbers for the same vectors.
"""

from __future__ import annotations

import numpy as np

from models.bundle import SegmentModel
from models.drift import DriftReport, PlacementSummary, drift_report


class NoReferenceError(ValueError):
    """The model was registered without a training sample to compare with."""


def placement_summary(model: SegmentModel, values: np.ndarray) -> PlacementSummary:
    placed = model.place(values)
    return PlacementSummary(placed.segment, placed.is_outlier, placed.margin)


def model_drift(model: SegmentModel, current: np.ndarray) -> DriftReport:
    """``current`` (rows x ``model.feature_names``) against the model's training reference."""
    if model.reference is None:
        raise NoReferenceError("the model has no training reference; retrain it to measure drift")
    reference = model.values(model.reference)
    return drift_report(
        model.feature_names,
        reference,
        current,
        placement_summary(model, reference),
        placement_summary(model, current),
        dict(zip(model.segment_ids, model.segment_names, strict=True)),
    )
