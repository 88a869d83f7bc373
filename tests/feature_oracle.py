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


def _latest_subscription(subs: pd.DataFrame, before: datetime) -> pd.DataFrame:
    """Per customer: mrr, seats, interval, type of the latest subscription event before ``before``."""
    s = subs[subs["occurred_at"] < before].sort_values(["customer_id", "occurred_at", "event_id"])
    last = s.groupby("customer_id").tail(1).set_index("customer_id")
    canceled = last["type"] == "subscription_canceled"
    return pd.DataFrame(
        {
            "mrr": np.where(canceled, 0.0, last["mrr"].fillna(0.0)),
            "seats": np.where(canceled, 0, last["seats"].fillna(0)),
            "is_annual": ((~canceled) & (last["interval"] == "year")).astype(int),
            "latest_type": last["type"],
        },
        index=last.index,
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

    subs = subs.sort_values(["customer_id", "occurred_at", "event_id"])
    subs["effective_mrr"] = np.where(
        subs["type"] == "subscription_canceled", 0.0, subs["mrr"].fillna(0.0)
    )
    subs["previous_mrr"] = subs.groupby("customer_id")["effective_mrr"].shift(1).fillna(0.0)
    changed = subs[
        (subs["type"] == "subscription_changed") & (subs["occurred_at"] >= t - 365 * DAY)
    ]
    up = changed[changed["effective_mrr"] > changed["previous_mrr"]].groupby("customer_id").size()
    down = changed[changed["effective_mrr"] < changed["previous_mrr"]].groupby("customer_id").size()
    out["expansions_365d"] = up.reindex(out.index).fillna(0).astype(int)
    out["contractions_365d"] = down.reindex(out.index).fillna(0).astype(int)

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
