"""The feature registry: every feature's name, family, type, unit and a sentence a salesperson reads.

The names of the ``spec`` features are a public contract (``shared/spec/features.md``); the others
are this project's additions, documented in ``docs/features.md``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

Family = Literal["value", "behavioural"]
Unit = Literal[
    "currency", "currency/month", "count", "days", "ratio", "share", "flag", "seats", "users"
]
# No feature value is larger than this in magnitude; beyond it a value is an error, not a customer.
MAX_MAGNITUDE = 1e12


@dataclass(frozen=True)
class FeatureDefinition:
    name: str
    family: Family
    dtype: Literal["float", "int"]
    unit: Unit
    description: str
    in_spec: bool
    signed: bool = False  # may be negative: a fall in MRR, more refunded than paid

    @property
    def minimum(self) -> float:
        return -MAX_MAGNITUDE if self.signed else 0.0

    @property
    def maximum(self) -> float:
        """Flags are 0 or 1 and shares are parts of a whole; other ratios may exceed 1."""
        return 1.0 if self.unit in ("flag", "share") else MAX_MAGNITUDE

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "minimum": self.minimum, "maximum": self.maximum}


def _value(
    name: str,
    dtype: str,
    unit: str,
    description: str,
    in_spec: bool = True,
    signed: bool = False,
) -> FeatureDefinition:
    return FeatureDefinition(name, "value", dtype, unit, description, in_spec, signed)  # type: ignore[arg-type]


def _usage(
    name: str, dtype: str, unit: str, description: str, in_spec: bool = True
) -> FeatureDefinition:
    return FeatureDefinition(name, "behavioural", dtype, unit, description, in_spec)  # type: ignore[arg-type]


FEATURES: tuple[FeatureDefinition, ...] = (
    _value("mrr", "float", "currency/month", "Monthly recurring revenue"),
    _value("seats", "int", "seats", "Licensed seats"),
    _value("is_annual", "int", "flag", "On an annual plan"),
    _value("tenure_days", "int", "days", "Days as a paying customer"),
    _value("ltv", "float", "currency", "Lifetime revenue (paid minus refunded)", signed=True),
    _value(
        "mrr_growth_90d",
        "float",
        "currency/month",
        "MRR change over the last 90 days",
        signed=True,
    ),
    _value("expansions_365d", "int", "count", "Upgrades in the last year"),
    _value("contractions_365d", "int", "count", "Downgrades in the last year"),
    _value("failed_payments_90d", "int", "count", "Failed payments in the last 90 days"),
    _value("refunds_365d", "float", "currency", "Refunded in the last year"),
    _usage("active_days_30d", "int", "days", "Days with activity in the last 30 days"),
    _usage("events_30d", "float", "count", "Product events in the last 30 days"),
    _usage("active_users_30d", "int", "users", "Active users in the last 30 days"),
    _usage("seat_utilization", "float", "ratio", "Share of seats used in the last 30 days"),
    _usage("feature_breadth_90d", "int", "count", "Distinct features used in the last 90 days"),
    _usage("usage_trend", "float", "ratio", "Activity this month vs the two months before"),
    _usage("days_since_last_activity", "int", "days", "Days since the last product activity"),
    _usage("api_share_30d", "float", "share", "Share of activity through the API (30 days)"),
    # Additions beyond the spec: longer windows, payment recency, price point, churn state.
    _value("is_canceled", "int", "flag", "Subscription canceled", in_spec=False),
    _value("mrr_per_seat", "float", "currency/month", "Price per seat (plan tier)", in_spec=False),
    _value(
        "days_since_last_payment", "int", "days", "Days since the last paid invoice", in_spec=False
    ),
    _value(
        "failed_payments_365d", "int", "count", "Failed payments in the last year", in_spec=False
    ),
    _value(
        "refund_rate_365d",
        "float",
        "ratio",
        "Share of last year's payments refunded",
        in_spec=False,
    ),
    _usage(
        "active_days_90d", "int", "days", "Days with activity in the last 90 days", in_spec=False
    ),
    _usage("events_90d", "float", "count", "Product events in the last 90 days", in_spec=False),
    _usage("logins_30d", "float", "count", "Logins in the last 30 days", in_spec=False),
    _usage(
        "events_per_active_user_30d",
        "float",
        "count",
        "Events per active user (30 days)",
        in_spec=False,
    ),
)

FEATURE_NAMES: tuple[str, ...] = tuple(feature.name for feature in FEATURES)
SPEC_FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in FEATURES if f.in_spec)
_BY_NAME = {feature.name: feature for feature in FEATURES}


def find(name: str) -> FeatureDefinition | None:
    """The definition of ``name``, or ``None`` for a column the registry does not know."""
    return _BY_NAME.get(name)


def feature(name: str) -> FeatureDefinition:
    """The definition of ``name``; ``KeyError`` names the known features when it is unknown."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown feature {name!r}; known: {', '.join(FEATURE_NAMES)}") from None
