"""Segment names: relative differences name a segment only where its median clears the bar."""

from __future__ import annotations

from models.naming import name_segments
from models.profiles import Distinction


def effect(feature: str, value: float) -> Distinction:
    return Distinction(feature, value, 0.0, 0.0)


def test_the_most_active_segment_of_an_inactive_company_is_not_daily_users():
    # Online-retail-like: the most active segment is far above the rest but active one day in 30.
    effects = [effect("active_days_30d", 2.5), effect("mrr", 1.2)]
    assert name_segments([effects], [{"active_days_30d": 1.0, "mrr": 90.0}]) == ["High MRR"]
    assert name_segments([effects], [{"active_days_30d": 22.0, "mrr": 90.0}]) == [
        "Daily users · High MRR"
    ]


def test_a_bar_applies_to_each_direction_on_its_own():
    rarely = [effect("active_days_30d", -1.5)]
    assert name_segments([rarely], [{"active_days_30d": 3.0}]) == ["Rarely active"]
    assert name_segments([rarely], [{"active_days_30d": 12.0}]) == ["Typical customers"]


def test_flags_need_the_median_customer_to_have_them():
    annual = [effect("is_annual", 1.1), effect("seats", 0.9)]
    assert name_segments([annual], [{"is_annual": 0.0, "seats": 40.0}]) == ["Large teams"]
    assert name_segments([annual], [{"is_annual": 1.0, "seats": 40.0}]) == [
        "Annual plans · Large teams"
    ]


def test_without_medians_only_the_relative_test_applies():
    assert name_segments([[effect("active_days_30d", 2.5)]]) == ["Daily users"]


def test_a_flag_value_most_customers_hold_does_not_name_a_segment():
    """Nine in ten customers monthly: a segment of monthly customers is not set apart by being
    monthly, however strongly it differs from the rest (it holds none of the annual ones)."""
    monthly = [effect("is_annual", -0.9), effect("seats", -0.8)]
    medians = {"is_annual": 0.0, "seats": 2.0}
    assert name_segments([monthly], [medians]) == ["Monthly plans · Small teams"]
    assert name_segments([monthly], [medians], {"is_annual": 0.0, "seats": 6.0}) == ["Small teams"]
    # where most customers are annual, being monthly does set a segment apart
    assert name_segments([monthly], [medians], {"is_annual": 1.0, "seats": 6.0}) == [
        "Monthly plans · Small teams"
    ]


def test_a_dormant_segment_is_not_named_by_shares_that_no_activity_leaves_at_zero():
    """The demo company's dormant segment was "Dormant · Shallow per-user use · Low volume": with
    no event in 30 days, events per active user are 0 by construction, not shallow use."""
    effects = [
        effect("days_since_last_activity", 1.8),
        effect("events_per_active_user_30d", -1.2),
        effect("api_share_30d", -1.0),
        effect("events_30d", -0.9),
    ]
    dormant = {
        "days_since_last_activity": 60.0,
        "events_per_active_user_30d": 0.0,
        "api_share_30d": 0.0,
        "events_30d": 0.0,
    }
    assert name_segments([effects], [dormant]) == ["Dormant · Light usage"]
    active = {**dormant, "events_30d": 40.0, "events_per_active_user_30d": 2.0}
    assert name_segments([effects], [active]) == ["Dormant · Shallow per-user use · Little API use"]


def test_a_segment_quiet_for_90_days_is_dormant_once_not_three_times():
    """A retailer's lapsed buyers (no purchase in 90 days, the last one 199 days ago) were "Low
    volume · Narrow feature use · Seldom active": three phrases for one fact, and none for how
    long ago. Behavioural features at the value no activity gives say only "Dormant"; the
    segment's other differences get the name's room."""
    effects = [
        effect("events_90d", -1.6),
        effect("feature_breadth_90d", -1.5),
        effect("active_days_90d", -1.4),
        effect("days_since_last_activity", 1.3),
        effect("ltv", -0.8),
    ]
    lapsed = {
        "events_90d": 0.0,
        "feature_breadth_90d": 0.0,
        "active_days_90d": 0.0,
        "days_since_last_activity": 199.0,
        "ltv": 120.0,
    }
    assert name_segments([effects], [lapsed]) == ["Dormant · Low lifetime revenue"]
    # active within the 90 days, the same differences name it as before
    seldom = {**lapsed, "events_90d": 4.0, "feature_breadth_90d": 1.0, "active_days_90d": 2.0}
    assert name_segments([effects], [seldom]) == ["Low volume · Narrow feature use · Seldom active"]


