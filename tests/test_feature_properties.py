"""Invariants of the feature definitions, checked on generated companies.

Opening a DuckDB database costs more than computing a small company's features, so each test opens
one in-memory database and every example reuses it: the event relations are replaced per call, as
the scoring service replaces them per request in its one database.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import CUSTOMERS, as_of_instants, companies

from feature_store.engine import connect
from feature_store.features import compute_customer_features
from feature_store.ingest import ingest_files
from feature_store.layout import StoreLayout
from feature_store.memory import validate_events
from pipelines.feature_pipeline import build_features


@pytest.fixture(scope="module")
def session() -> Iterator[duckdb.DuckDBPyConnection]:
    con = connect(threads=1)
    yield con
    con.close()


def features_in_memory(
    session: duckdb.DuckDBPyConnection, billing: list[dict], usage: list[dict], as_of: datetime
) -> pd.DataFrame:
    validated = validate_events({"billing": billing, "usage": usage}, session=session)
    assert not validated.rejected
    return compute_customer_features(validated.events, as_of, session).set_index("customer_id")


Company = tuple[list[dict], list[dict]]
TWIN = "twin-"  # sorts after the generated customers c0, c1, c2


def _twins(events: list[dict]) -> list[dict]:
    return [
        {**e, "customer_id": TWIN + e["customer_id"], "event_id": TWIN + e["event_id"]}
        for e in events
    ]


def side_by_side(
    session: duckdb.DuckDBPyConnection, company: Company, variant: Company, as_of: datetime
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The features of a company and of a variant of it, computed in one call (half the cost of
    two) with the variant's customers renamed: a customer's features depend on its own events only
    (``test_single_customer_in_memory_equals_the_batch``)."""
    billing, usage = company
    table = features_in_memory(
        session, billing + _twins(variant[0]), usage + _twins(variant[1]), as_of
    )
    is_twin = table.index.str.startswith(TWIN)
    return table[~is_twin], table[is_twin].rename(index=lambda name: name.removeprefix(TWIN))


@settings(max_examples=40, deadline=None)
@given(companies, as_of_instants, st.randoms(use_true_random=False))
def test_event_order_does_not_matter(session, company, as_of, rng: random.Random):
    billing, usage = company
    shuffled_billing, shuffled_usage = billing[:], usage[:]
    rng.shuffle(shuffled_billing)
    rng.shuffle(shuffled_usage)
    # The twins' events come after the originals, in another order.
    ordered, shuffled = side_by_side(session, company, (shuffled_billing, shuffled_usage), as_of)
    pd.testing.assert_frame_equal(ordered, shuffled)


@settings(max_examples=40, deadline=None)
@given(companies, companies, as_of_instants)
def test_events_at_or_after_as_of_change_nothing(session, company, later, as_of):
    billing, usage = company
    stamp = as_of.isoformat() + "Z"

    def at_or_after(events: list[dict], prefix: str) -> list[dict]:
        # Same customers, ids that do not collide, every instant moved to T or later.
        return [
            {**e, "event_id": f"{prefix}{i}", "occurred_at": max(e["occurred_at"], stamp)}
            for i, e in enumerate(events)
        ]

    with_later = (
        billing + at_or_after(later[0], "late-b"),
        usage + at_or_after(later[1], "late-u"),
    )
    alone, with_later_events = side_by_side(session, company, with_later, as_of)
    pd.testing.assert_frame_equal(alone, with_later_events)


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(companies, as_of_instants)
def test_single_customer_in_memory_equals_the_batch(tmp_path_factory, session, company, as_of):
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
    # Validation is row by row (event ids are unique here), so each customer's validated events
    # are its rows of the whole company's, validated once.
    validated = validate_events({"billing": billing, "usage": usage}, session=session)
    for customer in CUSTOMERS:
        own = {s: f[f["customer_id"] == customer] for s, f in validated.events.items()}
        single = compute_customer_features(own, as_of, session).set_index("customer_id")
        if customer not in batch.index:
            assert single.empty
            continue
        pd.testing.assert_series_equal(single.loc[customer], batch.loc[customer])
