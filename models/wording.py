"""Sentences a salesperson reads: feature values in their unit, typical ranges, the assignment.

Pure functions of numbers and the feature registry; the CRM shows these strings as they are.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from feature_store.registry import Reading, find
from models.population import Standing


def _reading(name: str) -> Reading:
    definition = find(name)
    return definition.reads_as if definition else "number"


def describe(name: str) -> str:
    """The registry's description of a feature, or its name for a feature the registry lacks."""
    definition = find(name)
    return definition.description if definition else name


def format_value(name: str, value: float) -> str:
    """``value`` as the registry says this feature reads (yes, 94%, 839.06, 63)."""
    reading = _reading(name)
    if not math.isfinite(value):
        return str(value)
    if reading == "yes/no":
        return "yes" if value >= 0.5 else "no"
    if reading == "percent":
        return f"{value:.0%}"
    if reading == "money":
        return f"{value:,.2f}"
    return f"{value:,.2f}".rstrip("0").rstrip(".") if abs(value) < 1e6 else f"{value:,.0f}"


def typical_text(name: str, low: float, high: float, currency: str | None = None) -> str:
    """A segment's typical range: "50 to 70", "12.00 to 40.00 USD"; one value when both ends
    read the same. A yes/no feature whose members are of both kinds reads "yes or no": "no to
    yes" read as a range of flags to a salesperson."""
    low_text, high_text = _reason_value(name, low), _reason_value(name, high)
    if low_text == high_text:
        text = low_text
    elif _reading(name) == "yes/no":
        text = "yes or no"  # members of both kinds: no range between them
    else:
        text = f"{low_text} to {high_text}"
    return with_currency(name, text, currency)


def _reason_value(name: str, value: float) -> str:
    """``format_value``, but a share that is not 0 never reads "0%", nor one short of all
    "100%": 0.00025 of last year's payments refunded read "0%" beside "higher than 88% of
    customers" (a CRM integrator's review). Pages keep ``format_value``, where two medians that
    both read "0%" say to compare who has any instead."""
    if _reading(name) == "percent" and 0 < value < 1:
        return probability_text(value)
    return format_value(name, value)


def with_currency(name: str, text: str, currency: str | None) -> str:
    """``text`` (a money value or range of feature ``name``) followed by ``currency`` and, for a
    monthly amount, "a month", as the pages write it ("242.13 USD a month": a CRM showing the
    reason read "242.13 USD" where the page beside it said a month); other features' text as it
    is."""
    if _reading(name) != "money":
        return text
    definition = find(name)
    monthly = definition is not None and definition.unit == "currency/month"
    words = " ".join(word for word in (currency, "a month" if monthly else None) if word)
    return f"{text} {words}" if words else text


def contribution_text(
    name: str,
    value: float,
    typical_range: tuple[float, float],
    moves_with: Sequence[tuple[str, float]] = (),
    versus_range: tuple[float, float] | None = None,
    events_30d: float | None = None,
    against: str | None = None,
    currency: str | None = None,
    canceled: bool = False,
) -> str:
    """'Active users in the last 30 days: 63; typical for this segment: 50 to 70', in the
    contrast view the runner-up's range too ('; for the runner-up: 2 to 5': a value outside the
    segment's own range still says "this segment rather than that one" when it is further from
    the runner-up's), then the features that rank customers alike, with the customer's values
    ('; moves with licensed seats (1)'): the model cannot tell them apart, so the reason is theirs
    too. A value that only says the customer had no activity (``FeatureDefinition.idle``, given
    their ``events_30d``) reads as that: 'Activity this month vs the two months before: no
    activity in the last 90 days', not '1'. A reason that counts against the segment ends by
    saying so (``against``: '; points to the runner-up'): a CRM that shows ``text`` alone showed
    a counter-argument as one more reason for the segment. Money names ``currency``, the
    model's, where it records one, and a monthly amount "a month" ("Monthly recurring revenue:
    242.13 USD a month"; the same model's segment pages said so and its reasons neither). A feature that means something else
    for a cancelled customer says so beside its value, where ``canceled``
    (``FeatureDefinition.cancelled_text``)."""
    definition = find(name)
    shown = (
        definition.idle_text
        if definition is not None and definition.idle(value, events_30d)
        else with_currency(name, _reason_value(name, value), currency)
    )
    if canceled and definition is not None and definition.cancelled_text:
        shown += f" ({definition.cancelled_text})"
    typical = typical_text(name, *typical_range, currency=currency)
    text = f"{describe(name)}: {shown}; typical for this segment: {typical}"
    if versus_range is not None:
        text += f"; for the runner-up: {typical_text(name, *versus_range, currency=currency)}"
    if moves_with:
        named = [
            f"{alike_name(other)} ({with_currency(other, _reason_value(other, v), currency)})"
            for other, v in moves_with
        ]
        text += f"; moves with {alike_list(named)}"
    if against:
        text += f"; {against}"
    return text


