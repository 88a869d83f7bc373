"""What the browser pages and the shared report say about a model, in plain words.

A card per segment (size, MRR share, backtested churn, median LTV, where it came from), churned
customers as their own line, and what sets a segment apart in the features' own units ("median 64
seats vs 6 overall"). Pure functions of a ``SegmentModel``; no I/O.

Backtests, churned customers and lineage are optional: a model that lacks them says "not
measured" rather than showing a number it does not have (``getattr`` keeps older models readable).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Literal

import numpy as np

from feature_store.registry import find
from models.business import (
    BACKTEST_WINDOW_DAYS,
    BUYERS,
    MIN_COHORT,
    NO_CANCELLATION,
    NO_COHORT,
    NO_SUBSCRIPTIONS,
    window_days_of,
)
from models.gates import MIN_SILHOUETTE
from models.population import LEVELS, Standing
from models.wording import describe, format_value, overlap_text

if TYPE_CHECKING:
    from models.bundle import SegmentModel
    from models.business import ChurnedCustomers, Rate, SegmentBacktest
    from models.lineage import Lineage, SegmentTransition
    from models.profiles import SegmentProfile

NOT_MEASURED = "not measured"
# Units a reader expects after the number; shares, ratios and flags carry their own wording.
_UNIT_WORDS = {
    "seats": "seats",
    "days": "days",
    "users": "users",
    "count": "",
    "currency": "",
    "currency/month": "a month",
}
Direction = Literal["more", "less", "same"]


def segment_ids(model: SegmentModel) -> list[int]:
    """Public id of each segment position: the lineage's stable ids when the model has them."""
    lineage: Lineage | None = getattr(model, "lineage", None)
    positions = list(range(len(model.profiles)))
    if lineage is not None and len(lineage.ids) == len(positions):
        return [int(i) for i in lineage.ids]
    return positions


def with_unit(name: str, value: float, currency: str | None = None) -> str:
    """``64 seats``, ``839.06 USD a month``, ``94%``: the value as the feature's unit reads; money
    names ``currency`` where the model records one (a product team read "Lifetime revenue:
    median 331.24 vs 647.74 overall" on pages whose cards said GBP)."""
    definition = find(name)
    unit = definition.unit if definition else ""
    words = _UNIT_WORDS.get(unit, "")
    if currency and unit in ("currency", "currency/month"):
        words = f"{currency} {words}".strip()
    text = format_value(name, value)
    if text == "1" and words.endswith("s"):  # "1 seat", "1 day", "1 user"
        words = words[:-1]
    return f"{text} {words}" if words else text


def customer_value_text(
    name: str,
    value: float,
    currency: str | None = None,
    events_30d: float | None = None,
    canceled: bool = False,
) -> str:
    """One customer's value as its explanation shows it, on every page and chart: what an idle
    value means for a customer with no activity (``FeatureDefinition.idle``: "no activity in the
    last 30 days", not "0%"), otherwise the value in its unit (``with_unit``), with what it means
    for a cancelled customer where that differs (``FeatureDefinition.cancelled_text``)."""
    definition = find(name)
    if definition is not None and definition.idle(value, events_30d):
        return str(definition.idle_text)
    text = with_unit(name, value, currency)
    if canceled and definition is not None and definition.cancelled_text:
        text += f" ({definition.cancelled_text})"
    return text


def range_text(low: float, high: float) -> str:
    """A rate's 90% interval as the pages word it: "5.7% to 17%"."""
    return f"{percent(low)} to {percent(high)}"


def percent(share: float) -> str:
    return f"{100 * share:.1f}%" if 0 < share < 0.1 else f"{share:.0%}"


@dataclass(frozen=True)
class BacktestFigure:
    """One figure of a segment's backtest as a page shows it: ``label`` "Contraction",
    ``value`` "19%", ``meaning`` "paying less, not cancelled", ``count`` "139 of 748",
    ``range`` its 90% interval "16% to 21%" (None without one)."""

    label: str
    value: str
    meaning: str
    count: str | None
    range: str | None