def test_two_segments_are_not_named_with_synonyms():
    """Active days over 30 days ("Rarely active") and over 90 ("Seldom active") say one thing:
    two segments named so would read as one segment twice, so each says its next difference."""
    rarely = [
        effect("active_days_30d", -1.5),
        effect("mrr", 1.2),
        effect("seats", 1.0),
        effect("tenure_days", 0.9),
    ]
    seldom = [
        effect("active_days_90d", -1.6),
        effect("mrr", 1.1),
        effect("seats", 0.9),
        effect("is_annual", 0.8),
    ]
    medians = [
        {"active_days_30d": 2.0, "mrr": 90.0, "seats": 40.0, "tenure_days": 900.0},
        {"active_days_90d": 6.0, "mrr": 90.0, "seats": 40.0, "is_annual": 1.0},
    ]
    assert name_segments([rarely, seldom], medians) == [
        "Rarely active · High MRR · Large teams · Long-tenured",
        "Seldom active · High MRR · Large teams · Annual plans",
    ]
    # names that differ in what they say are left as they are
    daily = [effect("active_days_30d", 1.5)]
    assert name_segments([rarely[:1], daily], [medians[0], {"active_days_30d": 25.0}]) == [
        "Rarely active",
        "Daily users",
    ]


def test_synonyms_with_nothing_more_to_say_are_all_lettered():
    """Lettered, not numbered: pages add the id in brackets, and "(2)" beside id 1 read as
    another segment (a new user's walkthrough)."""
    rarely = [effect("active_days_30d", -1.5)]
    seldom = [effect("active_days_90d", -1.6)]
    names = name_segments([rarely, seldom], [{"active_days_30d": 2.0}, {"active_days_90d": 6.0}])
    assert names == ["Rarely active (A)", "Seldom active (B)"]


def test_a_clash_is_told_apart_by_a_further_phrase_when_the_next_does_not():
    """The same three phrases in another order and the same fourth: the fifth tells them apart
    (the next phrase alone was tried, and both were numbered)."""
    one = [effect("active_days_30d", -1.5), effect("mrr", 1.2), effect("seats", 1.0)]
    two = [effect("mrr", 1.3), effect("seats", 1.1), effect("active_days_30d", -1.0)]
    tenure, trend = effect("tenure_days", 0.8), effect("usage_trend", -0.7)
    assert name_segments([[*one, tenure], [*two, tenure, trend]]) == [
        "Rarely active · High MRR · Large teams · Long-tenured",
        "High MRR · Large teams · Rarely active · Usage collapsing",
    ]
    # with nothing further to say, both are lettered
    assert name_segments([one, two]) == [
        "Rarely active · High MRR · Large teams (A)",
        "High MRR · Large teams · Rarely active (B)",
    ]


def test_only_names_that_still_clash_are_numbered_whatever_their_order():
    """The first says one difference more; the second is then apart from it, in either order."""
    three = [effect("active_days_30d", -1.5), effect("mrr", 1.2), effect("seats", 1.0)]
    four = [*three, effect("tenure_days", 0.9)]
    assert name_segments([three, four]) == [
        "Rarely active · High MRR · Large teams",
        "Rarely active · High MRR · Large teams · Long-tenured",
    ]
    assert name_segments([four, three]) == [
        "Rarely active · High MRR · Large teams · Long-tenured",
        "Rarely active · High MRR · Large teams",
    ]


def test_a_share_of_seats_does_not_name_one_seat_accounts():
    """ "Seats fully used" read as a team filling its seats (an upsell signal) for solo accounts
    using their one seat."""
    effects = [effect("seat_utilization", 1.4), effect("mrr", -1.2), effect("seats", -1.0)]
    solo = {"seat_utilization": 1.0, "mrr": 14.0, "seats": 1.0}
    team = {"seat_utilization": 1.0, "mrr": 140.0, "seats": 6.0}
    assert name_segments([effects], [solo]) == ["Low MRR · Solo accounts"]
    assert name_segments([effects], [team]) == ["Seats fully used · Low MRR · Small teams"]


