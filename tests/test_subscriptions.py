"""Customers with several subscriptions (``subscription_id``, docs/contracts/events.md): the cases
a plan with add-ons meets in real billing data, each as events in and features out."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest

from feature_store.engine import connect
from feature_store.features import cancellation_times, compute_features
from feature_store.ingest import ingest_files
from feature_store.layout import StoreLayout
from feature_store.offline_store import OfflineStore

AS_OF = datetime(2026, 7, 1)
PLAN = {"plan": "team", "interval": "month", "seats": 4, "mrr": 80.0}
ADD_ON = {"plan": "add-on", "interval": "month", "seats": 1, "mrr": 5.0}


def event(event_id: str, day: str, kind: str, subscription: str | None, **priced: object) -> dict:
    return {
        "event_id": event_id,
        "customer_id": "c1",
        "occurred_at": f"2026-{day}T00:00:00Z",
        "type": kind,
        "subscription_id": subscription,
        **priced,
        "currency": "EUR",
    }


def ingest(layout: StoreLayout, folder: Path, rows: list[dict], name: str) -> None:
    path = folder / f"{name}.parquet"
    frame = pd.DataFrame(rows)
    frame["seats"] = frame["seats"].astype("Int64") if "seats" in frame else None
    frame.to_parquet(path, index=False)
    report = ingest_files(layout, {"billing": path})["billing"]
    assert report.quarantined == 0, report


def features(layout: StoreLayout, as_of: datetime = AS_OF) -> dict:
    con = connect(threads=1)
    try:
        OfflineStore(layout).register_views(con)
        row = compute_features(con, as_of).set_index("customer_id").loc["c1"]
        gone = cancellation_times(con, as_of)
    finally:
        con.close()
    assert ("c1" in gone) == bool(row["is_canceled"])  # the churned list agrees with the feature
    names = ("mrr", "seats", "is_canceled", "expansions_365d", "contractions_365d")
    return {name: row[name] for name in names}


CASES = {
    "a plan and an add-on, then the add-on ends": (
        [
            event("p1", "01-01", "subscription_started", "sub_plan", **PLAN),
            event("a1", "03-01", "subscription_started", "sub_add_on", **ADD_ON),
            event("a2", "05-01", "subscription_canceled", "sub_add_on"),
        ],
        {"mrr": 80.0, "seats": 4, "is_canceled": 0, "expansions_365d": 1, "contractions_365d": 1},
    ),
    "both started at one instant: a first purchase, no expansion": (
        [
            event("p1", "01-01", "subscription_started", "sub_plan", **PLAN),
            event("a1", "01-01", "subscription_started", "sub_add_on", **ADD_ON),
        ],
        {"mrr": 85.0, "seats": 5, "is_canceled": 0, "expansions_365d": 0, "contractions_365d": 0},
    ),
    "both ended at one instant: churn, not a contraction": (
        [
            event("p1", "01-01", "subscription_started", "sub_plan", **PLAN),
            event("a1", "02-01", "subscription_started", "sub_add_on", **ADD_ON),
            event("p2", "05-01", "subscription_canceled", "sub_plan"),
            event("a2", "05-01", "subscription_canceled", "sub_add_on"),
        ],
        {"mrr": 0.0, "seats": 0, "is_canceled": 1, "expansions_365d": 1, "contractions_365d": 0},
    ),
    "the only subscription swapped for another at one instant: no move, whatever the ids": (
        [  # as one subscription cancelled and started again at one instant reads
            event("z1", "01-01", "subscription_started", "sub_monthly", **ADD_ON),
            event("z2", "04-01", "subscription_canceled", "sub_monthly"),
            event("a3", "04-01", "subscription_started", "sub_yearly", **PLAN),
        ],
        {"mrr": 80.0, "seats": 4, "is_canceled": 0, "expansions_365d": 0, "contractions_365d": 0},
    ),
    "beside a plan, an add-on swapped for a dearer one at one instant: one expansion": (
        [
            event("p1", "01-01", "subscription_started", "sub_plan", **PLAN),
            event("a1", "02-01", "subscription_started", "sub_add_on", **ADD_ON),
            event("z2", "04-01", "subscription_canceled", "sub_add_on"),
            event("a3", "04-01", "subscription_started", "sub_extra", **{**ADD_ON, "mrr": 9.0}),
        ],
        {"mrr": 89.0, "seats": 5, "is_canceled": 0, "expansions_365d": 2, "contractions_365d": 0},
    ),
    "an add-on on trial that starts paying: an expansion": (
        [
            event("p1", "01-01", "subscription_started", "sub_plan", **PLAN),
            event("a1", "02-01", "subscription_started", "sub_add_on", **{**ADD_ON, "mrr": 0.0}),
            event("a2", "02-15", "subscription_started", "sub_add_on", **ADD_ON),
        ],
        {"mrr": 85.0, "seats": 5, "is_canceled": 0, "expansions_365d": 1, "contractions_365d": 0},
    ),
    "a plan on trial that starts paying: a start, not an expansion": (
        [
            event("p1", "01-01", "subscription_started", "sub_plan", **{**PLAN, "mrr": 0.0}),
            event("p2", "01-15", "subscription_started", "sub_plan", **PLAN),
        ],
        {"mrr": 80.0, "seats": 4, "is_canceled": 0, "expansions_365d": 0, "contractions_365d": 0},
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_several_subscriptions(tmp_path, case):
    rows, expected = CASES[case]
    layout = StoreLayout(tmp_path / "home")
    ingest(layout, tmp_path, rows, "events")
    assert features(layout) == expected


def test_a_data_home_from_before_ids_keeps_its_plan_when_an_add_on_is_named(tmp_path):
    """The plan's events were stored before events named subscriptions; the first named event
    afterwards is a new add-on. The unnamed events stay the plan's: the add-on starts, it does
    not take them over. The plan's next event names it, and continues the unnamed ones."""
    layout = StoreLayout(tmp_path / "home")
    ingest(
        layout,
        tmp_path,
        [{**event("p1", "01-01", "subscription_started", None, **PLAN)}],
        "before",
    )
    ingest(
        layout,
        tmp_path,
        [event("a1", "05-01", "subscription_started", "sub_add_on", **ADD_ON)],
        "add-on",
    )
    assert features(layout) == {
        "mrr": 85.0,
        "seats": 5,
        "is_canceled": 0,
        "expansions_365d": 1,
        "contractions_365d": 0,
    }
    ingest(
        layout,
        tmp_path,
        [
            event("a2", "06-01", "subscription_canceled", "sub_add_on"),
            event("p2", "06-10", "subscription_changed", "sub_plan", **{**PLAN, "mrr": 100.0}),
        ],
        "after",
    )
    assert features(layout) == {
        "mrr": 100.0,  # the plan's change replaced its unnamed state: not 80 + 100
        "seats": 4,
        "is_canceled": 0,
        "expansions_365d": 2,
        "contractions_365d": 1,
    }