@dataclass(frozen=True)
class SegmentCard:
    position: int
    id: int
    name: str
    customers: int
    share: float
    mrr_share: float
    ltv_median: float
    churn: str  # backtested churn ("10%"), or "not measured"
    # beside a segment with no churn bar, why ("not measured: it would have held 5 paying
    # customers 90 days ago, 10 needed"); the churn figure otherwise
    churn_note: str
    churn_rate: float | None
    churn_interval: tuple[float, float] | None
    net_mrr_retention: str  # MRR kept by the same cohort ("95%"), or "not measured"
    net_mrr_retention_range: str | None  # its 90% interval ("90% to 100%"), or None
    # whom the two backtest figures are of, or why they are missing (``backtest_basis_text``);
    # None without a backtest
    backtest_basis: str | None
    window_days: int | None  # the backtest's window; None without a backtest
    origin: str | None  # "since version 3; survived from version 4 (82% of customers kept)"
    # every figure of the backtest (churn, contraction, expansion, MRR kept) with its count and
    # range, for a segment's own page and the report; empty when not measured
    backtest_figures: tuple[BacktestFigure, ...] = ()
    # The money share the pages show (``money_share_of``): of MRR, or of revenue to date when
    # nobody holds a subscription; ``money`` names which ("MRR", "revenue to date").
    money_share: float = 0.0
    money: str = "MRR"
    # whom those figures are of, or why they are missing (``backtest_cohort_text``; for a model
    # with no backtest at all, ``unmeasured_backtest_text``)
    backtest_cohort: str | None = None
    # where the segment's customers of today were at the window's start, when most were
    # elsewhere (``members_then_text``): a segment page's backtest says it too
    members_then: str | None = None

    # the currency money is in, where the model records one ("USD"): a product team read
    # "Median LTV 126,480" with no unit on every page but the overview
    currency: str | None = None
    # MRR today's members lost to downgrades over the last 90 days: a segment of downgraders
    # showed churn and MRR kept "not measured" and no money figure at all, though the catalog
    # route had this one (a product team's walkthrough)
    mrr_lost_90d: float = 0.0
    # A business of invoices alone (cohort of buyers): the share who paid again within the
    # window ("62%", or "not measured" with too few), its rate and 90% interval, and what the
    # chart writes beside a segment with no bar; None for subscription businesses.
    repurchase: str | None = None
    repurchase_rate: float | None = None
    repurchase_interval: tuple[float, float] | None = None
    repurchase_note: str | None = None
    # the whole business's figure beside it ("all segments: 57%"), where the model recorded it
    repurchase_overall: str | None = None

    @property
    def repurchase_range(self) -> str | None:
        """The bought-again figure's 90% interval ("55% to 68%"); None when not measured."""
        return None if self.repurchase_interval is None else range_text(*self.repurchase_interval)

    @property
    def mrr_lost_text(self) -> str:
        # MRR: a month's worth ("7,016 USD" read as a one-off sum: a product team's review)
        shown = f"{self.mrr_lost_90d:,.0f}"
        return f"{shown} {self.currency} a month" if self.currency else f"{shown} a month"

    @property
    def ltv_text(self) -> str:
        # a headline figure: whole units from a thousand up ("126,480", not "126,479.88")
        if abs(self.ltv_median) >= 1000:
            shown = f"{self.ltv_median:,.0f}"
        else:
            shown = format_value("ltv", self.ltv_median)
        return f"{shown} {self.currency}" if self.currency else shown

    @property
    def churn_range(self) -> str | None:
        """The churn figure's 90% interval ("5.7% to 17%"); None when not measured."""
        return None if self.churn_interval is None else range_text(*self.churn_interval)

    @property
    def backtest_heading(self) -> str:
        """'The last 90 days (backtest)': the heading of a segment's backtest figures; for a
        business of invoices alone, whose figure is of the customers the segment would have held
        at the window's start, not of today's members, 'Customers like these 90 days ago
        (backtest)'."""
        days = self.window_days or BACKTEST_WINDOW_DAYS
        if self.repurchase is not None:
            return f"Customers like these {days} days ago (backtest)"
        return f"The last {days} days (backtest)"


def _backtest_of(model: SegmentModel, position: int) -> SegmentBacktest | None:
    backtests: Sequence[SegmentBacktest] | None = getattr(model, "backtest", None)
    for backtest in backtests or ():
        if backtest.segment == position:
            return backtest
    return None


def churn_text(backtest: SegmentBacktest | None) -> str:
    """'12%': the backtested share of the segment's cohort who cancelled within the window;
    "not measured" without a figure (``backtest_basis_text`` says whom it is of, or why it is
    missing; ``SegmentCard.churn_range`` gives its interval)."""
    if backtest is None or backtest.churn is None:
        return NOT_MEASURED
    return percent(backtest.churn.rate)


def retention_text(backtest: SegmentBacktest | None) -> str:
    """'95%': what the churn figure's cohort pays now against what it paid at the window's
    start, cancelled customers counted at 0; "not measured" without a figure."""
    if backtest is None or backtest.net_mrr_retention is None:
        return NOT_MEASURED
    return f"{backtest.net_mrr_retention:.0%}"


def retention_range_text(backtest: SegmentBacktest | None) -> str | None:
    """'90% to 100%': MRR kept's 90% interval; None without one."""
    interval = None if backtest is None else backtest.net_mrr_retention_interval
    if backtest is None or backtest.net_mrr_retention is None or not interval:
        return None
    return f"{interval[0]:.0%} to {interval[1]:.0%}"


def _too_few(backtest: SegmentBacktest) -> str:
    """Why a backtest has no figure: 'it would have held 3 paying customers 90 days ago, 10
    needed' ('3 customers who had bought', for a business of invoices alone)."""
    many = "" if backtest.cohort == 1 else "s"
    kind = (
        f"customer{many} who had bought"
        if backtest.cohort_kind == BUYERS
        else f"paying customer{many}"
    )
    return (
        f"it would have held {backtest.cohort:,} {kind} {backtest.window_days} days ago, "
        f"{MIN_COHORT} needed"
    )


def churn_note_text(backtest: SegmentBacktest | None) -> str:
    """What the churn chart writes beside a segment: why it has no bar ('not measured: it would
    have held 3 paying customers 90 days ago, 10 needed'), or its figure."""
    if backtest is not None and backtest.cohort_kind == BUYERS:
        return f"{NOT_MEASURED}: no subscription to churn"
    if backtest is not None and backtest.churn is None:
        return f"{NOT_MEASURED}: {_too_few(backtest)}"
    return churn_text(backtest)


