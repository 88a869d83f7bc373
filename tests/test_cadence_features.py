"""What a model segments on does not depend on how often a customer is invoiced.

An annual and a monthly customer whose every invoice fails once before it is paid have the same
payment trouble, but the monthly one has twelve failed payments a year and the annual one one.
Counted per year, failures follow ``is_annual`` and lend a random billing-cadence flag the
agreement of another column (``docs/features.md``, "What a model segments on").
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from feature_store.discovery import DiscoveryRequest
from feature_store.features import compute_customer_features
from feature_store.memory import validate_events
from feature_store.registry import FEATURE_NAMES, FEATURES, SEGMENTED_FEATURE_NAMES, feature
from models.comparison import compare_models
from models.explainer import SegmentExplainer
from models.families.kmeans import KMeansFamily
from models.model_drift import NoReferenceError
from models.segmenter import CustomerSegmenter
from pipelines.identity import Predecessor, identify, membership
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
    return [
        {**row, "occurred_at": row["occurred_at"].isoformat(), "currency": "USD"} for row in rows
    ]


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


def _two_groups(n: int = 120) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {name: rng.integers(0, 2, n) if feature(name).unit == "flag" else rng.random(n) * 10
         for name in (f.name for f in FEATURES)}
    )  # fmt: skip
    frame["is_canceled"] = 0
    frame.loc[: n // 2, "mrr"] += 100
    frame.insert(0, "customer_id", [f"c{i}" for i in range(n)])
    return frame


def _fit(frame: pd.DataFrame, names: tuple[str, ...] = SEGMENTED_FEATURE_NAMES):
    segmenter = CustomerSegmenter(n_resamples=2, candidates=[KMeansFamily().candidate(2)])
    explainer = SegmentExplainer(leaf_ladder=(8,), n_folds=2, max_iter=60)
    fitted = fit_model(frame, segmenter, explainer, names)
    members = membership(fitted.customer_ids, segmenter.labels_, segmenter.is_outlier_)
    return fitted, members


def test_a_trained_model_profiles_the_counts_it_does_not_segment_on():
    """Training fits on the segmented features; profiles still give the counts' medians."""
    fitted, _ = _fit(_two_groups())
    assert fitted.model.feature_names == list(SEGMENTED_FEATURE_NAMES)
    for profile in fitted.model.profiles:
        assert set(COUNTS) <= set(profile.medians)


def test_a_champion_of_every_feature_is_compared_with_a_challenger_of_fewer():
    """A champion trained before the counts left the model input needs them to place the
    challenger's reference customers; the reference keeps every registry column."""
    frame = _two_groups()
    older = tuple(n for n in FEATURE_NAMES if n != "payment_failure_rate_365d")
    first, first_members = _fit(frame, older)
    champion = identify(first.model, first_members, "1", None, 0, frame).model
    second, second_members = _fit(frame)
    before = Predecessor("1", champion, first_members)
    challenger = identify(second.model, second_members, "2", before, 2, frame).model
    assert set(COUNTS) <= set(challenger.reference.columns)
    comparison = compare_models("2", challenger, {}, "1", champion, {}, 12)
    assert comparison.customers_compared == len(challenger.reference)
    assert comparison.same_id_share == 1.0  # the same two groups, the same public ids
    # A sample saved with the challenger's own columns only is refused by name, not a traceback.
    narrow = replace(challenger, reference=challenger.reference[challenger.feature_names])
    with pytest.raises(NoReferenceError, match="lacks features version 1 uses"):
        compare_models("2", narrow, {}, "1", champion, {}, 12)