def test_an_event_id_reused_for_another_subscription_is_quarantined(tmp_path):
    """Two copies of an id that both name a subscription, and different ones, are two events:
    quarantined as a reused id (a copy stored before ids were sent names none, and is a
    duplicate of the same event sent again with one)."""
    from feature_store.memory import validate_events

    layout = StoreLayout(tmp_path / "home")
    ingest(layout, tmp_path, [event("p1", "01-01", "subscription_started", "sub_a", **PLAN)], "a")
    path = tmp_path / "b.parquet"
    pd.DataFrame([event("p1", "01-01", "subscription_started", "sub_b", **PLAN)]).to_parquet(path)
    report = ingest_files(layout, {"billing": path})["billing"]
    assert (report.accepted, report.duplicates, report.quarantined) == (0, 0, 1)
    assert report.reasons == {"conflicting_duplicate": 1}
    same_file = [
        event("x1", "01-01", "subscription_started", "sub_a", **PLAN),
        event("x1", "01-01", "subscription_started", "sub_b", **PLAN),
    ]
    checked = validate_events({"billing": same_file})  # the scoring route's ``events``
    assert [rejected.reasons for rejected in checked.rejected] == [["conflicting_duplicate"]]


@pytest.mark.parametrize("seed", [3, 4, 5])
def test_customers_naming_no_subscription_read_exactly_as_before(tmp_path, seed):
    """The features contract fixes the single-subscription definitions: on random companies
    whose events name no subscription, with many events at one instant (cancellations and
    restarts together, trials, changes after a cancellation), the moves are the price changes
    alone, as the spec wrote them (``feature_oracle.single_subscription_moves``)."""
    from datetime import timedelta

    from feature_oracle import single_subscription_moves
    from test_spark_parity import _ingested, edge_case_company

    from pipelines.feature_pipeline import build_features

    billing, usage = edge_case_company(seed=seed)
    billing = billing.drop(columns=["subscription_id"])
    # a coarser grid: a third of a customer's events share an instant with another
    billing["occurred_at"] = billing["occurred_at"].dt.floor("60D")
    as_of = datetime(2026, 6, 1)
    ours = build_features(_ingested(tmp_path, billing, usage), as_of).set_index("customer_id")
    subs = billing[
        billing["type"].str.startswith("subscription") & (billing["occurred_at"] < as_of)
    ]
    up, down = single_subscription_moves(subs, as_of - timedelta(days=365))
    ties = subs.duplicated(["customer_id", "occurred_at"], keep=False)
    assert ties.mean() > 0.2
    assert ours["expansions_365d"].tolist() == up.reindex(ours.index).fillna(0).astype(int).tolist()
    assert (
        ours["contractions_365d"].tolist()
        == down.reindex(ours.index).fillna(0).astype(int).tolist()
    )


def test_cancellations_that_end_no_subscription_are_counted_and_said(tmp_path):
    """A newcomer mapped RavenStack's account churn as cancellations with no subscription_id,
    beside subscriptions that name theirs: all 600 accepted, none cancelled anything, and
    training said the export recorded no cancellation (a review)."""
    from feature_store.coverage import unmatched_cancellation_note

    layout = StoreLayout(tmp_path / "home")
    rows = [
        event("s1", "01-01", "subscription_started", "sub_a", **PLAN),
        event("x1", "03-01", "subscription_canceled", None),  # names none: its own, ends nothing
        event("x2", "03-02", "subscription_canceled", "sub_z"),  # a subscription never started
        {**event("s2", "01-01", "subscription_started", None, **PLAN), "customer_id": "c2"},
        {**event("x3", "02-01", "subscription_canceled", None), "customer_id": "c2"},  # ends it
        # a named subscription that began before its events were named takes the unnamed ones
        {**event("s3", "01-01", "subscription_changed", "sub_old", **PLAN), "customer_id": "c3"},
        {**event("x4", "02-01", "subscription_canceled", None), "customer_id": "c3"},
    ]
    ingest(layout, tmp_path, rows, "billing")
    note = unmatched_cancellation_note(layout, AS_OF)
    assert note is not None
    assert note.startswith("2 subscription_canceled events of 1 customer (the first 'c1')")
    assert features(layout)["is_canceled"] == 0  # as the note says: c1 still pays
    assert unmatched_cancellation_note(layout, datetime(2026, 2, 15)) is None
