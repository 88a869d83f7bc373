"""Business metrics per segment, measured by backtest rather than read off the clustering.

Churn is not a segment: a customer who has already cancelled is reported beside the segments, and
a segment's churn rate is what happened next to the customers it held. Like Baremetrics and
ChartMogul, a rate is "of the customers at the start of a window, the share who cancelled during
it": the customers active at ``T - window`` are assigned from their features as of then, and their
features as of ``T`` say who cancelled, contracted or expanded, and what MRR they kept. Unlike
them, who counts a cancellation and a later reactivation as two movements, the state at ``T``
decides: a customer who cancelled and resubscribed inside the window is not churned, and its
MRR then against before is a contraction, an expansion or neither (an analyst's audit found the
docs saying otherwise; ``docs/segmentation.md``, "Churned customers are not segmented").

Each rate carries its count and a 90% Wilson score interval (Wilson, 1927; the interval that
behaves at 0 and 1 and for small groups, where the normal approximation does not); net MRR
retention carries a 90% bootstrap interval over customers. A segment with fewer than
``MIN_COHORT`` customers at the start says so (``None``) instead of a rate of 0%.

Pure functions of arrays and frames; no I/O.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from feature_store.timeutil import as_of_text, read_stamp, rfc3339

BACKTEST_WINDOW_DAYS = 90
# The feature saying a customer's subscription is cancelled: such customers are not segmented
# (training, member listings, drift) but reported beside the segments.
CANCELED = "is_canceled"
MIN_COHORT = 10
INTERVAL_LEVEL = 0.90
_Z90 = 1.6448536269514722  # two-sided 90% normal quantile
_BOOTSTRAP_SAMPLES = 400
# A usage stream whose first event comes within this of billing's first began with the company:
# nobody used the product long before anyone paid for it, so no usage is missing.
USAGE_START_SLACK = timedelta(days=7)
# Billing that ends this long before the features' date leaves the window's end unobserved (a
# week-old export is usual; its last week barely moves a 90-day rate).
BILLING_END_SLACK = timedelta(days=7)
# Why nothing was measured when nobody was paying at the window's start.
NO_COHORT = f"no customer was paying {BACKTEST_WINDOW_DAYS} days before"
# A business none of whose customers ever cancelled reads 0% churn in every segment: true of one
# that lost nobody, misleading for an export that records churn elsewhere (a new user mapped
# RavenStack's subscriptions, whose accounts each keep one open, and read 0% beside a churn table
# of 352 accounts). Said by `segments train`, the explorer and the report.
NO_CANCELLATION = (
    "no customer is cancelled as of the features' date (a customer is cancelled when every "
    "subscription it holds has ended; one who subscribed again since is not), so churn reads 0% "
    "in every segment: a measurement only if the export records cancellations as "
    "subscription_canceled events (docs/contracts/events.md)"
)
# Why, when nobody holds a subscription at either end of the window: invoices alone (a retailer's
# export) make no MRR. "No customer was paying" read as false beside 22,186 paid invoices.
NO_SUBSCRIPTIONS = (
    f"no customer holds a subscription {BACKTEST_WINDOW_DAYS} days before or now (MRR is 0 at "
    "both ends: invoices alone make none), so there is no subscription to churn"
)
# Customers who cancelled before the window are placed from their features as of the latest of
# ``T - window - k * step`` before they cancelled: within a month of leaving, and one feature build
# per month of history rather than one per customer (``last_active_dates``).
LAST_ACTIVE_STEP_DAYS = 30


# Whom a backtest's cohort holds: subscribers paying at the window's start ("paying"), or, in a
# business of invoices alone (a retailer), customers who had paid an invoice before it ("buyers"),
# whose figure is the share who paid again within the window ("bought again").
PAYING, BUYERS = "paying", "buyers"
# Net payments (lifetime revenue) that grew by more than half a cent over the window: an invoice
# paid and not refunded again within it.
REPURCHASE_MARGIN = 0.005


def window_days_of(
    features_as_of: str | None, days: int = BACKTEST_WINDOW_DAYS
) -> tuple[date, date] | None:
    """The backtest window's first and last days (UTC) for features as of ``features_as_of`` (a
    stamp; an end of day is the next midnight, so the last day is the one before it); None
    without a readable stamp."""
    try:
        end = read_stamp(features_as_of) if features_as_of else None
    except ValueError:
        return None
    if end is None:
        return None
    return (end - timedelta(days=days)).date(), (end - timedelta(microseconds=1)).date()


def too_few_text(cohort: int, kind: str = PAYING) -> str:
    """A segment's churn where the backtest placed too few paying customers in it, in a table
    cell: "too few: would have held 3 paying then" (``segments train``, ``segments compare``);
    "3 buyers" for a business of invoices alone."""
    if kind == BUYERS:
        return f"too few: would have held {cohort} {'buyer' if cohort == 1 else 'buyers'} then"
    return f"too few: would have held {cohort} paying then"


@dataclass(frozen=True)
class Rate:
    """``count`` of ``total`` customers, as a share with its 90% interval."""

    count: int
    total: int
    rate: float
    low: float
    high: float

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)

    @classmethod
    def from_dict(cls, document: dict[str, float | int] | None) -> Rate | None:
        return None if document is None else cls(**document)  # type: ignore[arg-type]


@dataclass(frozen=True)
class SegmentBacktest:
    """What happened over the window to the customers a segment held at its start.

    Every field but ``cohort`` is ``None`` when the cohort is smaller than ``MIN_COHORT``.
    """

    segment: int
    cohort: int
    churn: Rate | None
    contraction: Rate | None
    expansion: Rate | None
    net_mrr_retention: float | None
    net_mrr_retention_interval: tuple[float, float] | None
    window_days: int = BACKTEST_WINDOW_DAYS
    # Where today's members were at the window's start. The cohort above is who the segment
    # *would have held*; a segment defined by what happened lately (downgrades, failed payments)
    # held almost nobody then, and its members' losses are counted under the segment they were
    # placed in: this says which. None for models trained before it.
    members_then: MembersThen | None = None
    # Whom ``cohort`` counts (``PAYING`` subscribers, or ``BUYERS`` in a business of invoices
    # alone) and, for buyers, the share who paid again within the window; churn, contraction,
    # expansion and MRR kept are then None (there is no subscription to lose).
    cohort_kind: str = PAYING
    repurchase: Rate | None = None

    def as_dict(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_dict(cls, document: dict[str, Any]) -> SegmentBacktest:
        """The inverse of ``as_dict`` (as read back from a model's JSON file)."""
        interval = document.get("net_mrr_retention_interval")
        return cls(
            segment=int(document["segment"]),
            cohort=int(document["cohort"]),
            churn=Rate.from_dict(document.get("churn")),
            contraction=Rate.from_dict(document.get("contraction")),
            expansion=Rate.from_dict(document.get("expansion")),
            net_mrr_retention=document.get("net_mrr_retention"),
            net_mrr_retention_interval=None if interval is None else (interval[0], interval[1]),
            window_days=int(document.get("window_days", BACKTEST_WINDOW_DAYS)),
            members_then=None
            if document.get("members_then") is None
            else MembersThen.from_dict(document["members_then"]),
            cohort_kind=str(document.get("cohort_kind", PAYING)),
            repurchase=Rate.from_dict(document.get("repurchase")),
        )


def wilson_interval(count: int, total: int, z: float = _Z90) -> tuple[float, float]:
    """Wilson score interval for ``count`` successes out of ``total``."""
    if total == 0:
        return (0.0, 1.0)
    p = count / total
    denominator = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denominator
    half = z * np.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denominator
    # At 0 and at total the interval's end is exactly the rate; rounding must not move it.
    low = 0.0 if count == 0 else max(0.0, float(centre - half))
    high = 1.0 if count == total else min(1.0, float(centre + half))
    return (low, high)


def rate(count: int, total: int) -> Rate:
    low, high = wilson_interval(count, total)
    return Rate(int(count), int(total), count / total if total else 0.0, low, high)


def net_mrr_retention(
    mrr_start: np.ndarray, mrr_end: np.ndarray, seed: int = 0
) -> tuple[float, tuple[float, float]]:
    """MRR kept by the cohort (end over start) and its 90% bootstrap interval over customers."""
    start_total = float(mrr_start.sum())
    if start_total <= 0:
        return (float("nan"), (float("nan"), float("nan")))
    point = float(mrr_end.sum()) / start_total
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(mrr_start), size=(_BOOTSTRAP_SAMPLES, len(mrr_start)))
    starts, ends = mrr_start[draws].sum(axis=1), mrr_end[draws].sum(axis=1)
    ratios = np.divide(ends, starts, out=np.full(len(starts), np.nan), where=starts > 0)
    tail = (1 - INTERVAL_LEVEL) / 2
    low, high = np.nanquantile(ratios, [tail, 1 - tail])
    return point, (float(low), float(high))