def repurchase_text(backtest: SegmentBacktest | None) -> str | None:
    """'62%': the share of a segment's buyers who paid again within the window, "not measured"
    with too few; None when the backtest is not of buyers."""
    if backtest is None or backtest.cohort_kind != BUYERS:
        return None
    return NOT_MEASURED if backtest.repurchase is None else percent(backtest.repurchase.rate)


def _rate_figure(label: str, meaning: str, measured: Rate) -> BacktestFigure:
    return BacktestFigure(
        label=label,
        value=percent(measured.rate),
        meaning=meaning,
        count=f"{measured.count:,} of {measured.total:,}",
        range=range_text(measured.low, measured.high),
    )


def backtest_figures(
    backtest: SegmentBacktest | None, window: BuyersWindow | None = None
) -> tuple[BacktestFigure, ...]:
    """Every figure of a segment's backtest with its count and 90% range: the share of the
    cohort who cancelled, who pay less without cancelling, who pay more, and the MRR the cohort
    kept; for buyers, the share who paid again (``window`` dates it). Empty when not measured
    (``backtest_basis_text`` says why)."""
    if backtest is None:
        return ()
    if backtest.cohort_kind == BUYERS:
        if backtest.repurchase is None:
            return ()
        when = window.between if window is not None else f"within {backtest.window_days} days"
        meaning = f"paid again {when} (more paid than refunded)"
        return (_rate_figure("Bought again", meaning, backtest.repurchase),)
    churn, contraction, expansion = backtest.churn, backtest.contraction, backtest.expansion
    if churn is None or contraction is None or expansion is None:
        return ()
    return (
        _rate_figure("Churn", "cancelled", churn),
        _rate_figure("Contraction", "paying less, not cancelled", contraction),
        _rate_figure("Expansion", "paying more", expansion),
        BacktestFigure(
            label="MRR kept",
            value=retention_text(backtest),
            meaning="what they pay now against then, cancelled at 0",
            count=None,
            range=retention_range_text(backtest),
        ),
    )


@dataclass(frozen=True)
class BuyersWindow:
    """The dates and the whole-business figure a buyers' backtest is read against: "between
    2011-09-11 and 2011-12-09", "2011-09-10", 3,357 buyers, 57% of whom bought again."""

    between: str
    bought_by: str
    buyers: int | None
    overall: float | None

    @classmethod
    def of(cls, model: SegmentModel, days: int) -> BuyersWindow:
        metrics = getattr(model, "metrics", {}) or {}
        buyers, overall = metrics.get("backtest_buyers"), metrics.get("backtest_repurchase_rate")
        counted = None if buyers is None else int(buyers)
        window = window_days_of(getattr(model, "features_as_of", None), days)
        if window is None:
            return cls(f"within {days} days", "the window's start", counted, overall)
        first, last = window
        return cls(
            f"between {first:%Y-%m-%d} and {last:%Y-%m-%d}",
            f"{first - timedelta(days=1):%Y-%m-%d}",
            counted,
            overall,
        )

    @property
    def overall_text(self) -> str:
        """'; across all segments, 57% of 3,357' (empty when the model did not record it)."""
        if self.buyers is None or self.overall is None:
            return ""
        return f"; across all segments, {percent(self.overall)} of {self.buyers:,}"


def buyers_basis_text(backtest: SegmentBacktest, window: BuyersWindow) -> str:
    """Whom a buyers' card figure counts, with its dates and the whole business beside it: the
    customers the segment would have held at the window's start, not today's members (a
    retailer read a dormant segment's 41% as "41% of my dormant customers are buying")."""
    if backtest.repurchase is None:
        return f"Bought again not measured: {_too_few(backtest)}."
    return (
        f"Customers like these {backtest.window_days} days ago: of the {backtest.cohort:,} who "
        f"had bought by {window.bought_by} and whom this segment would have held then, "
        f"{percent(backtest.repurchase.rate)} paid again {window.between}{window.overall_text}."
    )


def buyers_cohort_text(backtest: SegmentBacktest, window: BuyersWindow) -> str:
    """The same for a segment's own page, saying how they were placed and what counts."""
    if backtest.repurchase is None:
        return f"Bought again not measured: {_too_few(backtest)}."
    return (
        f"Of the {backtest.cohort:,} customers who had bought by {window.bought_by} and whom "
        f"the model places in this segment by their features that day: the share who paid "
        f"again {window.between}, more paid than refunded, with its 90% range"
        f"{window.overall_text}. They are customers like today's members, as they were then, "
        "not today's members themselves. No customer holds a subscription, so there is no churn "
        "to measure."
    )


