"""What a model segments on does not depend on how often a customer is invoiced.

An annual and a monthly customer whose every invoice fails once before it is paid have the same
payment trouble, but the monthly one has twelve failed payments a year and the annual one one.
Counted per year, failures follow ``is_annual`` and lend a random billing-cadence flag the
agreement of another column (``docs/features.md``, "What a model segments on").
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

from feature_store.discovery import DiscoveryRequest
from feature_store.features import compute_customer_features
from feature_store.memory import validate_events
from feature_store.registry import FEATURES, SEGMENTED_FEATURE_NAMES, feature
from models.explainer import SegmentExplainer
from models.families.kmeans import KMeansFamily
from models.segmenter import CustomerSegmenter
from pipelines.train import fit_model

AS_OF = datetime(2026, 6, 1)
COUNTS = ("failed_payments_90d", "failed_payments_365d", "refunds_365d")


def _billing(customer: str, interval: str, invoices: int, mrr: float) -> list[dict]:
    """A year of invoices, each failing once a day before it is paid; every invoice refunded 10%."""
    start = datetime(2025, 6, 5, tzinfo=UTC)
    step = timedelta(days=365 // invoices)
    amount = mrr * 12 / invoices
    rows = [
        {"event_id": f"{customer}-s", "customer_id": customer, "occurred_at": start,
         "type": "subscription_started", "plan": "pro", "interval": interval, "seats": 5,
         "mrr": mrr},
    ]  # fmt: skip
    for n in range(invoices):
        due = start + n * step
        rows += [
            {"event_id": f"{customer}-f{n}", "customer_id": customer, "occurred_at": due,
             "type": "payment_failed", "amount": amount},
            {"event_id": f"{customer}-p{n}", "customer_id": customer,
             "occurred_at": due + timedelta(days=1), "type": "invoice_paid", "amount": amount},
            {"event_id": f"{customer}-r{n}", "customer_id": customer,
             "occurred_at": due + timedelta(days=2), "type": "refund_issued",
             "amount": amount / 10},
        ]  # fmt: skip
    return [{**row, "occurred_at": row["occurred_at"].isoformat()} for row in rows]


def _features() -> pd.DataFrame:
    billing = _billing("monthly", "month", 12, 100.0) + _billing("annual", "year", 1, 100.0)
    validated = validate_events({"billing": billing, "usage": []})
    assert not validated.rejected
    return compute_customer_features(validated.events, AS_OF).set_index("customer_id")


def test_the_counts_follow_the_cadence_and_the_rates_do_not():
    table = _features()
    monthly, annual = table.loc["monthly"], table.loc["annual"]
    assert (monthly["failed_payments_365d"], annual["failed_payments_365d"]) == (12, 1)
    assert monthly["payment_failure_rate_365d"] == annual["payment_failure_rate_365d"] == 0.5
    assert monthly["refund_rate_365d"] == annual["refund_rate_365d"] == 0.1


def test_a_model_segments_on_the_rates_not_the_counts():
    assert not set(COUNTS) & set(SEGMENTED_FEATURE_NAMES)
    assert {"payment_failure_rate_365d", "refund_rate_365d"} <= set(SEGMENTED_FEATURE_NAMES)
    assert all(not feature(name).segmented for name in COUNTS)
    for families in (("value",), ("behavioural",), ("value", "behavioural")):
        request = DiscoveryRequest(as_of=AS_OF, families=families)
        assert set(request.feature_names) <= set(SEGMENTED_FEATURE_NAMES)
        assert {f.family for f in FEATURES if f.name in request.feature_names} == set(families)


def test_a_trained_model_profiles_the_counts_it_does_not_segment_on():
    """Training fits on the segmented features; profiles still give the counts' medians."""
    rng = np.random.default_rng(0)
    n = 120
    frame = pd.DataFrame(
        {name: rng.integers(0, 2, n) if feature(name).unit == "flag" else rng.random(n) * 10
         for name in (f.name for f in FEATURES)}
    )  # fmt: skip
    frame["is_canceled"] = 0
    frame.loc[: n // 2, "mrr"] += 100  # two groups
    frame.insert(0, "customer_id", [f"c{i}" for i in range(n)])
    segmenter = CustomerSegmenter(n_resamples=2, candidates=[KMeansFamily().candidate(2)])
    explainer = SegmentExplainer(leaf_ladder=(8,), n_folds=2, max_iter=60)
    fitted = fit_model(frame, segmenter, explainer)
    assert fitted.model.feature_names == list(SEGMENTED_FEATURE_NAMES)
    for profile in fitted.model.profiles:
        assert set(COUNTS) <= set(profile.medians)
