"""Invariants of the feature definitions, checked on generated companies."""

from __future__ import annotations

import random
from datetime import datetime
from pathlib import Path

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import CUSTOMERS, as_of_instants, companies

from feature_store.features import compute_customer_features
from feature_store.ingest import ingest_files
from feature_store.layout import StoreLayout
from feature_store.memory import validate_events
from pipelines.feature_pipeline import build_features


def features_in_memory(billing: list[dict], usage: list[dict], as_of: datetime) -> pd.DataFrame:
    validated = validate_events({"billing": billing, "usage": usage})
    assert not validated.rejected
    return compute_customer_features(validated.events, as_of).set_index("customer_id")


@settings(max_examples=40, deadline=None)
@given(companies, as_of_instants, st.randoms(use_true_random=False))
def test_event_order_does_not_matter(company, as_of, rng: random.Random):
    billing, usage = company
    shuffled_billing, shuffled_usage = billing[:], usage[:]
    rng.shuffle(shuffled_billing)
    rng.shuffle(shuffled_usage)
    pd.testing.assert_frame_equal(
        features_in_memory(billing, usage, as_of),
        features_in_memory(shuffled_billing, shuffled_usage, as_of),
    )


@settings(max_examples=40, deadline=None)
@given(companies, companies, as_of_instants)
def test_events_at_or_after_as_of_change_nothing(company, later, as_of):
    billing, usage = company
    stamp = as_of.isoformat() + "Z"

    def at_or_after(events: list[dict], prefix: str) -> list[dict]:
        # Same customers, ids that do not collide, every instant moved to T or later.
        return [
            {**e, "event_id": f"{prefix}{i}", "occurred_at": max(e["occurred_at"], stamp)}
            for i, e in enumerate(events)
        ]

    pd.testing.assert_frame_equal(
        features_in_memory(billing, usage, as_of),
        features_in_memory(
            billing + at_or_after(later[0], "late-b"),
            usage + at_or_after(later[1], "late-u"),
            as_of,
        ),
    )


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(companies, as_of_instants)
def test_single_customer_in_memory_equals_the_batch(tmp_path_factory, company, as_of):
    billing, usage = company
    folder: Path = tmp_path_factory.mktemp("parity")
    layout = StoreLayout(folder / "home")
    files = {}
    for stream, events in (("billing", billing), ("usage", usage)):
        if events:
            files[stream] = folder / f"{stream}.jsonl"
            pd.DataFrame(events).to_json(files[stream], orient="records", lines=True)
    if not files:
        return
    ingest_files(layout, files)
    batch = build_features(layout, as_of).set_index("customer_id")
    for customer in CUSTOMERS:
        own_billing = [e for e in billing if e["customer_id"] == customer]
        own_usage = [e for e in usage if e["customer_id"] == customer]
        single = features_in_memory(own_billing, own_usage, as_of)
        if customer not in batch.index:
            assert single.empty
            continue
        pd.testing.assert_series_equal(single.loc[customer], batch.loc[customer])