def backtest_basis_text(backtest: SegmentBacktest | None) -> str | None:
    """Whom a card's churn and MRR kept are of: 'Of the 340 paying customers it would have held
    90 days ago: the share who cancelled since, and what they pay now against then.' Or why
    there are no figures: 'Not measured: it would have held 3 paying customers 90 days ago, 10
    needed.' The backtest's cohort is the customers paying at the window's start whom the model
    places in the segment by their features then, not today's members: "would have held" says
    so. None without a backtest."""
    if backtest is None:
        return None
    if backtest.cohort_kind == BUYERS:
        if backtest.repurchase is None:
            return f"Bought again not measured: {_too_few(backtest)}."
        return f"{_cohort_phrase(backtest)}: the share who paid again since (with its 90% range)."
    if backtest.churn is None:
        return f"Not measured: {_too_few(backtest)}."
    return (
        f"{_cohort_phrase(backtest)}: "
        "the share who cancelled since, and what they pay now against then (with 90% ranges)."
    )


def members_then_text(model: SegmentModel, position: int) -> str | None:
    """Where a segment's customers of today were at the backtest window's start, when fewer than
    half of them were in it then: 'Its 301 customers 90 days ago: 295 in Typical customers (0),
    6 not paying.' A segment of recent downgrades held nobody then, so its backtest is empty and
    its customers' losses are counted under the segment they were in: this says which. None
    when most were in it already, or the model did not record it."""
    backtest = _backtest_of(model, position)
    then = None if backtest is None else backtest.members_then
    if then is None or then.total == 0:
        return None
    own = segment_ids(model)[position]
    if then.by_segment.get(own, 0) >= then.total / 2:
        return None
    names = dict(zip(segment_ids(model), (p.name for p in model.profiles), strict=True))
    places = [
        (
            "in this segment"
            if segment_id == own
            else f"in {names.get(segment_id, 'a retired segment')} ({segment_id})",
            count,
        )
        for segment_id, count in then.by_segment.items()
    ]
    shown = sorted((p for p in places if p[1]), key=lambda place: -place[1])[:MEMBERS_THEN_SHOWN]
    parts = [f"{count:,} {where}" for where, count in shown]
    rest = sum(then.by_segment.values()) - sum(count for _, count in shown)
    if rest:
        parts.append(f"{rest:,} in other segments")
    # those in no segment then are always named: "3 elsewhere" read as a retired segment when
    # they were customers who had not bought yet (a retailer's review)
    buyers = backtest is not None and backtest.cohort_kind == BUYERS
    if then.not_paying_then:
        parts.append(f"{then.not_paying_then:,} {'had not bought yet' if buyers else 'not paying'}")
    return (
        f"Its {then.total:,} customers {backtest.window_days} days ago: "  # type: ignore[union-attr]
        f"{', '.join(parts)}."
    )


MEMBERS_THEN_SHOWN = 3


def backtest_cohort_text(backtest: SegmentBacktest | None) -> str | None:
    """Whom all of ``backtest_figures`` are of, for a segment's own page: 'Of the 340 paying
    customers it would have held 90 days ago, placed by their features then: what they did
    by the features' date, each with its 90% range.' Or why there are none; None without a
    backtest."""
    if backtest is None or (backtest.churn is None and backtest.repurchase is None):
        return backtest_basis_text(backtest)
    if backtest.cohort_kind == BUYERS:
        return (
            f"{_cohort_phrase(backtest)}, placed by their features then: the share who paid again "
            "by the features' date, with its 90% range. No customer holds a subscription, so there "
            "is no churn to measure."
        )
    return (
        f"{_cohort_phrase(backtest)}, placed by their features then: what they did by the "
        "features' date, each with its 90% range."
    )


def unmeasured_backtest_text(model: SegmentModel) -> str:
    """Why a model has no backtest at all, for a segment's page and the report: the reason
    training gave (usage or billing that does not cover the window, nobody paying at its start),
    or that the model predates the backtest."""
    churned: ChurnedCustomers | None = getattr(model, "churned", None)
    if churned is None:
        return "Not measured: this model was trained before churn was backtested."
    reason = churned.backtest_unmeasured or NO_COHORT
    return f"Churn, contraction, expansion and MRR kept not measured: {reason}."


def _cohort_phrase(backtest: SegmentBacktest) -> str:
    if backtest.cohort_kind == BUYERS:
        return (
            f"Of the {backtest.cohort:,} customers who had bought before, whom it would have held "
            f"{backtest.window_days} days ago"
        )
    return (
        f"Of the {backtest.cohort:,} paying customers it would have held "
        f"{backtest.window_days} days ago"
    )


def transition_of(model: SegmentModel, segment_id: int) -> SegmentTransition | None:
    lineage: Lineage | None = getattr(model, "lineage", None)
    if lineage is None:
        return None
    return next((t for t in lineage.transitions if t.id == segment_id), None)


