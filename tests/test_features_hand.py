"""Hand-computed feature values for a tiny company, through the real ingestion path (CSV).

As of 2026-05-31 (a bare date): T = 2026-06-01T00:00Z, so T-30d = 2026-05-02T00:00Z,
T-90d = 2026-03-03T00:00Z and T-365d = 2025-06-01T00:00Z. A window's start counts, T does not.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from feature_store.ingest import ingest_files
from feature_store.timeutil import parse_as_of
from pipelines.feature_pipeline import build_features

BILLING = """event_id,customer_id,occurred_at,type,plan,interval,seats,mrr,amount,currency
a1,A,2026-01-01T00:00:00Z,subscription_started,pro,month,5,100,,USD
a2,A,2026-01-01T00:00:00Z,invoice_paid,,,,,100,USD
a3,A,2026-02-01T00:00:00Z,invoice_paid,,,,,100,USD
a4,A,2026-03-10T00:00:00Z,subscription_changed,pro,month,8,160,,USD
a5,A,2026-04-01T00:00:00Z,payment_failed,,,,,160,USD
a6,A,2026-04-05T00:00:00Z,invoice_paid,,,,,160,USD
a7,A,2026-04-20T00:00:00Z,refund_issued,,,,,30,USD
a8,A,2026-05-01T00:00:00Z,subscription_changed,pro,month,6,120,,USD
a9,A,2026-06-01T00:00:00Z,subscription_changed,pro,month,60,1200,,USD
c1,C,2025-01-10,subscription_started,pro,year,3,50,,USD
c2,C,2025-01-10,invoice_paid,,,,,600,USD
c3,C,2026-02-01,subscription_canceled,,,,,,
d1,D,2026-05-31T23:00:00+02:00,subscription_started,biz,year,2,100,,EUR
"""

USAGE = """event_id,customer_id,occurred_at,event,user_id,feature,quantity
u1,A,2026-05-30T10:00:00Z,login,u1,,
u2,A,2026-05-30T12:00:00Z,api_call,u2,,10
u3,A,2026-05-31T23:59:00Z,feature_used,u1,reports,1
u4,A,2026-04-15T08:00:00Z,feature_used,u3,export,1
u5,A,2026-06-01T00:00:00Z,login,u1,,
v1,B,2026-05-01T06:00:00Z,login,,,
"""

# Customer E sits on the window edges: an event exactly at a window's start counts, one a second
# earlier does not, one exactly at T does not.
BILLING_EDGES = """event_id,customer_id,occurred_at,type,plan,interval,seats,mrr,amount,currency
e1,E,2025-05-31T12:00:00Z,invoice_paid,,,,,1000,USD
e2,E,2025-06-01T00:00:00Z,invoice_paid,,,,,200,USD
e3,E,2026-05-20T12:00:00Z,invoice_paid,,,,,100,USD
e4,E,2026-06-01T00:00:00Z,invoice_paid,,,,,500,USD
e5,E,2025-05-31T23:59:59Z,payment_failed,,,,,200,USD
e6,E,2025-06-01T00:00:00Z,payment_failed,,,,,200,USD
e7,E,2026-03-03T00:00:00Z,payment_failed,,,,,100,USD
e8,E,2026-06-01T00:00:00Z,payment_failed,,,,,100,USD
e9,E,2025-05-01T00:00:00Z,refund_issued,,,,,40,USD
e10,E,2026-01-15T00:00:00Z,refund_issued,,,,,75,USD
f1,F,2025-03-01T00:00:00Z,invoice_paid,,,,,500,USD
f2,F,2026-03-01T00:00:00Z,invoice_paid,,,,,100,USD
f3,F,2026-04-01T00:00:00Z,refund_issued,,,,,400,USD
"""

USAGE_EDGES = """event_id,customer_id,occurred_at,event,user_id,feature,quantity
w1,E,2026-03-02T23:59:59Z,api_call,e1,,100
w2,E,2026-03-03T00:00:00Z,login,e1,,2
w3,E,2026-05-01T23:59:59Z,login,e3,,
w4,E,2026-05-02T00:00:00Z,feature_used,e1,reports,3
w5,E,2026-05-10T08:00:00Z,api_call,e2,,4
w6,E,2026-05-10T20:00:00Z,login,e2,,0
w7,E,2026-05-15T00:00:00Z,export_clicked,,,6
w8,E,2026-06-01T00:00:00Z,login,e1,,50
"""

EXPECTED = {
    "A": {
        "mrr": 120,
        "seats": 6,
        "is_annual": 0,
        "tenure_days": 151,
        "ltv": 330,
        "mrr_growth_90d": 20,
        "expansions_365d": 1,
        "contractions_365d": 1,
        "failed_payments_90d": 1,
        "refunds_365d": 30,
        "active_days_30d": 2,
        "events_30d": 12,
        "active_users_30d": 2,
        "seat_utilization": 2 / 6,
        "feature_breadth_90d": 2,
        "usage_trend": 13 / 1.5,
        "days_since_last_activity": 0,
        "api_share_30d": 10 / 12,
        "is_canceled": 0,
        "mrr_per_seat": 20,
        "logins_30d": 1,
        # Last invoice_paid a6 on 04-05: 25 days to 04-30, 31 to 05-31, 1 to 06-01: 57 days,
        # less one monthly period (31 days): 26 days overdue.
        "payment_overdue_days": 26,
        "failed_payments_365d": 1,  # a5
        # One failed attempt (a5) beside three paid invoices (a2, a3, a6): 1 in 4.
        "payment_failure_rate_365d": 1 / 4,
        # Refunded 30 (a7) of 100 + 100 + 160 paid in the last year.
        "refund_rate_365d": 30 / 360,
        # 04-15, 05-30 and 05-31 (u5 is at T): three days; 1 + 10 + 1 + 1 events.
        "active_days_90d": 3,
        "events_90d": 13,
        # 12 events in 30 days (u1, u2, u3) by two users (u1, u2).
        "events_per_active_user_30d": 6,
    },
    "B": {
        "mrr": 0,
        "seats": 0,
        "tenure_days": 0,
        "ltv": 0,
        "active_days_30d": 0,
        "events_30d": 0,
        "seat_utilization": 0,
        "usage_trend": 1 / 1.5,
        "days_since_last_activity": 30,
        "api_share_30d": 0,
        "payment_overdue_days": 0,  # never paid: tenure_days, 0, less a period, floored at 0
        "failed_payments_365d": 0,
        "payment_failure_rate_365d": 0,  # no attempt at all
        "refund_rate_365d": 0,  # nothing paid
        # v1 on 05-01 06:00: inside 90 days, outside 30 (T-30d is 05-02).
        "active_days_90d": 1,
        "events_90d": 1,
        "events_per_active_user_30d": 0,  # no active user in 30 days
    },
    "C": {
        "mrr": 0,
        "seats": 0,
        "is_annual": 0,
        "tenure_days": 507,
        "ltv": 600,
        "mrr_growth_90d": 0,
        "contractions_365d": 0,
        "days_since_last_activity": 507,
        "is_canceled": 1,
        # c2 on 2025-01-10, the day tenure starts: 507 days; the latest subscription event (the
        # cancellation) names no interval, so the period is a month: 507 - 31 = 476.
        "payment_overdue_days": 476,
        "refund_rate_365d": 0,  # c2 paid before T-365d: nothing paid in the window
        "active_days_90d": 0,
        "events_90d": 0,
        "events_per_active_user_30d": 0,
    },
    "D": {
        "mrr": 100,
        "seats": 2,
        "is_annual": 1,
        "tenure_days": 0,
        "ltv": 0,
        "payment_overdue_days": 0,  # never paid: tenure_days, 3 hours = 0 whole days
        "failed_payments_365d": 0,
    },
    "E": {
        # Paid 1000 (e1) + 200 (e2) + 100 (e3), refunded 40 (e9) + 75 (e10); e4 is at T.
        "ltv": 1185,
        # From e1, 2025-05-31T12:00: 365.5 days, rounded down.
        "tenure_days": 365,
        # e3, 2026-05-20T12:00: 11.5 days before T, rounded down to 11, within a month's period.
        "payment_overdue_days": 0,
        # e6 exactly at T-365d and e7 exactly at T-90d count; e5 a second early and e8 at T do not.
        "failed_payments_365d": 2,
        "failed_payments_90d": 1,
        # Failed e6 and e7 beside paid e2 (at the edge) and e3 (e1 is early, e4 at T): 2 in 4.
        "payment_failure_rate_365d": 0.5,
        # Refunded in the window 75 (e10; e9 is too old) of 200 (e2, at the edge) + 100 (e3) paid.
        "refunds_365d": 75,
        "refund_rate_365d": 0.25,
        # w2 (exactly T-90d), w3, w4 (exactly T-30d), w5 and w6 (one day), w7: five days. w1 is a
        # second early and w8 at T.
        "active_days_90d": 5,
        # 2 + 1 (missing quantity) + 3 + 4 + 0 + 6.
        "events_90d": 16,
        # In 30 days w4, w5, w6, w7: 3 + 4 + 0 + 6 = 13 events by users e1, e2 (w7 has none).
        "events_30d": 13,
        "active_users_30d": 2,
        "events_per_active_user_30d": 13 / 2,
        "active_days_30d": 3,
        "logins_30d": 0,  # w6 is a login of quantity 0; w3 is a second before T-30d
    },
    "F": {
        # A return of an older purchase: 400 refunded in the last year against 100 paid in it.
        "refunds_365d": 400,
        "ltv": 200,
        # A share of the year's payments refunded is at most all of them (it read 400%, and a
        # retailer's customer page showed 9167%: a product team's review).
        "refund_rate_365d": 1,
    },
}


@pytest.fixture
def tiny_features(layout, tmp_path: Path):
    (tmp_path / "billing.csv").write_text(BILLING + BILLING_EDGES.split("\n", 1)[1])
    (tmp_path / "usage.csv").write_text(USAGE + USAGE_EDGES.split("\n", 1)[1])
    reports = ingest_files(
        layout, {"billing": tmp_path / "billing.csv", "usage": tmp_path / "usage.csv"}
    )
    assert all(report.quarantined == 0 for report in reports.values())
    return build_features(layout, parse_as_of("2026-05-31")).set_index("customer_id")


@pytest.mark.parametrize("customer", sorted(EXPECTED))
def test_hand_computed_values(tiny_features, customer):
    row = tiny_features.loc[customer]
    for name, expected in EXPECTED[customer].items():
        assert row[name] == pytest.approx(expected, abs=1e-9), name


def test_a_bare_date_includes_the_whole_day():
    assert parse_as_of("2026-05-31") == datetime(2026, 6, 1)
    assert parse_as_of("2026-05-31T12:00:00+02:00") == datetime(2026, 5, 31, 10)


def test_customers_with_only_later_events_are_absent(layout, tmp_path):
    (tmp_path / "billing.csv").write_text(BILLING)
    ingest_files(layout, {"billing": tmp_path / "billing.csv"})
    table = build_features(layout, parse_as_of("2025-12-31"))
    assert list(table["customer_id"]) == ["C"]


def test_an_as_of_reads_as_the_day_the_user_gave():
    """``--as-of 2026-06-30`` means the end of that day (2026-07-01T00:00Z); pages say the day."""
    from feature_store.timeutil import as_of_text, parse_as_of, rfc3339

    end_of_day = rfc3339(parse_as_of("2026-06-30"))
    assert end_of_day == "2026-07-01T00:00:00Z"
    assert as_of_text(end_of_day) == "2026-06-30 (end of day, UTC)"
    assert as_of_text("2026-06-30T14:05:00Z") == "2026-06-30 14:05 UTC"
    assert as_of_text("2026-06-30T16:05:00+02:00") == "2026-06-30 14:05 UTC"


def test_the_data_lag_counts_only_events_before_the_as_of(layout, tmp_path):
    """One event dated 9999 (a wrong year, a client's clock) made the whole store look fresh:
    a model trained 52 days past the real data passed the freshness gate and became champion
    (a CRM integrator's review). The lag is measured to the last event the features can see."""
    from feature_store.coverage import data_lag_days

    (tmp_path / "billing.csv").write_text(BILLING)
    ingest_files(layout, {"billing": tmp_path / "billing.csv"})
    # the last event, a9, is at 2026-06-01T00:00Z; as of 2026-06-30 is 2026-07-01T00:00Z
    assert data_lag_days(layout, parse_as_of("2026-06-30")) == 30.0
    late = "event_id,customer_id,occurred_at,event\nz1,A,9999-12-31T23:59:59Z,login\n"
    (tmp_path / "usage.csv").write_text(late)
    reports = ingest_files(layout, {"usage": tmp_path / "usage.csv"})
    assert reports["usage"].accepted == 1
    assert data_lag_days(layout, parse_as_of("2026-06-30")) == 30.0
    # before the first event there is nothing to be late for
    assert data_lag_days(layout, parse_as_of("2024-01-01")) == 0.0


def test_vectors_of_a_day_still_running_are_served_as_of_now_so_refreshes_replace_them(
    layout, tmp_path
):
    """`segments features --as-of TODAY` stamped the online store's vectors with midnight
    tonight, and every refresh as of now the service made for a customer's new events until
    then lost to them under the later-as-of-wins rule (an ML engineer's review)."""
    from feature_store.online_store import SqliteOnlineStore
    from pipelines.feature_pipeline import materialize

    (tmp_path / "billing.csv").write_text(BILLING)
    ingest_files(layout, {"billing": tmp_path / "billing.csv"})
    today, now = parse_as_of("2026-06-05"), datetime(2026, 6, 5, 9, 36)
    run = materialize(layout, build_features(layout, today), today, now=now)
    assert run.as_of == today  # the snapshot is the day's, as asked
    store = SqliteOnlineStore(layout.online_store_path)
    assert store.read("A")[1] == now
    refreshed = build_features(layout, datetime(2026, 6, 5, 10, 0))
    assert store.write(refreshed[refreshed["customer_id"] == "A"], datetime(2026, 6, 5, 10)) == 1
    # a day that has ended is served as of its end, as before
    from feature_store.layout import StoreLayout

    past = StoreLayout(tmp_path / "past")
    ingest_files(past, {"billing": tmp_path / "billing.csv"})
    yesterday = parse_as_of("2026-06-04")
    materialize(past, build_features(past, yesterday), yesterday, now=now)
    assert SqliteOnlineStore(past.online_store_path).read("A")[1] == yesterday


def test_spaces_around_ids_and_names_are_not_part_of_them(layout, tmp_path):
    """A hand-written CSV's space after each comma made " c1" and "c1" two customers, " b3" and
    "b3" two events (one invoice counted twice) and " " a user; "API_CALL" and "Login" counted
    as neither API use nor logins (a data engineer's review)."""
    (tmp_path / "billing.csv").write_text(
        "event_id,customer_id,occurred_at,type,amount,currency\n"
        "b1, c1,2025-01-01T00:00:00Z,invoice_paid,100, USD\n"
        "b2,c1 ,2025-01-01T00:00:00Z, invoice_paid ,100,USD\n"
        "b3,c1,2025-01-01T00:00:00Z,invoice_paid,100,USD\n"
        " b3,c1,2025-01-01T00:00:00Z,invoice_paid,100,USD\n"
        # spaces only, as Spark's trim reads a lake: a no-break space is part of the id
        "b4,c2\u00a0,2025-01-01T00:00:00Z,invoice_paid,100,USD\n"
    )
    (tmp_path / "usage.csv").write_text(
        "event_id,customer_id,occurred_at,event,user_id,feature,quantity\n"
        "v1,c1,2025-06-01T00:00:00Z,login,u1,reports,1\n"
        "v2,c1,2025-06-01T00:00:00Z,Login, ,reports ,1\n"
        "v3,c1,2025-06-01T00:00:00Z, API_CALL ,u2,,2\n"
        "v4,c1,2025-06-01T00:00:00Z,Export Clicked,u2,,1\n"
    )
    reports = ingest_files(
        layout, {"billing": tmp_path / "billing.csv", "usage": tmp_path / "usage.csv"}
    )
    assert (reports["billing"].accepted, reports["billing"].duplicates) == (4, 1)
    table = build_features(layout, parse_as_of("2025-06-30")).set_index("customer_id")
    assert list(table.index) == ["c1", "c2\u00a0"]
    row = table.loc["c1"]
    assert row["ltv"] == 300
    assert row["active_users_30d"] == 2  # u1 and u2; " " is no user
    assert row["feature_breadth_90d"] == 1  # "reports" and "reports " are one feature
    assert row["logins_30d"] == 2
    assert row["api_share_30d"] == pytest.approx(2 / 5)


def test_an_event_stored_before_ids_were_trimmed_is_a_duplicate_when_sent_again(layout, tmp_path):
    """Events stored before ingestion trimmed text and read named events in any case kept
    " u1 " and "Login"; sent again, the trimmed copy read as another event under the same id
    (conflicting_duplicate, "another company's data?": a review). It is the duplicate it is."""
    from feature_store.engine import connect
    from feature_store.offline_store import OfflineStore

    con = connect()
    try:
        OfflineStore(layout).write_part(
            con,
            "SELECT 'u1' AS event_id, 'c1' AS customer_id, TIMESTAMP '2026-01-01 10:00:00' AS "
            "occurred_at, 'Login' AS event, ' u1 ' AS user_id, 'reports ' AS feature, "
            "1.0 AS quantity, 'before' AS batch_id",
            "usage",
            "before",
        )
    finally:
        con.close()
    (tmp_path / "usage.csv").write_text(
        "event_id,customer_id,occurred_at,event,user_id,feature,quantity\n"
        "u1,c1,2026-01-01T10:00:00Z,Login, u1 ,reports ,1\n"
    )
    report = ingest_files(layout, {"usage": tmp_path / "usage.csv"})["usage"]
    assert (report.accepted, report.duplicates, report.quarantined) == (0, 1, 0)