@dataclass(frozen=True)
class MembersThen:
    """Where a segment's customers of today were at the backtest window's start."""

    by_segment: dict[int, int]  # public segment id -> customers placed in it then, largest first
    not_paying_then: int  # customers in no cohort: not paying at the window's start

    @property
    def total(self) -> int:
        return sum(self.by_segment.values()) + self.not_paying_then

    @classmethod
    def from_dict(cls, document: dict[str, Any]) -> MembersThen:
        if "by_segment" not in document:
            # models trained on 2026-12-06 stored one mapping, with -1 for "not paying then"
            counts = {int(k): int(v) for k, v in document.items()}
            return cls({k: v for k, v in counts.items() if k != -1}, counts.get(-1, 0))
        return cls(
            {int(k): int(v) for k, v in document["by_segment"].items()},
            int(document["not_paying_then"]),
        )


def members_then(
    now: np.ndarray, then: np.ndarray, ids: list[int], n_segments: int
) -> list[MembersThen]:
    """Per segment position, its members (``now``: each customer's position today) counted by
    the public id (``ids``) of the segment they were placed in at the window's start (``then``:
    the position then, or -1 for a customer not paying then)."""
    out = []
    for segment in range(n_segments):
        was = then[now == segment]
        counts = {
            ids[position]: int((was == position).sum()) for position in np.unique(was[was >= 0])
        }
        by_segment = dict(sorted(counts.items(), key=lambda item: -item[1]))
        out.append(MembersThen(by_segment, int((was < 0).sum())))
    return out


