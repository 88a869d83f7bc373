"""The public description of a loaded model: its segments and its card (``/v1/model``).

Built once when a model is loaded, so the catalog routes only serialise.
"""

from __future__ import annotations

import math
from dataclasses import asdict

from feature_store.registry import FEATURE_NAMES, MAX_MAGNITUDE, feature
from models.assignment import ModelRef
from models.bundle import SegmentModel
from models.business import BACKTEST_WINDOW_DAYS
from service.schemas.catalog import ChurnedPublic, FeaturePublic, ModelPublic, SegmentPublic


def _finite(value: object) -> object:
    """NaN has no JSON spelling; a statistic of an empty group is reported as 0."""
    if isinstance(value, float) and not math.isfinite(value):
        return 0.0
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def segment_catalog(model: SegmentModel) -> tuple[SegmentPublic, ...]:
    return tuple(
        SegmentPublic.model_validate(
            {**_finite(asdict(profile)), "id": profile.segment_id}  # type: ignore[dict-item]
        )
        for profile in model.profiles
    )


def churned_public(model: SegmentModel) -> ChurnedPublic | None:
    churned = getattr(model, "churned", None)  # models trained before churn was reported
    if churned is None:
        return None
    fields = churned.as_dict()
    fields["last_segment"] = {str(k): v for k, v in churned.last_segment.items()}
    return ChurnedPublic.model_validate({**fields, "window_days": BACKTEST_WINDOW_DAYS})


def _feature(name: str) -> FeaturePublic:
    if name not in FEATURE_NAMES:
        return FeaturePublic(
            name=name,
            family="unknown",
            dtype="float",
            unit="unknown",
            description=name,
            in_spec=False,
            minimum=-MAX_MAGNITUDE,
            maximum=MAX_MAGNITUDE,
        )
    return FeaturePublic(**feature(name).as_dict())


def _metrics(model: SegmentModel) -> dict[str, float]:
    # Training records surrogate_fidelity among the metrics; a non-finite value is left out of JSON.
    metrics = {key: float(value) for key, value in model.metrics.items()}
    return {key: value for key, value in metrics.items() if math.isfinite(value)}


def describe_model(
    model: SegmentModel, ref: ModelRef, alias: str, loaded_at: str, source: str
) -> ModelPublic:
    return ModelPublic(
        name=ref.name,
        version=ref.version,
        alias=alias,
        trained_at=model.trained_at,
        loaded_at=loaded_at,
        source=source,  # type: ignore[arg-type]
        n_segments=len(model.profiles),
        metrics=_metrics(model),
        features=[_feature(name) for name in model.feature_names],
    )