def origin_text(model: SegmentModel, segment_id: int) -> str | None:
    """Where the segment came from across model versions, when the model records it."""
    lineage: Lineage | None = getattr(model, "lineage", None)
    transition = transition_of(model, segment_id)
    if lineage is None or transition is None:
        return None
    since = f"since version {transition.since}"
    returned = getattr(transition, "returned_from", None)  # lineage stored before roll-backs
    if returned is not None:
        # its id came back: "new in this version" read as if a CRM had never seen it
        since += f"; back in this version (version {returned} served it until it was replaced)"
    parents = ", ".join(str(p) for p in transition.parents)
    if lineage.previous is None or transition.transition == "new":
        if not lineage.previous:
            return since
        many = "segments" if len(transition.parents) > 1 else "segment"
        origin = (
            f", from customers of {many} {parents} of version {lineage.previous}"
            if transition.parents
            else ""
        )
        return f"{since}{origin}" if returned else f"{since}; new in this version{origin}"
    kept = f", {overlap_text(transition.jaccard)} overlap" if transition.jaccard is not None else ""
    # a split's parents: the segment it split from, then retired ones it took customers of
    first, *others = transition.parents or (None,)
    segments = "segments" if len(others) > 1 else "segment"
    taken = f", with customers of {segments} {', '.join(map(str, others))}" if others else ""
    what = {
        "survived": f"continues from version {lineage.previous}{kept}",
        "split": f"split from segment {first} of version {lineage.previous}{taken}",
        "merged": f"merged from segments {parents} of version {lineage.previous}",
    }.get(transition.transition, transition.transition)
    return f"{since}; {what}"


# What a segment's share of money is of when nobody holds a subscription: lifetime value.
REVENUE_TO_DATE = "revenue to date"


def money_share_of(model: SegmentModel, profile: SegmentProfile) -> tuple[float, str]:
    """A segment's share of the company's money, and of what: of MRR, or, when no segment holds
    any MRR (a business of invoices alone), of revenue to date (lifetime value), where the model
    recorded it. Every segment of a retailer's export read "0% of MRR"."""
    if any(p.mrr_share > 0 for p in model.profiles) or profile.ltv_share is None:
        return profile.mrr_share, "MRR"
    return profile.ltv_share, REVENUE_TO_DATE


def segment_cards(model: SegmentModel) -> list[SegmentCard]:
    ids = segment_ids(model)
    cards = []
    for position, profile in enumerate(model.profiles):
        backtest = _backtest_of(model, position)
        churn = backtest.churn if backtest is not None else None
        again = backtest.repurchase if backtest is not None else None
        buyers = backtest is not None and backtest.cohort_kind == BUYERS
        window = BuyersWindow.of(model, backtest.window_days) if buyers else None  # type: ignore[union-attr]
        moved = members_then_text(model, position)
        money_share, money = money_share_of(model, profile)
        cards.append(
            SegmentCard(
                position=position,
                id=ids[position],
                name=profile.name,
                customers=profile.size,
                share=profile.share,
                mrr_share=profile.mrr_share,
                ltv_median=profile.ltv_median,
                money_share=money_share,
                money=money,
                churn=churn_text(backtest),
                churn_note=churn_note_text(backtest),
                churn_rate=None if churn is None else churn.rate,
                churn_interval=None if churn is None else (churn.low, churn.high),
                net_mrr_retention=retention_text(backtest),
                net_mrr_retention_range=retention_range_text(backtest),
                backtest_basis=" ".join(
                    text
                    for text in (
                        buyers_basis_text(backtest, window)
                        if buyers and window is not None
                        else backtest_basis_text(backtest),
                        moved,
                    )
                    if text
                )
                or None,
                members_then=moved,
                window_days=None if backtest is None else backtest.window_days,
                origin=origin_text(model, ids[position]),
                backtest_figures=backtest_figures(backtest, window),
                backtest_cohort=(
                    buyers_cohort_text(backtest, window)
                    if buyers and window is not None
                    else backtest_cohort_text(backtest)
                )
                or unmeasured_backtest_text(model),
                currency=reporting_currency(model),
                mrr_lost_90d=float(getattr(profile, "mrr_lost_90d", 0.0) or 0.0),
                repurchase=repurchase_text(backtest),
                repurchase_overall=None
                if window is None or window.overall is None
                else f"all segments: {percent(window.overall)}",
                repurchase_rate=None if again is None else again.rate,
                repurchase_interval=None if again is None else (again.low, again.high),
                repurchase_note=None
                if backtest is None or backtest.cohort_kind != BUYERS
                else (
                    repurchase_text(backtest) if again else f"{NOT_MEASURED}: {_too_few(backtest)}"
                ),
            )
        )
    return cards


def as_sentence(clause: str) -> str:
    """A clause the CLI prints after "note:" as a sentence of a page: capitalised, full stop."""
    return clause[0].upper() + clause[1:] + "."


def reporting_currency(model: SegmentModel) -> str | None:
    """The currency the model's money is in: the reporting one where it converted several, the
    one its customers pay in otherwise; None when it records neither."""
    levels = getattr(model, "currency", None)  # models pickled before the field have none
    if levels is not None and levels.converts:
        return str(levels.reporting)
    return getattr(model, "money_currency", None)


def currency_line(model: SegmentModel) -> str | None:
    """Which currency MRR and lifetime value are in: "Money is in USD." when customers pay in
    one; when they pay in several, which levels converted it (the model's price levels,
    ``feature_store.currency``). None when the model records neither."""
    levels = getattr(model, "currency", None)  # models pickled before the field have none
    if levels is None or not levels.converts:
        money = reporting_currency(model)
        return f"Money is in {money}." if money else None
    return as_sentence(levels.describe())


