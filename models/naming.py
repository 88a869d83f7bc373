"""Readable segment names built from what sets each segment apart ("High MRR · heavy API use").

Each feature has a phrase for "clearly above the rest" and one for "clearly below"; a segment's name
joins the phrases of its strongest differences. Names stay unique within a model: a segment whose
name would repeat another's takes its next-strongest difference, and as a last resort a number.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

# (above the rest, below the rest); None where that direction says nothing useful.
PHRASES: dict[str, tuple[str | None, str | None]] = {
    "mrr": ("High MRR", "Low MRR"),
    "seats": ("Large teams", "Small teams"),
    "is_annual": ("Annual plans", "Monthly plans"),
    "tenure_days": ("Long-tenured", "New customers"),
    "ltv": ("High lifetime value", "Low lifetime value"),
    "mrr_growth_90d": ("Growing MRR", "Shrinking MRR"),
    "expansions_365d": ("Expanding", None),
    "contractions_365d": ("Downgrading", None),
    "failed_payments_90d": ("Payment failures", None),
    "refunds_365d": ("Refunded", None),
    "active_days_30d": ("Daily users", "Rarely active"),
    "events_30d": ("Heavy usage", "Light usage"),
    "active_users_30d": ("Many active users", "Few active users"),
    "seat_utilization": ("Seats fully used", "Unused seats"),
    "feature_breadth_90d": ("Broad feature use", "Narrow feature use"),
    "usage_trend": ("Usage rising", "Usage collapsing"),
    "days_since_last_activity": ("Dormant", "Recently active"),
    "api_share_30d": ("Heavy API use", "Hands-on (no API)"),
    "is_canceled": ("Churned", None),
    "mrr_per_seat": ("Premium price per seat", "Low price per seat"),
    "days_since_last_payment": ("Lapsed payments", None),
    "failed_payments_365d": ("Dunning history", None),
    "refund_rate_365d": ("High refund rate", None),
    "active_days_90d": ("Consistently active", "Seldom active"),
    "events_90d": ("High volume", "Low volume"),
    "logins_30d": ("Frequent logins", "Few logins"),
    "events_per_active_user_30d": ("Deep per-user use", "Shallow per-user use"),
}
# Features that measure the same thing over another window or in another unit. A name uses one
# phrase per group: "Rarely active · Few logins · Seldom active" says one thing three times.
SAME_MEANING: dict[str, str] = {
    "active_days_30d": "activity",
    "active_days_90d": "activity",
    "logins_30d": "activity",
    "events_30d": "volume",
    "events_90d": "volume",
    "failed_payments_90d": "payment failures",
    "failed_payments_365d": "payment failures",
    "refunds_365d": "refunds",
    "refund_rate_365d": "refunds",
}
MIN_EFFECT = 0.5  # standardised difference below which a feature does not describe a segment
PARTS = 3


class Effect(Protocol):
    feature: str
    effect: float


def phrase(feature: str, effect: float) -> str | None:
    above, below = PHRASES.get(feature, (f"High {feature}", f"Low {feature}"))
    return above if effect > 0 else below


def _phrases(effects: Sequence[Effect]) -> list[str]:
    found: list[str] = []
    meanings: set[str] = set()
    for item in effects:
        if abs(item.effect) < MIN_EFFECT:
            break
        text = phrase(item.feature, item.effect)
        meaning = SAME_MEANING.get(item.feature, item.feature)
        if text and text not in found and meaning not in meanings:
            found.append(text)
            meanings.add(meaning)
    return found


def name_segments(effects_per_segment: Sequence[Sequence[Effect]]) -> list[str]:
    """A unique name per segment from its effects (strongest first)."""
    candidates = [_phrases(effects) or ["Typical customers"] for effects in effects_per_segment]
    names = [" · ".join(c[:PARTS]) for c in candidates]
    for index, name in enumerate(names):
        clashes = [j for j, other in enumerate(names) if other == name and j != index]
        if not clashes:
            continue
        longer = " · ".join(candidates[index][: PARTS + 1])
        names[index] = longer if longer not in names else f"{name} ({index + 1})"
    return names
