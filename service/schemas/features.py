"""``FeatureVector``: a full feature vector in a request, one strict, bounded field per feature.

Built from the feature registry so that the request schema, its documentation and the model can
never disagree on names or ranges: each feature's ``minimum`` and ``maximum`` come from the registry
(flags are 0 or 1, shares lie in [0, 1], only signed features may be negative), and integer features
must be whole numbers.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, create_model

from feature_store.registry import FEATURES, FeatureDefinition

EXAMPLE_VECTOR: dict[str, float] = {
    "mrr": 3052.46,
    "seats": 64,
    "is_annual": 1,
    "tenure_days": 207,
    "ltv": 36629.52,
    "mrr_growth_90d": 0.0,
    "expansions_365d": 0,
    "contractions_365d": 0,
    "failed_payments_90d": 0,
    "refunds_365d": 0.0,
    "active_days_30d": 24,
    "events_30d": 360.0,
    "active_users_30d": 26,
    "seat_utilization": 0.40625,
    "feature_breadth_90d": 9,
    "usage_trend": 0.8049,
    "days_since_last_activity": 0,
    "api_share_30d": 0.9694,
    "is_canceled": 0,
    "mrr_per_seat": 47.69,
    "days_since_last_payment": 207,
    "failed_payments_365d": 0,
    "refund_rate_365d": 0.0,
    "active_days_90d": 68,
    "events_90d": 1255.0,
    "logins_30d": 3.0,
    "events_per_active_user_30d": 13.85,
}


def bounds(definition: FeatureDefinition) -> dict[str, float]:
    """The ``Field`` constraints of one feature: ``ge``, ``le`` and ``multiple_of``."""
    limits: dict[str, float] = {"ge": definition.minimum, "le": definition.maximum}
    if definition.dtype == "int":
        limits["multiple_of"] = 1
    return limits


def _field(definition: FeatureDefinition) -> Any:
    number = Annotated[
        float,
        Field(
            strict=True,
            allow_inf_nan=False,
            description=f"{definition.description} ({definition.unit}).",
            **bounds(definition),
        ),
    ]
    return (number, ...)


class _Vector(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        json_schema_extra={"examples": [EXAMPLE_VECTOR]},
    )


FeatureVector: type[BaseModel] = create_model(  # type: ignore[call-overload]
    "FeatureVector",
    __base__=_Vector,
    __doc__="Every feature of the model by name; numbers only, within each feature's range.",
    **{definition.name: _field(definition) for definition in FEATURES},
)