def weak_structure_text(silhouette: float) -> str | None:
    """Segments of weak structure said in words a product analyst reads, or None: the gate's line
    is an engineer's, and a new user on RavenStack's accounts (silhouette 0.214) read two halves
    of one activity gradient as two kinds of customer. At most ``MIN_SILHOUETTE`` is Kaufman and
    Rousseeuw's "no substantial structure"."""
    if not math.isfinite(silhouette) or silhouette > MIN_SILHOUETTE:
        return None
    return (
        f"the segments are weakly separated (silhouette {silhouette:.2f}; at most "
        f'{MIN_SILHOUETTE:g} is "no substantial structure", Kaufman and Rousseeuw): the '
        "customers form a continuum, and the segments are slices of it rather than distinct "
        "kinds of customer"
    )


def structure_line(model: SegmentModel) -> str | None:
    """``weak_structure_text`` of the model's silhouette, as a sentence; None when it is not
    weak or not recorded."""
    silhouette = model.metrics.get("silhouette")
    text = None if silhouette is None else weak_structure_text(float(silhouette))
    return None if text is None else as_sentence(text)


# The churned line of a business of invoices alone: nobody can cancel, and who stops buying is
# what "Bought again" measures.
NO_SUBSCRIPTION_LINE = (
    "none can be counted, as no customer holds a subscription (invoices alone make none); a "
    "customer who stops buying stays in the segment it looks like (often one named Dormant)"
)
# ... and where the buyers' backtest measured something (not for a business too young for it)
BOUGHT_AGAIN_CLAUSE = (
    ', and each segment\'s "Bought again" says how many customers like its own came back'
)


def no_subscription_line(model: SegmentModel) -> str:
    """The churned line of a business of invoices alone, naming "Bought again" only where the
    backtest measured it (a young retailer's cards all say "not measured": a review)."""
    measured = bool(getattr(model, "metrics", {}).get("backtest_buyers"))
    return NO_SUBSCRIPTION_LINE + (BOUGHT_AGAIN_CLAUSE if measured else "") + "."


def churned_line(model: SegmentModel) -> str | None:
    """Churned customers in one sentence, beside the segments; None when not measured.

    ``lost_mrr`` is the backtest's: the MRR that the customers paying at the window's start
    (``BACKTEST_WINDOW_DAYS`` before the features' date) and cancelled since paid then; those who
    cancelled earlier paid ``before_window_lost_mrr`` when last active. ``last_segment`` places
    both when they were last active (``pipelines.train.measure_business``,
    ``place_earlier_churn``); the count is of everyone cancelled by the features' date."""
    churned: ChurnedCustomers | None = getattr(model, "churned", None)
    if churned is None:
        return None
    backtests: Sequence[SegmentBacktest] | None = getattr(model, "backtest", None)
    days = backtests[0].window_days if backtests else BACKTEST_WINDOW_DAYS
    text = (
        f"{churned.count:,} customers had cancelled by the features' date"
        if churned.selection is None
        else f"{churned.count:,} of the customers selected ({churned.selection}) {days} days "
        "before the features' date had cancelled by then"
    )
    if not model.metrics.get("backtest_cohort"):  # nobody paying then, or no end to see them at
        if churned.backtest_unmeasured == NO_SUBSCRIPTIONS and churned.count == 0:
            # a retailer read "0 customers had cancelled" as nobody lost, beside a third of its
            # customers dormant
            return no_subscription_line(model)
        if churned.backtest_unmeasured not in (None, NO_COHORT):
            return (
                f"{text}; the MRR they took and churn per segment are not measured: "
                f"{churned.backtest_unmeasured}."
            )
        return (
            f"{text}; no customer was paying {days} days before it, so the MRR they took and "
            "churn per segment are not measured."
        )
    if churned.count == 0 and churned.selection is None:
        return as_sentence(NO_CANCELLATION)
    # in the model's currency, a month: "took 9,916.34 of MRR" named neither (a product
    # manager's review)
    currency = reporting_currency(model)
    text += (
        f"; those paying {days} days before it who cancelled since took MRR of "
        f"{with_unit('mrr', churned.lost_mrr, currency)}"
    )
    if churned.before_window:
        text += (
            f"; the {churned.before_window:,} who cancelled earlier paid "
            f"{with_unit('mrr', churned.before_window_lost_mrr or 0.0, currency)} when last active"
        )
    if churned.backtest_unmeasured:
        return f"{text}; churn per segment not measured: {churned.backtest_unmeasured}."
    if not churned.last_segment:
        return text + "."
    names, ids = model.segment_names, segment_ids(model)
    where = sorted(churned.last_segment.items(), key=lambda item: -item[1])[:3]
    parts = [f"{count:,} in {names[s]} ({ids[s]})" for s, count in where if s < len(names)]
    return f"{text}; where they were when last active: {', '.join(parts)}."


