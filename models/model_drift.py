"""Drift of a model's inputs and placements: its training reference against current vectors.

The one function both ``segments drift`` and the service's gauges call, so the CLI and
``/metrics`` report the same numbers for the same vectors.
"""

from __future__ import annotations

import numpy as np

from models.bundle import SegmentModel
from models.business import CANCELED
from models.drift import DriftReport, PlacementSummary, drift_report


class NoReferenceError(ValueError):
    """The model was registered without a training sample to compare with."""


def placement_summary(model: SegmentModel, values: np.ndarray) -> PlacementSummary:
    placed = model.place(values)
    return PlacementSummary(placed.segment, placed.is_outlier, placed.margin)


def segmented_rows(model: SegmentModel, reference: np.ndarray, current: np.ndarray) -> np.ndarray:
    """The rows of ``current`` like the ones the model segments: a model trained on active
    customers only (no cancelled one in its reference) is compared with active customers only,
    or the cancelled customers of the store would read as drift."""
    if CANCELED not in model.feature_names:
        return current
    column = model.feature_names.index(CANCELED)
    if reference.size and np.nanmax(reference[:, column]) > 0:
        return current
    return current[current[:, column] <= 0]


def model_drift(model: SegmentModel, current: np.ndarray) -> DriftReport:
    """``current`` (rows x ``model.feature_names``) against the model's training reference."""
    if model.reference is None:
        raise NoReferenceError("the model has no training reference; retrain it to measure drift")
    reference = model.values(model.reference)
    current = segmented_rows(model, reference, current)
    return drift_report(
        model.feature_names,
        reference,
        current,
        placement_summary(model, reference),
        placement_summary(model, current),
        dict(zip(model.segment_ids, model.segment_names, strict=True)),
    )
