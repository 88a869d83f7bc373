"""Hand-computed feature values for a tiny company, through the real ingestion path (CSV)."""

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
    },
    "D": {"mrr": 100, "seats": 2, "is_annual": 1, "tenure_days": 0, "ltv": 0},
}


@pytest.fixture
def tiny_features(layout, tmp_path: Path):
    (tmp_path / "billing.csv").write_text(BILLING)
    (tmp_path / "usage.csv").write_text(USAGE)
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