@dataclass(frozen=True)
class Contrast:
    """One feature of a segment against every customer, in the feature's unit."""

    feature: str
    label: str
    segment_median: float
    overall_median: float | None
    low: float  # the segment's 25th and 75th percentiles
    high: float
    percentile: float | None  # where the segment's median stands among all customers
    direction: Direction
    distinguishing: bool
    # Where the medians read the same, what differs instead, as (kind, segment, overall): the
    # share of customers with any ("share", for a count most customers have none of) or the mean
    # ("mean"); None when the medians differ, or nothing recorded differs either.
    instead: tuple[Literal["share", "mean"], float, float] | None = None
    currency: str | None = None  # the model's money currency, said with money values

    @property
    def text(self) -> str:
        """'median 64 seats vs 6 overall' (flags: 'mostly yes vs mostly no overall'); where the
        medians read the same, what differs instead ('4% have any vs 13% overall')."""
        if _is_flag(self.feature) and self.instead is not None:  # "On an annual plan: 4% vs 13%"
            return f"{self.instead[1]:.0%} vs {self.instead[2]:.0%} overall"
        if _is_flag(self.feature):
            segment = "mostly yes" if self.segment_median >= 0.5 else "mostly no"
            if self.overall_median is None:
                return segment
            overall = "mostly yes" if self.overall_median >= 0.5 else "mostly no"
            return f"{segment} vs {overall} overall"
        text = f"median {with_unit(self.feature, self.segment_median, self.currency)}"
        if self.overall_median is None:
            return text
        if self.instead is not None:
            kind, segment, overall_value = self.instead
            if kind == "share":
                return f"{segment:.0%} have any vs {overall_value:.0%} overall"
            # "on average" on both sides: beside another segment's "median … vs 0.00 overall",
            # the bare "overall" read as the same figure changing from page to page
            return (
                f"on average {with_unit(self.feature, segment, self.currency)} vs "
                f"{format_value(self.feature, overall_value)} on average overall"
            )
        # The unit is said once: "median 64 seats vs 6 overall".
        return f"{text} vs {format_value(self.feature, self.overall_median)} overall"

    @property
    def offset(self) -> float:
        """How far the segment stands from the average customer, in percentile points (0: like
        everyone; positive: more). The percentile of the segment's median minus 50; where the
        medians agree and the share with any differs ("34% have any vs 8% overall", or a flag's
        share of yes), the mean rank of the segment's customers among all customers reading the
        feature as any or none: 50 × (its share − everyone's), 13 points for that example. The
        median's percentile drew such a row as average (it is the share at 0). Where only the
        means differ, ±1: the direction, with nothing to scale it by."""
        if self.direction == "same":
            return 0.0
        sign = 1.0 if self.direction == "more" else -1.0
        if self.instead is not None:
            kind, segment, overall = self.instead
            return 50.0 * (segment - overall) if kind == "share" else sign
        return (self.percentile if self.percentile is not None else 50.0) - 50.0

    @property
    def typical(self) -> str:
        low = with_unit(self.feature, self.low, self.currency)
        high = with_unit(self.feature, self.high, self.currency)
        return low if low == high else f"{low} to {high}"

    @property
    def versus_average(self) -> str:
        return {"more": "more than average", "less": "less than average"}.get(
            self.direction, "like most customers"
        )


def _is_flag(name: str) -> bool:
    definition = find(name)
    return definition is not None and definition.unit == "flag"


