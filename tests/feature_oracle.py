"""A straightforward pandas implementation of the spec features (``docs/contracts/features.md``).

Written independently of the DuckDB definitions, directly from the spec text. It is the oracle the
tests compare the SQL definitions with, and the baseline ``bench/bench_features.py`` races against.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pandas as pd

SUBSCRIPTION = ["subscription_started", "subscription_changed", "subscription_canceled"]
DAY = pd.Timedelta(days=1)


def _with_subscriptions(subs: pd.DataFrame) -> pd.DataFrame:
    """Each subscription event with the subscription it is about (the events contract): its
    ``subscription_id``; without one, the customer's first named subscription whose first event
    is not a start (it continues one that began before events named it); else a subscription of
    their own ('')."""
    subs = subs.sort_values(["customer_id", "occurred_at", "event_id"]).copy()
    ids = subs["subscription_id"] if "subscription_id" in subs else pd.Series(None, subs.index)
    ids = ids.astype(object)
    named = subs[ids.notna()].assign(subscription=ids[ids.notna()])
    firsts = named.groupby(["customer_id", "subscription"], sort=False).head(1)
    continuing = firsts[firsts["type"] != "subscription_started"]
    first = continuing.groupby("customer_id")["subscription"].first()
    by_first = subs["customer_id"].map(first).astype(object)
    subs["subscription"] = [
        own if isinstance(own, str) else other if isinstance(other, str) else ""
        for own, other in zip(ids, by_first, strict=True)
    ]
    return subs


def _latest_subscription(subs: pd.DataFrame, before: datetime) -> pd.DataFrame:
    """Per customer, as of ``before``: MRR and seats summed over its subscriptions (each one's
    latest event; a cancelled one counts 0), whether every one is cancelled, and is_annual (not
    cancelled, and its live subscription with the most MRR, latest first on ties, bills yearly)."""
    s = _with_subscriptions(subs[subs["occurred_at"] < before])
    last = s.groupby(["customer_id", "subscription"]).tail(1).copy()
    last["canceled"] = last["type"] == "subscription_canceled"
    last["mrr"] = np.where(last["canceled"], 0.0, last["mrr"].fillna(0.0))
    last["seats"] = np.where(last["canceled"], 0, last["seats"].fillna(0))
    per_customer = last.groupby("customer_id")
    live = last[~last["canceled"]].sort_values(["customer_id", "mrr", "occurred_at", "event_id"])
    main = live.groupby("customer_id").tail(1).set_index("customer_id")["interval"]
    out = pd.DataFrame(
        {"mrr": per_customer["mrr"].sum(), "seats": per_customer["seats"].sum().astype(int)}
    )
    out["is_annual"] = (main.reindex(out.index) == "year").astype(int)
    out["is_canceled"] = per_customer["canceled"].all().astype(int)
    return out


def _moves(subs: pd.DataFrame, since: datetime) -> tuple[pd.Series, pd.Series]:
    """Per customer, expansions and contractions of MRR since ``since``. A price change of a
    subscription is one, up or down. The starts and ends of paying at one instant (a
    cancellation; a start of a subscription not live or not paying before) are judged together,
    against the customer's other subscriptions: an expansion when one of those was paid for just
    before the instant and the starts and ends raise the MRR; a contraction when one of those is
    still paid for just after it and they lower it."""
    s = _with_subscriptions(subs)
    canceled = s["type"] == "subscription_canceled"
    s["after"] = np.where(canceled, 0.0, s["mrr"].fillna(0.0))
    s["live"] = (~canceled).astype(int)
    by_subscription = s.groupby(["customer_id", "subscription"])
    s["before"] = by_subscription["after"].shift(1).fillna(0.0)
    was_live = by_subscription["live"].shift(1).fillna(0).astype(int)
    changed = s["type"] == "subscription_changed"
    in_window = s["occurred_at"] >= since
    up = s[changed & (s["after"] > s["before"]) & in_window].groupby("customer_id").size()
    down = s[changed & (s["after"] < s["before"]) & in_window].groupby("customer_id").size()
    s["opens"] = canceled | (
        (s["type"] == "subscription_started") & ((was_live == 0) | (s["before"] == 0))
    )
    s["move"] = np.where(s["opens"], s["after"] - s["before"], 0.0)
    # Each subscription at each instant: paid just before it (its first event there), pays just
    # after it (its last), whether it starts or ends paying there.
    at = s.groupby(["customer_id", "occurred_at", "subscription"]).agg(
        before=("before", "first"),
        after=("after", "last"),
        opens=("opens", "any"),
        move=("move", "sum"),
    )
    at["paid_before"] = (at["before"] > 0) & at["opens"]
    at["pays_after"] = (at["after"] > 0) & at["opens"]
    at["change"] = (at["after"] > 0).astype(int) - (at["before"] > 0).astype(int)
    instants = at.groupby(level=["customer_id", "occurred_at"]).agg(
        change=("change", "sum"),
        move=("move", "sum"),
        opens=("opens", "any"),
        moving_paid_before=("paid_before", "sum"),
        moving_pay_after=("pays_after", "sum"),
    )
    # paying subscriptions after each instant, less those the instant's starts and ends move
    paying = instants.groupby(level="customer_id")["change"].cumsum()
    others_before = paying - instants["change"] - instants["moving_paid_before"]
    others_after = paying - instants["moving_pay_after"]
    move = instants["move"].round(9)
    judged = instants["opens"] & (instants.index.get_level_values("occurred_at") >= since)
    grew = instants[judged & (others_before > 0) & (move > 0)]
    shrank = instants[judged & (others_after > 0) & (move < 0)]
    return (
        up.add(grew.groupby(level="customer_id").size(), fill_value=0),
        down.add(shrank.groupby(level="customer_id").size(), fill_value=0),
    )


def single_subscription_moves(subs: pd.DataFrame, since: datetime) -> tuple[pd.Series, pd.Series]:
    """The definition for customers whose events name no subscription, as the spec wrote it
    before subscriptions were named: ``subscription_changed`` events whose MRR is above (below)
    the customer's previous subscription event's. Kept to check that they read exactly so."""
    s = subs.sort_values(["customer_id", "occurred_at", "event_id"]).copy()
    s["after"] = np.where(s["type"] == "subscription_canceled", 0.0, s["mrr"].fillna(0.0))
    s["before"] = s.groupby("customer_id")["after"].shift(1).fillna(0.0)
    changed = s[(s["type"] == "subscription_changed") & (s["occurred_at"] >= since)]
    return (
        changed[changed["after"] > changed["before"]].groupby("customer_id").size(),
        changed[changed["after"] < changed["before"]].groupby("customer_id").size(),
    )


def pandas_features(billing: pd.DataFrame, usage: pd.DataFrame, as_of: datetime) -> pd.DataFrame:
    t = pd.Timestamp(as_of)
    billing = billing[billing["occurred_at"] < t]
    usage = usage[usage["occurred_at"] < t].copy()
    usage["quantity"] = usage["quantity"].fillna(1.0)
    customers = sorted(set(billing["customer_id"]) | set(usage["customer_id"]))
    out = pd.DataFrame(index=pd.Index(customers, name="customer_id"))

    subs = billing[billing["type"].isin(SUBSCRIPTION)].copy()
    now = _latest_subscription(subs, t)
    before = _latest_subscription(subs, t - timedelta(days=90))
    out["mrr"] = now["mrr"].reindex(out.index).fillna(0.0)
    out["seats"] = now["seats"].reindex(out.index).fillna(0).astype(int)
    out["is_annual"] = now["is_annual"].reindex(out.index).fillna(0).astype(int)

    started = billing[billing["type"].isin(["subscription_started", "invoice_paid"])]
    first = started.groupby("customer_id")["occurred_at"].min()
    tenure = ((t - first) // DAY).reindex(out.index)
    out["tenure_days"] = tenure.fillna(0).astype(int)

    paid = billing[billing["type"] == "invoice_paid"].groupby("customer_id")["amount"].sum()
    refunds = billing[billing["type"] == "refund_issued"]
    refunded = refunds.groupby("customer_id")["amount"].sum()
    out["ltv"] = paid.reindex(out.index).fillna(0.0) - refunded.reindex(out.index).fillna(0.0)
    out["mrr_growth_90d"] = out["mrr"] - before["mrr"].reindex(out.index).fillna(0.0)

    up, down = _moves(subs, t - 365 * DAY)
    out["expansions_365d"] = up.reindex(out.index).fillna(0).astype(int)
    out["contractions_365d"] = down.reindex(out.index).fillna(0).astype(int)
    out["is_canceled"] = now["is_canceled"].reindex(out.index).fillna(0).astype(int)

    failed = billing[
        (billing["type"] == "payment_failed") & (billing["occurred_at"] >= t - 90 * DAY)
    ]
    out["failed_payments_90d"] = (
        failed.groupby("customer_id").size().reindex(out.index).fillna(0).astype(int)
    )
    recent_refunds = refunds[refunds["occurred_at"] >= t - 365 * DAY]
    out["refunds_365d"] = (
        recent_refunds.groupby("customer_id")["amount"].sum().reindex(out.index).fillna(0.0)
    )

    last30 = usage[usage["occurred_at"] >= t - 30 * DAY]
    last90 = usage[usage["occurred_at"] >= t - 90 * DAY]
    between = usage[(usage["occurred_at"] >= t - 90 * DAY) & (usage["occurred_at"] < t - 30 * DAY)]
    g30 = last30.groupby("customer_id")
    out["active_days_30d"] = (
        last30.assign(day=last30["occurred_at"].dt.floor("D"))
        .groupby("customer_id")["day"]
        .nunique()
        .reindex(out.index)
        .fillna(0)
        .astype(int)
    )
    out["events_30d"] = g30["quantity"].sum().reindex(out.index).fillna(0.0)
    out["active_users_30d"] = g30["user_id"].nunique().reindex(out.index).fillna(0).astype(int)
    out["seat_utilization"] = np.where(
        out["seats"] == 0, 0.0, out["active_users_30d"] / out["seats"].where(out["seats"] != 0, 1)
    )
    out["feature_breadth_90d"] = (
        last90.groupby("customer_id")["feature"].nunique().reindex(out.index).fillna(0).astype(int)
    )
    e = between.groupby("customer_id")["quantity"].sum().reindex(out.index).fillna(0.0)
    out["usage_trend"] = (out["events_30d"] + 1) / (e / 2 + 1)
    last_activity = usage.groupby("customer_id")["occurred_at"].max()
    since = ((t - last_activity) // DAY).reindex(out.index)
    out["days_since_last_activity"] = since.fillna(out["tenure_days"]).astype(int)
    api = last30[last30["event"] == "api_call"].groupby("customer_id")["quantity"].sum()
    api = api.reindex(out.index).fillna(0.0)
    out["api_share_30d"] = np.where(
        out["events_30d"] == 0, 0.0, api / out["events_30d"].where(out["events_30d"] != 0, 1)
    )
    return out.reset_index()