def backtest_segments(
    segments: np.ndarray,
    mrr_start: np.ndarray,
    mrr_end: np.ndarray,
    canceled_end: np.ndarray,
    n_segments: int,
) -> list[SegmentBacktest]:
    """Per segment: churn, contraction and expansion rates and net MRR retention over the window.

    Each row is one customer active at the window's start: the segment it was assigned from its
    features then, its MRR then and at the end, and whether it had cancelled by the end.
    A customer who cancelled counts as churned, not as contracted.
    """
    canceled = canceled_end.astype(bool)
    contracted = ~canceled & (mrr_end < mrr_start - 1e-9)
    expanded = ~canceled & (mrr_end > mrr_start + 1e-9)
    out = []
    for segment in range(n_segments):
        members = segments == segment
        total = int(members.sum())
        if total < MIN_COHORT:
            out.append(SegmentBacktest(segment, total, None, None, None, None, None))
            continue
        nrr, interval = net_mrr_retention(mrr_start[members], mrr_end[members], seed=segment)
        out.append(
            SegmentBacktest(
                segment=segment,
                cohort=total,
                churn=rate(int(canceled[members].sum()), total),
                contraction=rate(int(contracted[members].sum()), total),
                expansion=rate(int(expanded[members].sum()), total),
                net_mrr_retention=None if np.isnan(nrr) else round(nrr, 6),
                net_mrr_retention_interval=None if np.isnan(nrr) else interval,
            )
        )
    return out


