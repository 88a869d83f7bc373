"""The public description of a loaded model: its segments and its card (``/v1/model``).

Built once when a model is loaded, so the catalog routes only serialise.
"""

from __future__ import annotations

import math
from dataclasses import asdict

from feature_store.registry import FEATURE_NAMES, MAX_MAGNITUDE, feature
from feature_store.timeutil import stamp_text
from models.assignment import ModelRef
from models.bundle import SegmentModel
from models.business import BACKTEST_WINDOW_DAYS, rate, window_days_of
from models.lineage import Lineage, SegmentTransition, history_relation, transition_text
from models.summaries import contrasts
from service.schemas.catalog import (
    ChurnedPublic,
    CurrencyPublic,
    FeaturePublic,
    LineagePublic,
    ModelPublic,
    RatePublic,
    RepurchasePublic,
    SegmentPublic,
    TransitionPublic,
)


def _finite(value: object) -> object:
    """NaN has no JSON spelling; a statistic of an empty group is reported as 0."""
    if isinstance(value, float) and not math.isfinite(value):
        return 0.0
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def transition_public(
    lineage: Lineage, transition: SegmentTransition, history_of: int | None = None
) -> TransitionPublic:
    """A transition as served; ``history_of``: the segment whose history it is in."""
    return TransitionPublic(
        version=lineage.version,
        previous=lineage.previous,
        **_finite(transition.as_dict()),
        text=transition_text(lineage.version, lineage.previous, transition),
        relation=None if history_of is None else history_relation(history_of, transition),
    )


def segment_catalog(model: SegmentModel) -> tuple[SegmentPublic, ...]:
    """One entry per segment position, each under its public id with its history."""
    return tuple(
        SegmentPublic.model_validate(
            {
                **_finite(asdict(profile)),  # type: ignore[dict-item]
                "id": profile.segment_id,
                "distinguishing": _distinctions_in_units(model, position),
                "history": [
                    transition_public(lineage, t, history_of=profile.segment_id)
                    for lineage, t in model.segment_history(profile.segment_id)
                ],
            }
        )
        for position, profile in enumerate(model.profiles)
    )


def _distinctions_in_units(model: SegmentModel, position: int) -> list[dict[str, object]]:
    """The profile's distinctions (effect sizes on the model's scale), each with what a product
    manager reads: the same feature against every customer in its own unit."""
    readings = {c.feature: c for c in contrasts(model, position) if c.distinguishing}
    out = []
    for distinction in model.profiles[position].distinguishing:
        entry: dict[str, object] = _finite(asdict(distinction))  # type: ignore[assignment]
        reading = readings.get(distinction.feature)
        if reading is not None:
            entry |= {
                "label": reading.label,
                "text": reading.text,
                "segment_median": _finite(reading.segment_median),
                "overall_median": _finite(reading.overall_median),
                "direction": reading.direction,
            }
        out.append(entry)
    return out


def lineage_public(model: SegmentModel) -> LineagePublic | None:
    lineage = model.lineage
    if lineage is None:
        return None
    return LineagePublic(
        version=lineage.version,
        previous=lineage.previous,
        next_id=lineage.next_id,
        overlap_customers=lineage.overlap_customers,
        transitions=[transition_public(lineage, t) for t in lineage.transitions],
        migration=lineage.migration,
    )


def retirement(model: SegmentModel, segment_id: int) -> tuple[str, list[int]] | None:
    """The version that retired a segment id no longer served, and the segments its customers
    went to, when the model's history knows."""
    for lineage, t in reversed(model.segment_history(segment_id)):
        if t.id == segment_id and t.transition == "retired":
            return str(lineage.version), [int(child) for child in t.children]
    return None


def retired_note(segment_id: int, retired: tuple[str, list[int]] | None) -> str | None:
    """Where a segment id no longer served went (``retirement``), in words."""
    if retired is None:
        return None
    version, children = retired
    went = f" (its customers went to {', '.join(map(str, children))})" if children else ""
    return f"segment {segment_id} was retired in version {version}{went}"


def churned_public(model: SegmentModel) -> ChurnedPublic | None:
    churned = getattr(model, "churned", None)  # models trained before churn was reported
    if churned is None:
        return None
    fields = churned.as_dict()
    # ``last_segment`` counts by segment position; the public answer names public ids (as
    # strings: JSON object keys).
    ids = model.segment_ids
    fields["last_segment"] = {
        str(ids[int(position)]): count
        for position, count in churned.last_segment.items()
        if int(position) < len(ids)
    }
    return ChurnedPublic.model_validate({**fields, "window_days": BACKTEST_WINDOW_DAYS})


def repurchase_public(model: SegmentModel) -> RepurchasePublic | None:
    """The buyers' backtest across all segments (``models.summaries.BuyersWindow``), or None."""
    metrics = getattr(model, "metrics", {}) or {}
    buyers, share = metrics.get("backtest_buyers"), metrics.get("backtest_repurchase_rate")
    window = window_days_of(getattr(model, "features_as_of", None))
    if not buyers or share is None or window is None:
        return None
    total = int(buyers)
    measured = rate(round(share * total), total)
    return RepurchasePublic(
        buyers=RatePublic.model_validate(measured.as_dict()),
        window_start=window[0].isoformat(),
        window_end=window[1].isoformat(),
        window_days=BACKTEST_WINDOW_DAYS,
    )


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
        trained_at=stamp_text(model.trained_at),  # older models wrote "+00:00"
        features_as_of=getattr(model, "features_as_of", None),
        loaded_at=loaded_at,
        source=source,  # type: ignore[arg-type]
        n_segments=len(model.profiles),
        metrics=_metrics(model),
        features=[_feature(name) for name in model.feature_names],
        currency=CurrencyPublic(**model.currency.as_dict()) if model.currency else None,
    )
