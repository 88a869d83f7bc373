"""Hypothesis strategies for valid canonical events of a handful of customers."""

from __future__ import annotations

from datetime import datetime, timedelta

from hypothesis import strategies as st

ORIGIN = datetime(2026, 1, 1)
CUSTOMERS = ("c0", "c1", "c2")

# Coarse times (hours over ~400 days) so that ties and window edges happen often.
instants = st.integers(min_value=0, max_value=400 * 24).map(lambda h: ORIGIN + timedelta(hours=h))


@st.composite
def billing_event(draw: st.DrawFn) -> dict:
    kind = draw(
        st.sampled_from(
            [
                "subscription_started",
                "subscription_changed",
                "subscription_canceled",
                "invoice_paid",
                "payment_failed",
                "refund_issued",
            ]
        )
    )
    event = {
        "customer_id": draw(st.sampled_from(CUSTOMERS)),
        "occurred_at": draw(instants).isoformat() + "Z",
        "type": kind,
        "currency": "USD",
    }
    if kind.startswith("subscription_") and kind != "subscription_canceled":
        event |= {
            "plan": draw(st.sampled_from(["solo", "team"])),
            "interval": draw(st.sampled_from(["month", "year"])),
            "seats": draw(st.integers(0, 20)),
            "mrr": draw(st.sampled_from([0, 10, 50, 99.5, 200])),
        }
    else:
        event["amount"] = draw(st.sampled_from([1, 10, 49.99, 300]))
    return event


@st.composite
def usage_event(draw: st.DrawFn) -> dict:
    return {
        "customer_id": draw(st.sampled_from(CUSTOMERS)),
        "occurred_at": draw(instants).isoformat() + "Z",
        "event": draw(st.sampled_from(["login", "api_call", "feature_used", "export_clicked"])),
        "user_id": draw(st.sampled_from([None, "u1", "u2", "u3"])),
        "feature": draw(st.sampled_from([None, "reports", "alerts"])),
        "quantity": draw(st.sampled_from([None, 0, 1, 2.5, 7])),
    }


def _with_ids(prefix: str, events: list[dict]) -> list[dict]:
    return [{"event_id": f"{prefix}{i}", **event} for i, event in enumerate(events)]


companies = st.tuples(
    st.lists(billing_event(), max_size=25).map(lambda e: _with_ids("b", e)),
    st.lists(usage_event(), max_size=40).map(lambda e: _with_ids("u", e)),
)
as_of_instants = st.integers(min_value=30 * 24, max_value=400 * 24).map(
    lambda h: ORIGIN + timedelta(hours=h)
)