# What ``contribution_text`` adds to a reason that pushes away from the assigned segment, in the
# contrast view (towards the runner-up) and in the per-segment view.
AGAINST_CONTRAST = "points to the runner-up"
AGAINST_SEGMENT = "counts against this segment"


# A reason names at most this many features that move with it, the most alike first; a long list
# (activity counts that all rise together) would bury the reason itself.
ALIKE_NAMED = 2


def alike_name(name: str) -> str:
    """A feature's description as it reads mid-sentence, after "moves with"."""
    return _mid_sentence(describe(name))


def alike_list(named: Sequence[str]) -> str:
    """'a', 'a and b', 'a, b and 2 more': at most ``ALIKE_NAMED`` of them, most alike first.
    Values are in brackets in ``named``, so a thousands comma never reads as a separator."""
    shown, hidden = list(named[:ALIKE_NAMED]), len(named) - ALIKE_NAMED
    if hidden > 0:
        return f"{', '.join(shown)} and {hidden} more"
    return " and ".join(shown)


def _mid_sentence(text: str) -> str:
    """'Licensed seats' -> 'licensed seats', but 'API calls' stays as it is."""
    return text[0].lower() + text[1:] if len(text) > 1 and text[1].islower() else text


def percentile_of(name: str, standing: Standing | None) -> float | None:
    """The value's percentile, where one means something: a yes/no feature has none (customers
    are either like this one or not; "95.8th percentile" of a flag reads as a contradiction
    beside "like 8% of customers")."""
    if standing is None or _reading(name) == "yes/no":
        return None
    return standing.percentile


def standing_text(name: str, standing: Standing) -> str:
    """'higher than 93% of customers', 'like 88% of customers' (a value most customers share).

    "Higher than" and "lower than" round down, so they never claim more customers than there are.
    """
    if _reading(name) == "yes/no" or standing.same >= 0.5:
        if standing.same == 0:
            return "unlike every customer the model was trained on"
        if standing.same == 1:
            # "like 100% of customers" for a subscription not cancelled, with 328 cancelled: the
            # customers compared with are those the model was trained on, the active ones
            return "like every customer the model was trained on"
        return f"like {_nearest_percent(standing.same)} of customers"
    # "higher than 100% of customers" read as a slip to a CRM's user: every one, in words
    if standing.below == 1:
        return "higher than every customer the model was trained on"
    if standing.above == 1:
        return "lower than every customer the model was trained on"
    if standing.below >= standing.above:
        return f"higher than {math.floor(100 * standing.below)}% of customers"
    return f"lower than {math.floor(100 * standing.above)}% of customers"


def _nearest_percent(share: float) -> str:
    # Never "100%" or "0%" of customers for a share that is only nearly so.
    percent = round(100 * share)
    percent = 99 if percent == 100 and share < 1 else 1 if percent == 0 and share > 0 else percent
    return f"{percent}%"


def probability_text(probability: float) -> str:
    """A confidence or margin in words: "87%"; "over 99%" where it rounds to 100%, and "under 1%"
    where it rounds to 0% but is not 0. Where segments are well apart the segmenter's
    probability saturates for nearly every customer, and "100% confidence" on nearly every page
    read as a certainty the model does not have (a product team's walkthrough)."""
    if probability >= 0.995:
        return "over 99%"
    if 0 < probability < 0.005:
        return "under 1%"
    return f"{probability:.0%}"


def overlap_text(share: float) -> str:
    """A share of customers two versions have in common: "100%" only when it is all of them,
    "over 99%" beside it (a Jaccard of 0.9953 read "100%": a CRM integrator's review)."""
    return "100%" if share == 1 else probability_text(share)