def overall_median(model: SegmentModel, name: str) -> float | None:
    """Median of ``name`` over every training customer (the quantile grid's middle point)."""
    grid = model.population.quantiles.get(name) if model.population else None
    return None if not grid else float(grid[(LEVELS - 1) // 2])


def _contrast(model: SegmentModel, position: int, name: str, distinguishing: bool) -> Contrast:
    profile = model.profiles[position]
    median = float(profile.medians.get(name, 0.0))
    overall = overall_median(model, name)
    standing = model.population.standing(name, median) if model.population else None
    low, high = profile.typical_ranges.get(name, [median, median])
    instead = _where_medians_agree(model, position, name, median, overall)
    direction: Direction = "same"
    if instead is not None:  # the direction of the figure the text gives
        kind, segment_value, overall_value = instead
        differ = (
            _shares_differ(segment_value, overall_value)
            if kind == "share"
            else _means_differ(model, name, segment_value, overall_value)
        )
        if differ:
            direction = "more" if segment_value > overall_value else "less"
    elif (
        overall is not None
        and format_value(name, median) != format_value(name, overall)
        and not _near_the_middle(standing)
    ):
        # medians that read the same have no direction: "median 0% vs 0% overall, more than
        # average" for 0.34% against 0 (a retailer's review)
        direction = "more" if median > overall else "less"
    return Contrast(
        feature=name,
        label=describe(name),
        segment_median=median,
        overall_median=overall,
        low=float(low),
        high=float(high),
        percentile=None if standing is None else standing.percentile,
        direction=direction,
        distinguishing=distinguishing,
        instead=instead,
        currency=reporting_currency(model),
    )


# How far from the middle (50) of all customers a segment's median must stand, in percentile
# points, to be "more" or "less" than average: "Price per seat: 21.63 vs 21.68 overall" and
# "306 days vs 308" read "less than average" in a product team's walkthrough.
NEAR_THE_MIDDLE = 5.0
# The least difference between two shares that is "more" or "less": Cohen's small effect (a
# standardised difference of 0.2) in odds, through the logistic conversion d = ln(OR) * sqrt(3)
# / pi (Hasselblad and Hedges 1995): an odds ratio of 1.44. "23% have any vs 22% overall" (1.06)
# and "53% vs 49%" on an annual plan (1.17) read "more than average" in a product manager's
# walkthrough; "4% vs 13%" (0.28) is less, and so is a rare trait at a third of its usual rate.
SMALL_EFFECT = 0.2


def _near_the_middle(standing: Standing | None) -> bool:
    return standing is not None and abs(standing.percentile - 50.0) < NEAR_THE_MIDDLE


def _shares_differ(segment: float, overall: float) -> bool:
    """Whether two shares are at least ``SMALL_EFFECT`` apart, in odds. Shares are clipped to
    half a percent from 0 and 1, the precision they are shown at, so a share of 0 has odds."""
    a, b = (min(max(share, 0.005), 0.995) for share in (segment, overall))
    log_odds_ratio = math.log(a / (1 - a)) - math.log(b / (1 - b))
    return abs(log_odds_ratio) * math.sqrt(3) / math.pi >= SMALL_EFFECT


def _means_differ(model: SegmentModel, name: str, segment: float, overall: float) -> bool:
    """Whether two means are at least ``SMALL_EFFECT`` standard deviations of all customers
    apart (Cohen's small effect, as for shares). The spread is that of the population's quantile
    grid, evenly spaced quantiles, whose standard deviation is the distribution's. "On average
    212.61 days vs 211.81" read "more than average" (a product manager's review). Without a
    grid (an older model) any difference that reads counts, as before."""
    grid = model.population.quantiles.get(name) if model.population else None
    if not grid:
        return True
    spread = float(np.std(grid))
    return spread > 0 and abs(segment - overall) >= SMALL_EFFECT * spread


def _where_medians_agree(
    model: SegmentModel, position: int, name: str, median: float, overall: float | None
) -> tuple[Literal["share", "mean"], float, float] | None:
    """What to say instead of the medians: for a flag, its share of yes whenever the shares
    differ ("100% vs 20% overall"); where the segment's and everyone's medians read the same
    ("median 0 vs 0 overall" says nothing), the share with any, for a feature that cannot be
    negative and whose median is 0 (a count most customers have none of: "4% have any vs 13%
    overall"), else the mean; None when that reads the same too, or the model recorded neither."""
    definition = find(name)
    if definition is not None and definition.unit == "flag":
        # A flag reads in shares whatever its medians: "mostly yes vs mostly no overall" beside
        # "0% vs 9%" for another segment (a product team's walkthrough) said less, and unevenly.
        share = _overall_pair(model, position, name, "positive_shares")
        if share is not None and f"{share[0]:.0%}" != f"{share[1]:.0%}":
            return "share", *share
    if overall is None or format_value(name, median) != format_value(name, overall):
        return None
    # a median that reads as 0 (0.34% refunded shows "0%"), as one that is
    reads_zero = format_value(name, median) == format_value(name, 0.0)
    if reads_zero and definition is not None and not definition.signed:
        share = _overall_pair(model, position, name, "positive_shares")
        if share is not None and f"{share[0]:.0%}" != f"{share[1]:.0%}":
            return "share", *share
    mean = _overall_pair(model, position, name, "means")
    if mean is not None and format_value(name, mean[0]) != format_value(name, mean[1]):
        return "mean", *mean
    return None


def _overall_pair(
    model: SegmentModel, position: int, name: str, figure: str
) -> tuple[float, float] | None:
    """(this segment's, every training customer's) value of a per-segment figure, ``means`` or
    ``positive_shares``: the overall one is the size-weighted average over the segments, which
    together hold every training customer. None for a model profiled without the figure."""
    values = [getattr(profile, figure, {}).get(name) for profile in model.profiles]
    sizes = [profile.size for profile in model.profiles]
    if values[position] is None or any(v is None for v, n in zip(values, sizes, strict=True) if n):
        return None
    total = sum(sizes)
    overall = sum(v * n for v, n in zip(values, sizes, strict=True) if n) / total if total else 0.0
    return float(values[position]), float(overall)


def _constant(model: SegmentModel, name: str) -> bool:
    """Whether every training customer holds the same value of ``name`` (``is_canceled`` for a
    model trained on active customers): a row reading "mostly no vs mostly no overall" in every
    segment says nothing about any of them."""
    grid = model.population.quantiles.get(name) if model.population else None
    return bool(grid) and grid[0] == grid[-1]


def contrasts(model: SegmentModel, position: int) -> list[Contrast]:
    """Every feature that varies among the training customers, the segment against all of them
    (a constant one, such as ``is_canceled``, is left out): what distinguishes the segment first
    (the profile's strongest differences), then the rest, furthest from average first."""
    profile = model.profiles[position]
    first = [d.feature for d in profile.distinguishing if d.feature in model.feature_names]
    rest = [
        name for name in model.feature_names if name not in first and not _constant(model, name)
    ]
    ranked = [_contrast(model, position, name, True) for name in first]
    others = [_contrast(model, position, name, False) for name in rest]
    others.sort(key=lambda c: -abs(c.offset))
    return ranked + others


def headline(model: SegmentModel, position: int, limit: int = 3) -> list[str]:
    """The segment's strongest differences as short phrases, for a card."""
    return [f"{c.label}: {c.text}" for c in contrasts(model, position)[:limit] if c.distinguishing]
