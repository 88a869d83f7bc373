"""The one definition of every feature, as DuckDB SQL over ``billing_events`` and ``usage_events``.

The same SQL runs over the whole offline store (batch) and over one customer's events held in memory
(scoring a customer the store has never seen), so training and serving cannot drift apart. Every
definition follows ``shared/spec/features.md``: only events strictly before ``T`` count, "last N
days" is ``[T - N days, T)``, and day counts are whole days rounded down.
"""

from __future__ import annotations

from datetime import datetime

import duckdb
import pandas as pd

from feature_store.engine import connect
from feature_store.offline_store import EVENT_VIEWS, empty_events_sql
from feature_store.registry import FEATURES
from feature_store.schema import MONEY_TYPES, SUBSCRIPTION_TYPES, Stream

_MICROS_PER_DAY = 86_400_000_000


def _sql_list(values: tuple[str, ...]) -> str:
    return "(" + ", ".join(f"'{value}'" for value in values) + ")"


def _whole_days(later: str, earlier: str) -> str:
    """Whole days from ``earlier`` to ``later``, rounded down."""
    return f"((epoch_us({later}) - epoch_us({earlier})) // {_MICROS_PER_DAY})"


def feature_sql(as_of: datetime) -> str:
    """SQL returning one row per customer with ``customer_id`` and every registered feature."""
    t = f"TIMESTAMP '{as_of.isoformat(sep=' ')}'"
    d30, d90, d365 = (f"({t} - INTERVAL {n} DAY)" for n in (30, 90, 365))
    billing, usage = EVENT_VIEWS["billing"], EVENT_VIEWS["usage"]
    return f"""
WITH billing AS (
    SELECT * FROM {billing} WHERE occurred_at < {t}
),
usage AS (
    SELECT customer_id, occurred_at, event, user_id, feature, quantity
    FROM {usage} WHERE occurred_at < {t}
),
subscriptions AS (
    -- MRR after each subscription event (0 once canceled) and the MRR just before it.
    SELECT customer_id, occurred_at, event_id, type, interval,
           CASE WHEN type = 'subscription_canceled' THEN 0 ELSE coalesce(seats, 0) END AS seats_after,
           CASE WHEN type = 'subscription_canceled' THEN 0.0 ELSE coalesce(mrr, 0) END AS mrr_after,
           lag(CASE WHEN type = 'subscription_canceled' THEN 0.0 ELSE coalesce(mrr, 0) END, 1, 0.0)
               OVER (PARTITION BY customer_id ORDER BY occurred_at, event_id) AS mrr_before
    FROM billing WHERE type IN {_sql_list(SUBSCRIPTION_TYPES)}
),
latest_subscription AS (
    SELECT customer_id,
           arg_max(mrr_after, (occurred_at, event_id)) AS mrr,
           arg_max(seats_after, (occurred_at, event_id)) AS seats,
           arg_max(type, (occurred_at, event_id)) AS latest_type,
           arg_max_null(interval, (occurred_at, event_id)) AS latest_interval,
           arg_max(mrr_after, (occurred_at, event_id)) FILTER (occurred_at < {d90}) AS mrr_90d_ago,
           count(*) FILTER (type = 'subscription_changed' AND occurred_at >= {d365}
                            AND mrr_after > mrr_before) AS expansions_365d,
           count(*) FILTER (type = 'subscription_changed' AND occurred_at >= {d365}
                            AND mrr_after < mrr_before) AS contractions_365d
    FROM subscriptions GROUP BY customer_id
),
money AS (
    SELECT customer_id,
           min(occurred_at) FILTER (type IN ('subscription_started', 'invoice_paid')) AS first_paid_at,
           max(occurred_at) FILTER (type = 'invoice_paid') AS last_paid_at,
           coalesce(sum(amount) FILTER (type = 'invoice_paid'), 0)
             - coalesce(sum(amount) FILTER (type = 'refund_issued'), 0) AS ltv,
           count(*) FILTER (type = 'payment_failed' AND occurred_at >= {d90}) AS failed_payments_90d,
           count(*) FILTER (type = 'payment_failed' AND occurred_at >= {d365}) AS failed_payments_365d,
           coalesce(sum(amount) FILTER (type = 'refund_issued' AND occurred_at >= {d365}), 0)
               AS refunds_365d,
           coalesce(sum(amount) FILTER (type = 'invoice_paid' AND occurred_at >= {d365}), 0)
               AS paid_365d
    FROM billing WHERE type IN {_sql_list((*MONEY_TYPES, "subscription_started"))}
    GROUP BY customer_id
),
usage_days AS (
    -- One row per customer and UTC day of the last 90 days: distinct days become a row count,
    -- which is far cheaper than count(DISTINCT day) over every event.
    SELECT customer_id,
           bool_or(occurred_at >= {d30}) AS in_30d,
           sum(quantity) FILTER (occurred_at >= {d30}) AS events_30d,
           sum(quantity) FILTER (occurred_at < {d30}) AS events_30_90d,
           sum(quantity) AS events_90d,
           sum(quantity) FILTER (occurred_at >= {d30} AND event = 'api_call') AS api_events_30d,
           sum(quantity) FILTER (occurred_at >= {d30} AND event = 'login') AS logins_30d
    FROM usage WHERE occurred_at >= {d90}
    GROUP BY customer_id, CAST(occurred_at AS DATE)
),
recent_usage AS (
    SELECT customer_id,
           count(*) FILTER (in_30d) AS active_days_30d,
           count(*) AS active_days_90d,
           coalesce(sum(events_30d), 0) AS events_30d,
           coalesce(sum(events_90d), 0) AS events_90d,
           coalesce(sum(events_30_90d), 0) AS events_30_90d,
           coalesce(sum(api_events_30d), 0) AS api_events_30d,
           coalesce(sum(logins_30d), 0) AS logins_30d
    FROM usage_days GROUP BY customer_id
),
active_users AS (
    SELECT customer_id, count(DISTINCT user_id) AS active_users_30d
    FROM usage WHERE occurred_at >= {d30} AND user_id IS NOT NULL GROUP BY customer_id
),
features_used AS (
    SELECT customer_id, count(DISTINCT feature) AS feature_breadth_90d
    FROM usage WHERE occurred_at >= {d90} AND feature IS NOT NULL GROUP BY customer_id
),
activity AS (
    SELECT l.customer_id, l.last_activity_at, r.active_days_30d, r.active_days_90d, r.events_30d,
           r.events_90d, r.events_30_90d, r.api_events_30d, r.logins_30d, u.active_users_30d,
           f.feature_breadth_90d
    FROM (SELECT customer_id, max(occurred_at) AS last_activity_at FROM usage GROUP BY customer_id) AS l
    LEFT JOIN recent_usage AS r USING (customer_id)
    LEFT JOIN active_users AS u USING (customer_id)
    LEFT JOIN features_used AS f USING (customer_id)
),
customers AS (
    -- Every customer with an event before T: each event lands in one of these aggregates. Built
    -- from them rather than from the raw events so that no event relation is scanned twice.
    SELECT customer_id FROM latest_subscription
    UNION SELECT customer_id FROM money
    UNION SELECT customer_id FROM activity
),
joined AS (
    SELECT c.customer_id,
           coalesce(s.mrr, 0.0) AS mrr,
           coalesce(s.seats, 0) AS seats,
           CASE WHEN s.latest_type <> 'subscription_canceled' AND s.latest_interval = 'year'
                THEN 1 ELSE 0 END AS is_annual,
           coalesce({_whole_days(t, "m.first_paid_at")}, 0) AS tenure_days,
           coalesce(m.ltv, 0.0) AS ltv,
           coalesce(s.mrr, 0.0) - coalesce(s.mrr_90d_ago, 0.0) AS mrr_growth_90d,
           coalesce(s.expansions_365d, 0) AS expansions_365d,
           coalesce(s.contractions_365d, 0) AS contractions_365d,
           coalesce(m.failed_payments_90d, 0) AS failed_payments_90d,
           coalesce(m.refunds_365d, 0.0) AS refunds_365d,
           coalesce(a.active_days_30d, 0) AS active_days_30d,
           coalesce(a.events_30d, 0.0) AS events_30d,
           coalesce(a.active_users_30d, 0) AS active_users_30d,
           coalesce(a.feature_breadth_90d, 0) AS feature_breadth_90d,
           (coalesce(a.events_30d, 0.0) + 1) / (coalesce(a.events_30_90d, 0.0) / 2 + 1) AS usage_trend,
           coalesce(a.api_events_30d, 0.0) AS api_events_30d,
           a.last_activity_at,
           m.last_paid_at,
           CASE WHEN s.latest_type = 'subscription_canceled' THEN 1 ELSE 0 END AS is_canceled,
           coalesce(m.failed_payments_365d, 0) AS failed_payments_365d,
           coalesce(m.paid_365d, 0.0) AS paid_365d,
           coalesce(a.active_days_90d, 0) AS active_days_90d,
           coalesce(a.events_90d, 0.0) AS events_90d,
           coalesce(a.logins_30d, 0.0) AS logins_30d
    FROM customers AS c
    LEFT JOIN latest_subscription AS s USING (customer_id)
    LEFT JOIN money AS m USING (customer_id)
    LEFT JOIN activity AS a USING (customer_id)
)
SELECT customer_id,
       CAST(mrr AS DOUBLE) AS mrr,
       CAST(seats AS BIGINT) AS seats,
       CAST(is_annual AS BIGINT) AS is_annual,
       CAST(tenure_days AS BIGINT) AS tenure_days,
       CAST(ltv AS DOUBLE) AS ltv,
       CAST(mrr_growth_90d AS DOUBLE) AS mrr_growth_90d,
       CAST(expansions_365d AS BIGINT) AS expansions_365d,
       CAST(contractions_365d AS BIGINT) AS contractions_365d,
       CAST(failed_payments_90d AS BIGINT) AS failed_payments_90d,
       CAST(refunds_365d AS DOUBLE) AS refunds_365d,
       CAST(active_days_30d AS BIGINT) AS active_days_30d,
       CAST(events_30d AS DOUBLE) AS events_30d,
       CAST(active_users_30d AS BIGINT) AS active_users_30d,
       CAST(CASE WHEN seats = 0 THEN 0 ELSE active_users_30d / seats END AS DOUBLE)
           AS seat_utilization,
       CAST(feature_breadth_90d AS BIGINT) AS feature_breadth_90d,
       CAST(usage_trend AS DOUBLE) AS usage_trend,
       CAST(coalesce({_whole_days(t, "last_activity_at")}, tenure_days) AS BIGINT)
           AS days_since_last_activity,
       CAST(CASE WHEN events_30d = 0 THEN 0 ELSE api_events_30d / events_30d END AS DOUBLE)
           AS api_share_30d,
       CAST(is_canceled AS BIGINT) AS is_canceled,
       CAST(mrr / greatest(seats, 1) AS DOUBLE) AS mrr_per_seat,
       CAST(coalesce({_whole_days(t, "last_paid_at")}, tenure_days) AS BIGINT)
           AS days_since_last_payment,
       CAST(failed_payments_365d AS BIGINT) AS failed_payments_365d,
       CAST(CASE WHEN paid_365d = 0 THEN 0 ELSE refunds_365d / paid_365d END AS DOUBLE)
           AS refund_rate_365d,
       CAST(active_days_90d AS BIGINT) AS active_days_90d,
       CAST(events_90d AS DOUBLE) AS events_90d,
       CAST(logins_30d AS DOUBLE) AS logins_30d,
       CAST(CASE WHEN active_users_30d = 0 THEN 0 ELSE events_30d / active_users_30d END AS DOUBLE)
           AS events_per_active_user_30d
FROM joined
ORDER BY customer_id
"""