def test_one_seat_accounts_are_solo_not_small_teams():
    """ "Small teams" named a team nobody in the segment has; both say fewer seats than most."""
    from models.naming import name_meaning, phrases_held

    fewer = [effect("seats", -1.0)]
    assert name_segments([fewer], [{"seats": 1.0}]) == ["Solo accounts"]
    assert name_segments([fewer], [{"seats": 2.0}]) == ["Small teams"]
    assert name_meaning("Solo accounts") == name_meaning("Small teams")
    # a name kept from a version before this phrase is no longer true of one-seat accounts
    assert "Small teams" not in phrases_held(fewer, {"seats": 1.0}, {"seats": 6.0})
    assert "Solo accounts" in phrases_held(fewer, {"seats": 1.0}, {"seats": 6.0})


def test_customers_who_never_paid_are_not_new_customers():
    """Free users active for 14 months have 0 days as paying customers: "New customers" was
    false of them (a new user's walkthrough). Their lifetime revenue of 0 says what they are."""
    effects = [effect("tenure_days", -1.5), effect("ltv", -1.2), effect("mrr", -1.0)]
    free = {"tenure_days": 0.0, "ltv": 0.0, "mrr": 0.0}
    new = {"tenure_days": 20.0, "ltv": 30.0, "mrr": 15.0}
    assert name_segments([effects], [free]) == ["No revenue · Low MRR"]
    # nor "Solo accounts" for the no seat of a customer who never paid
    seatless = [effect("seats", -1.0), *effects]
    assert name_segments([seatless], [{**free, "seats": 0.0}]) == ["No revenue · Low MRR"]
    assert name_segments([effects], [new]) == ["New customers · Low lifetime revenue · Low MRR"]


def test_a_phrase_needs_a_median_customer_unlike_everyones():
    """ "Little API use" for a segment whose median customer, like everyone's, used none (34% had
    any against 38% overall) was kept from an earlier version by a small leftover effect: the
    difference was in the segment's tail, not in the customer its name describes."""
    from models.naming import phrases_held

    less = [effect("api_share_30d", -0.6)]
    assert name_segments([less], [{"api_share_30d": 0.0}], {"api_share_30d": 0.0}) == [
        "Typical customers"
    ]
    assert "Little API use" not in phrases_held(
        less, {"api_share_30d": 0.0}, {"api_share_30d": 0.0}
    )
    assert name_segments([less], [{"api_share_30d": 0.0}], {"api_share_30d": 0.2}) == [
        "Little API use"
    ]
    more = [effect("events_30d", 0.9)]
    assert name_segments([more], [{"events_30d": 40.0}], {"events_30d": 40.0}) == [
        "Typical customers"
    ]
    assert name_segments([more], [{"events_30d": 90.0}], {"events_30d": 40.0}) == ["Heavy usage"]


def test_letters_go_on_past_z():
    """A segmentation may have 30 segments: clashing names past the 26th were left unlettered."""
    from models.naming import _letters

    assert [_letters(i) for i in (0, 25, 26, 27, 29)] == ["A", "Z", "AA", "AB", "AD"]


def test_most_of_a_segment_having_any_names_it_where_its_median_misses_the_bar():
    """Two RavenStack segments read "Typical customers (A)" and "(B)": 84% of B had a refund in
    the year against 21% of everyone, at a median refund rate of 0.3% (the phrase "High refund
    rate" needs 5%; a product manager's walkthrough)."""
    refunds = [effect("refund_rate_365d", 1.4)]
    medians = [{"refund_rate_365d": 0.003}]
    overall = {"refund_rate_365d": 0.0}
    most = [{"refund_rate_365d": (0.84, 0.21)}]
    assert name_segments([refunds], medians, overall) == ["Typical customers"]  # no shares known
    assert name_segments([refunds], medians, overall, most) == ["Refunded"]
    # a median over the bar keeps the phrase that says how much
    assert name_segments([refunds], [{"refund_rate_365d": 0.08}], overall, most) == [
        "High refund rate"
    ]
    # "most": at least half of the segment, and fewer than half of everyone
    some = [{"refund_rate_365d": (0.45, 0.21)}]
    common = [{"refund_rate_365d": (0.84, 0.6)}]
    assert name_segments([refunds], medians, overall, some) == ["Typical customers"]
    assert name_segments([refunds], medians, overall, common) == ["Typical customers"]
    # a feature with no such phrase says nothing more
    seats = [effect("seats", 0.2)]
    assert name_segments([seats], [{"seats": 3.0}], {"seats": 3.0}, [{"seats": (1.0, 1.0)}]) == [
        "Typical customers"
    ]