def backtest_repurchases(
    segments: np.ndarray, ltv_start: np.ndarray, ltv_end: np.ndarray, n_segments: int
) -> list[SegmentBacktest]:
    """Per segment, for a business of invoices alone: the share of its buyers (customers who had
    paid before the window's start, placed by their features then) who paid again within the
    window, their lifetime revenue grown by more than ``REPURCHASE_MARGIN``. A retailer's
    question, "who buys again", where there is no subscription to churn (issue 9: "value and
    recency must count for what they are worth when usage is thin")."""
    bought = ltv_end > ltv_start + REPURCHASE_MARGIN
    out = []
    for segment in range(n_segments):
        members = segments == segment
        total = int(members.sum())
        measured = None if total < MIN_COHORT else rate(int(bought[members].sum()), total)
        out.append(
            SegmentBacktest(
                segment=segment,
                cohort=total,
                churn=None,
                contraction=None,
                expansion=None,
                net_mrr_retention=None,
                net_mrr_retention_interval=None,
                cohort_kind=BUYERS,
                repurchase=measured,
            )
        )
    return out


@dataclass(frozen=True)
class ChurnedCustomers:
    """Customers whose subscription is cancelled as of ``T``, reported beside the segments.

    ``lost_mrr`` is the window's: the MRR that the customers paying at its start and cancelled
    since paid then. ``last_segment`` counts churned customers by the segment they were in when
    last active: those of the window at its start, those who cancelled before it
    (``before_window`` of them) at the last ``LAST_ACTIVE_STEP_DAYS`` step before they cancelled,
    where they paid then (``before_window_lost_mrr``, in total). ``last_segment_unknown`` is the
    rest: not paying at that date (a customer who resubscribed after it, or who cancelled in the
    window after resubscribing since its start, or whose whole paid life fell between two
    steps), in a currency no level prices, or with too little usage history to place them then.
    """

    count: int
    lost_mrr: float
    last_segment: dict[int, int]
    last_segment_unknown: int
    # Why the backtest measured nothing (``NO_COHORT``, ``usage_history_shortfall``,
    # ``billing_end_shortfall``); None when it ran.
    backtest_unmeasured: str | None = None
    # None: not measured (models trained before 2026-12-04; discoveries, whose filters do not
    # say whom they would have selected before the window). Then those customers are unknown.
    before_window: int | None = None
    before_window_lost_mrr: float | None = None
    # A discovery's filters (``Cohort.describe()``): then ``count`` is of the customers they
    # selected at the window's start who cancelled since, not of everyone cancelled.
    selection: str | None = None

    def as_dict(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_dict(cls, document: dict[str, Any]) -> ChurnedCustomers:
        """The inverse of ``as_dict``; JSON turned the segment keys into strings. Documents of
        models trained before the earlier churners were placed have neither ``before_window``
        field (None: not measured)."""
        return cls(
            count=int(document["count"]),
            lost_mrr=float(document["lost_mrr"]),
            last_segment={int(k): int(v) for k, v in document["last_segment"].items()},
            last_segment_unknown=int(document["last_segment_unknown"]),
            backtest_unmeasured=document.get("backtest_unmeasured"),
            before_window=_optional(document.get("before_window"), int),
            before_window_lost_mrr=_optional(document.get("before_window_lost_mrr"), float),
            selection=document.get("selection"),
        )


def _optional(value: Any, kind: type) -> Any:
    return None if value is None else kind(value)


def churned_summary(
    churned_ids: Sequence[str],
    lost_mrr: float,
    cohort_ids: Sequence[str],
    cohort_segments: np.ndarray,
) -> ChurnedCustomers:
    """Count churned customers and where they were at the window's start, where known."""
    position = dict(zip(cohort_ids, cohort_segments.tolist(), strict=True))
    known = [position[c] for c in churned_ids if c in position]
    counts = pd.Series(known, dtype=int).value_counts().sort_index()
    return ChurnedCustomers(
        count=len(churned_ids),
        lost_mrr=float(lost_mrr),
        last_segment={int(k): int(v) for k, v in counts.items()},
        last_segment_unknown=len(churned_ids) - len(known),
    )


def with_earlier_churn(
    summary: ChurnedCustomers, before_window: int, lost_mrr: float, segments: np.ndarray
) -> ChurnedCustomers:
    """``summary`` with the ``before_window`` customers who cancelled before the window: the MRR
    they paid when last active, and ``segments``, the segment of each one placed then."""
    counts = Counter(summary.last_segment)
    counts.update(int(s) for s in segments)
    return replace(
        summary,
        last_segment=dict(sorted(counts.items())),
        last_segment_unknown=summary.last_segment_unknown - len(segments),
        before_window=before_window,
        before_window_lost_mrr=float(lost_mrr),
    )


def last_active_dates(
    canceled_at: Mapping[str, datetime],
    window_start: datetime,
    step_days: int = LAST_ACTIVE_STEP_DAYS,
) -> dict[datetime, list[str]]:
    """For each customer who cancelled before ``window_start``: the date to read it as of, the
    latest ``window_start - k * step_days`` (k >= 1) at or before its cancellation (features
    count events strictly before their date, so the cancellation is not among them). Keys in
    date order; customers who cancelled at or after ``window_start`` are the window's own."""
    step = timedelta(days=step_days)
    dates: dict[datetime, list[str]] = {}
    for customer, moment in sorted(canceled_at.items(), key=lambda item: item[1]):
        if moment >= window_start:
            continue
        steps = -((moment - window_start) // step)  # ceil, in whole microseconds
        dates.setdefault(window_start - steps * step, []).append(customer)
    return dict(sorted(dates.items()))


def billing_end_shortfall(last_billing: datetime | None, as_of: datetime) -> str | None:
    """Why the window's end cannot be observed, or None: the billing events end more than
    ``BILLING_END_SLACK`` before ``as_of`` (training accepts an as-of up to 90 days after the
    data), so who cancelled, contracted or expanded since is unknown and every rate, the lost MRR
    with them, would read low: 0% once billing ends before the window starts. Naive UTC times."""
    if last_billing is None or as_of - last_billing <= BILLING_END_SLACK:
        return None
    return (
        f"billing events end on {last_billing:%Y-%m-%d}, {(as_of - last_billing).days} days "
        f"before the features' date, {as_of_text(rfc3339(as_of))}: who cancelled since is not "
        "known"
    )


def usage_history_shortfall(
    first_usage: datetime | None,
    first_billing: datetime | None,
    window_start: datetime,
    lookback_days: int,
) -> str | None:
    """Why the customers of ``window_start`` cannot be placed from their features then, or None.

    The backtest places its cohort from features as of the window's start, and usage features
    read up to ``lookback_days`` before it. When the usage events begin later than that while
    billing goes further back (a product-analytics export of the last quarter beside years of
    invoices), the cohort's usage is undercounted then, and when they begin after the window's
    start every customer of the cohort looks inactive and lands in whichever segment holds
    inactive customers: the rates would describe the export, not the segments. Times are naive
    UTC and compared to the day (the message names days). Without billing before the window's
    start there is no cohort to place, and nothing to say here.
    """
    if first_usage is None or first_billing is None or first_billing >= window_start:
        return None  # no usage: it reads nothing at either end, alike; no billing: no cohort
    needed = window_start - timedelta(days=lookback_days)
    if first_usage.date() <= needed.date():
        return None
    if first_usage <= first_billing + USAGE_START_SLACK:
        return None  # usage began with the company: every cohort customer's use is observed
    return (
        f"usage events begin on {first_usage:%Y-%m-%d}, billing on {first_billing:%Y-%m-%d}: "
        f"placing the customers paying at {window_start:%Y-%m-%d %H:%M} UTC needs their usage "
        f"from {needed:%Y-%m-%d %H:%M} UTC on"
    )