def assignment_summary(
    segment: str,
    confidence: float,
    is_outlier: bool,
    runner_up: str | None,
    *,
    canceled: bool = False,
    last_active: str | None = None,
    tenure_days: float | None = None,
    never_paid: bool = False,
    reasons_favour: str | None = None,
    reasons_against: bool = False,
    unusual_in: Sequence[str] = (),
) -> str:
    """The assignment in one sentence, saying plainly when the customer fits no segment well or
    has cancelled (cancelled customers are beside the segments, not members of one), and then
    which segment it was in when last active, where the model knows (``last_active``). A
    customer younger than the shortest feature window (``NEW_CUSTOMER_DAYS``) is said to be new:
    a CRM's account of 10 days with no usage yet read as "Dormant" with over 99% confidence,
    and sales would treat an onboarding account as one at risk. A customer that ``never_paid``
    (no MRR, no revenue, no day as a paying customer) is not called new: days as a paying
    customer say nothing of its age (a free user of months read "A new customer (0 days)": a
    CRM integrator's review); it is said not to have paid yet. ``reasons_favour``: the segment
    the explanation's reasons lean towards when they do not support the one given
    (``Explanation.supports_segment``), so a reader is told rather than left to find it.
    ``reasons_against``: the per-segment view's reasons argue against the segment given (the
    model that explains the segments gives it less than even odds), said likewise.
    ``unusual_in``: the features that make an unusual customer so, named in its sentence."""
    text = _placed(segment, confidence, is_outlier, runner_up, canceled, last_active, unusual_in)
    young = tenure_days is not None and 0 <= tenure_days < LONGEST_WINDOW_DAYS
    if young and not canceled and not never_paid:
        days = "1 day" if round(tenure_days) == 1 else f"{round(tenure_days)} days"
        if tenure_days < NEW_CUSTOMER_DAYS:  # type: ignore[operator]
            text += (
                f" A new customer ({days}): its {NEW_CUSTOMER_DAYS}- and "
                f"{LONGEST_WINDOW_DAYS}-day figures cover only that time."
            )
        else:
            # 45 days old: "MRR change over the last 90 days" was its whole MRR, and 45 days
            # without activity read as a lapse (a product manager's review)
            text += (
                f" A young customer ({days}): its {LONGEST_WINDOW_DAYS}-day figures cover only "
                "that time."
            )
    if never_paid and not canceled:
        text += " It has not paid yet: no MRR and no revenue."
    if reasons_favour is not None:
        text += (
            f" The reasons below lean towards '{reasons_favour}': the model that explains the "
            "segments would place this customer there, so read them with care."
        )
    elif reasons_against:
        text += (
            f" The reasons below mostly count against '{segment}': the model that explains the "
            "segments finds this customer unlike its members, so read them with care."
        )
    return text


# The shortest window the features count over (30 days): a customer younger than it has less
# history in every windowed figure than the segments' members.
NEW_CUSTOMER_DAYS = 30
# The longest window most activity and MRR-change features count over (90 days).
LONGEST_WINDOW_DAYS = 90


def _placed(
    segment: str,
    confidence: float,
    is_outlier: bool,
    runner_up: str | None,
    canceled: bool,
    last_active: str | None,
    unusual_in: Sequence[str] = (),
) -> str:
    if canceled and last_active is not None:
        return f"Cancelled customer: not in a segment; when last active it was in '{last_active}'."
    if canceled:
        # "nearest" by the vector it has now, with no MRR and no seats, which says little about
        # where it was while it paid: a product team read "nearest 'Dormant'" as its history
        return (
            f"Cancelled customer: not in a segment; by its vector now (no subscription), the "
            f"nearest segment is '{segment}'."
        )
    if is_outlier:
        most = f", most of all in {alike_list([alike_name(n) for n in unusual_in])}"
        return (
            f"Unusual customer: unlike the members of every segment{most if unusual_in else ''}; "
            f"the nearest segment is '{segment}'."
        )
    text = f"In segment '{segment}' with {probability_text(confidence)} confidence"
    return f"{text}; runner-up '{runner_up}'." if runner_up else f"{text}."