def compute_features(con: duckdb.DuckDBPyConnection, as_of: datetime) -> pd.DataFrame:
    """Every customer's vector as of ``as_of``, read from the ``*_events`` relations of ``con``."""
    frame = con.execute(feature_sql(as_of)).df()
    return frame[["customer_id", *(feature.name for feature in FEATURES)]]


def compute_customer_features(
    events: dict[Stream, pd.DataFrame],
    as_of: datetime,
    session: duckdb.DuckDBPyConnection | None = None,
) -> pd.DataFrame:
    """The same features for events held in memory (already validated, canonical columns).

    ``session`` is a connection of the caller's own (``SessionFactory.session()``, closed by the
    caller); without one, a throwaway database is opened and closed here.
    """
    con = session if session is not None else connect(threads=1)
    try:
        for stream, view in EVENT_VIEWS.items():
            frame = events.get(stream)
            if frame is None or frame.empty:
                con.execute(f"CREATE OR REPLACE TEMP VIEW {view} AS {empty_events_sql(stream)}")
            else:
                con.register(f"{view}_frame", frame)
                con.execute(f"CREATE OR REPLACE TEMP VIEW {view} AS SELECT * FROM {view}_frame")
        return compute_features(con, as_of)
    finally:
        if session is None:
            con.close()
