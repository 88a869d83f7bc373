"""Backtested business metrics on cohorts whose answers are counted by hand."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import datetime, timedelta

import numpy as np
import pytest

from models.business import (
    MIN_COHORT,
    ChurnedCustomers,
    backtest_segments,
    billing_end_shortfall,
    churned_summary,
    last_active_dates,
    net_mrr_retention,
    usage_history_shortfall,
    wilson_interval,
    with_earlier_churn,
)


def test_wilson_interval_by_hand():
    # p = 0.2, n = 50, z = 1.645: centre (0.2 + 0.02706) / 1.05412 = 0.21536,
    # half 1.645 * sqrt(0.0032 + 0.0002706) / 1.05412 = 0.09196
    low, high = wilson_interval(10, 50)
    assert low == pytest.approx(0.1234, abs=1e-3)
    assert high == pytest.approx(0.3073, abs=1e-3)


def test_wilson_interval_stays_inside_zero_and_one():
    assert wilson_interval(0, 20)[0] == 0.0
    assert wilson_interval(20, 20)[1] == 1.0
    assert 0 < wilson_interval(0, 20)[1] < 0.2


def test_backtest_counts_churn_contraction_expansion_and_retention():
    # Segment 0: 20 customers at 100 MRR; 4 cancel, 6 drop to 50, 2 rise to 200, 8 stay.
    # Segment 1: 5 customers, too few for a rate.
    segments = np.r_[np.zeros(20, int), np.ones(5, int)]
    start = np.full(25, 100.0)
    end = np.r_[np.zeros(4), np.full(6, 50.0), np.full(2, 200.0), np.full(8, 100.0), start[:5]]
    canceled = np.r_[np.ones(4, bool), np.zeros(21, bool)]
    first, second = backtest_segments(segments, start, end, canceled, n_segments=2)
    assert (first.churn.count, first.churn.total, first.churn.rate) == (4, 20, 0.2)
    assert (first.contraction.count, first.expansion.count) == (6, 2)
    # (6 * 50 + 2 * 200 + 8 * 100) / (20 * 100) = 1500 / 2000
    assert first.net_mrr_retention == pytest.approx(0.75)
    low, high = first.net_mrr_retention_interval
    assert low < 0.75 < high
    assert first.window_days == 90
    assert second.cohort == 5 < MIN_COHORT
    assert second.churn is None
    assert second.net_mrr_retention is None


def test_retention_without_starting_mrr_is_unknown_not_zero():
    value, (low, high) = net_mrr_retention(np.zeros(12), np.zeros(12))
    assert np.isnan(value)
    assert np.isnan(low)
    assert np.isnan(high)


def test_churned_customers_are_counted_by_their_last_segment():
    summary = churned_summary(
        ["a", "b", "c", "d"], 420.0, cohort_ids=["a", "b", "x"], cohort_segments=np.array([2, 0, 2])
    )
    assert summary.count == 4
    assert summary.last_segment == {0: 1, 2: 1}
    assert summary.last_segment_unknown == 2
    assert summary.lost_mrr == 420.0


WINDOW_START = datetime(2026, 4, 1)


@pytest.mark.parametrize(
    ("first_usage", "first_billing", "measurable"),
    [
        (None, datetime(2024, 1, 1), True),  # no usage stream: nothing is missing at either end
        (datetime(2026, 1, 1), datetime(2024, 1, 1), True),  # exactly the 90 days needed
        (datetime(2026, 1, 2), datetime(2024, 1, 1), False),  # a day short
        (datetime(2026, 4, 2), datetime(2024, 8, 11), False),  # the last quarter's export
        (datetime(2026, 1, 1, 23), datetime(2024, 1, 1), True),  # the needed day: to the day
        (datetime(2026, 3, 7), datetime(2026, 3, 1), True),  # usage began with the company
        (datetime(2026, 3, 8), datetime(2026, 3, 1), True),  # ... up to a week after billing
        (datetime(2026, 3, 8, 1), datetime(2026, 3, 1), False),  # ... not more
        (datetime(2026, 5, 1), None, True),  # no billing: no cohort, nothing to place
        (datetime(2026, 5, 1), datetime(2026, 4, 1), True),  # billing begins with the window
    ],
)
def test_usage_history_shortfall_asks_for_the_longest_usage_window(
    first_usage, first_billing, measurable
):
    reason = usage_history_shortfall(first_usage, first_billing, WINDOW_START, 90)
    assert (reason is None) == measurable
    if reason is not None:
        assert f"usage events begin on {first_usage:%Y-%m-%d}" in reason
        assert "needs their usage from 2026-01-01 00:00 UTC on" in reason


def test_the_reason_travels_with_the_churned_summary_and_old_documents_still_load():
    churned = ChurnedCustomers(3, 120.0, {}, 3, backtest_unmeasured="usage events begin on ...")
    assert ChurnedCustomers.from_dict(churned.as_dict()) == churned
    old = {"count": 3, "lost_mrr": 120.0, "last_segment": {}, "last_segment_unknown": 3}
    assert ChurnedCustomers.from_dict(old).backtest_unmeasured is None
    assert ChurnedCustomers.from_dict(old).before_window is None  # not measured, not none


def test_earlier_churners_are_read_at_the_last_step_before_they_cancelled():
    start = datetime(2026, 4, 1)
    dates = last_active_dates(
        {
            "in-window": start + timedelta(days=3),  # the backtest's own: not here
            # at the start itself: still paying as of it (events before it count), so the
            # backtest's cohort holds it
            "at-start": start,
            "a-day-before": start - timedelta(days=1),
            "on-a-step": start - timedelta(days=30),
            "just-past-a-step": start - timedelta(days=30, seconds=1),
            "long-ago": start - timedelta(days=200),
        },
        start,
    )
    assert dates == {
        start - timedelta(days=210): ["long-ago"],
        start - timedelta(days=60): ["just-past-a-step"],
        start - timedelta(days=30): ["on-a-step", "a-day-before"],
    }
    assert list(dates) == sorted(dates)


def test_earlier_churners_add_to_the_segments_they_left_and_to_nothing_else():
    window = churned_summary(["a", "b", "c", "d"], 420.0, ["a", "b"], np.array([2, 0]))
    summary = with_earlier_churn(window, before_window=2, lost_mrr=99.5, segments=np.array([2]))
    assert summary.last_segment == {0: 1, 2: 2}
    assert summary.last_segment_unknown == 1  # "d" was never paying at a step before it left
    assert (summary.count, summary.lost_mrr) == (4, 420.0)  # the window's MRR stays the window's
    assert (summary.before_window, summary.before_window_lost_mrr) == (2, 99.5)
    assert ChurnedCustomers.from_dict(summary.as_dict()) == summary


def test_billing_that_ends_before_the_features_date_leaves_the_window_unobserved():
    as_of = datetime(2026, 9, 26)
    assert billing_end_shortfall(None, as_of) is None  # no billing: no cohort either
    assert billing_end_shortfall(as_of - timedelta(days=7), as_of) is None  # a week-old export
    reason = billing_end_shortfall(datetime(2026, 6, 30, 23, 59), as_of)
    assert reason == (
        "billing events end on 2026-06-30, 87 days before the features' date, 2026-09-25 (end of "
        "day, UTC): who cancelled since is not known"
    )


def test_members_then_counts_by_segment_id_and_reads_the_first_stored_form():
    from models.business import MembersThen, members_then

    now = np.array([0, 0, 0, 1, 1, 0])
    then = np.array([0, 1, -1, 1, -1, 1])  # position then; -1 not paying then
    first, second = members_then(now, then, ids=[7, 9], n_segments=2)
    assert first == MembersThen({9: 2, 7: 1}, not_paying_then=1)
    assert list(first.by_segment) == [9, 7]  # largest first
    assert second == MembersThen({9: 1}, not_paying_then=1)
    assert first.total == 4
    stored = json.loads(json.dumps(asdict(first)))  # as a model's JSON holds it
    assert MembersThen.from_dict(stored) == first
    # models trained on 2026-12-06 stored one mapping with -1 for "not paying then"
    assert MembersThen.from_dict({"9": 2, "7": 1, "-1": 1}) == first
