"""Every feature as DuckDB SQL over ``billing_events`` and ``usage_events``.

The shared aggregates (CTEs) are written here; each feature's output expression over them comes
from its entry in ``feature_store.registry``, which is the one place a feature is defined.

The same SQL runs over the whole offline store (batch) and over one customer's events held in memory
(scoring a customer the store has never seen), so training and serving cannot drift apart. Every
definition follows ``docs/contracts/features.md``: only events strictly before ``T`` count, "last N
days" is ``[T - N days, T)``, and day counts are whole days rounded down.
"""

from __future__ import annotations

from datetime import datetime

import duckdb
import pandas as pd

from feature_store.currency import CurrencyLevels, to_reporting_currency
from feature_store.engine import connect
from feature_store.offline_store import EVENT_VIEWS, empty_events_sql
from feature_store.registry import FEATURES, FeatureDefinition
from feature_store.schema import MONEY_TYPES, SUBSCRIPTION_TYPES, Stream

_MICROS_PER_DAY = 86_400_000_000
# The longest window a usage feature reads back from the as-of: the ``_90d`` features (``d90`` in
# ``feature_query``; days_since_last_activity reads further but is capped by tenure).
USAGE_LOOKBACK_DAYS = 90


def _sql_list(values: tuple[str, ...]) -> str:
    return "(" + ", ".join(f"'{value}'" for value in values) + ")"


def _whole_days(later: str, earlier: str) -> str:
    """Whole days from ``earlier`` to ``later``, rounded down."""
    return f"((epoch_us({later}) - epoch_us({earlier})) // {_MICROS_PER_DAY})"


_SQL_TYPES = {"int": "BIGINT", "float": "DOUBLE"}


def _column(feature: FeatureDefinition, typed: bool) -> str:
    if typed:
        return f"CAST({feature.expression} AS {_SQL_TYPES[feature.dtype]}) AS {feature.name}"
    return f"({feature.expression}) AS {feature.name}"


def _select_list(typed: bool) -> str:
    """Each registered feature's expression, cast to its declared type when ``typed``."""
    return ",\n       ".join(_column(feature, typed) for feature in FEATURES)


def subscription_ctes(t: str) -> str:
    """The CTEs of each customer's subscription state as of ``t`` (SQL for an instant), reading a
    relation ``billing`` that holds the billing events before ``t``; ``latest_subscription`` is
    one row per customer with a subscription event: ``mrr`` and ``seats`` summed over its
    subscriptions, ``canceled`` when every one is cancelled, ``latest_interval`` and
    ``latest_plan`` of its live subscription with the most MRR (of its latest subscription when
    all are cancelled), ``latest_at`` (its latest subscription event), ``mrr_90d_ago``, and the
    expansions and contractions of the last year. One definition for the features and for the
    discovery cohorts (``feature_store.cohort``)."""
    d90, d365 = (f"({t} - INTERVAL {n} DAY)" for n in (90, 365))
    return f"""named AS (
    -- Each named subscription's first event: one whose first event is not a start continues a
    -- subscription that began before its events were named.
    SELECT customer_id, subscription_id,
           arg_min(type, (occurred_at, event_id)) <> 'subscription_started' AS continues,
           min(occurred_at) AS first_at, arg_min(event_id, (occurred_at, event_id)) AS first_id
    FROM billing
    WHERE type IN {_sql_list(SUBSCRIPTION_TYPES)} AND subscription_id IS NOT NULL
    GROUP BY customer_id, subscription_id
),
subscription_events AS (
    -- Each subscription event and the subscription it is about (``docs/contracts/events.md``):
    -- its id; for an event without one, the customer's first named subscription that continues
    -- an earlier one (events stored before ids were sent describe it), else a subscription of
    -- their own ('': the customer's one subscription when no event names one).
    SELECT b.customer_id, b.occurred_at, b.event_id, b.type, b.interval, b.plan,
           coalesce(b.subscription_id, f.first_subscription, '') AS subscription,
           CASE WHEN b.type = 'subscription_canceled' THEN 0 ELSE coalesce(b.seats, 0) END AS seats_after,
           CASE WHEN b.type = 'subscription_canceled' THEN 0.0 ELSE coalesce(b.mrr, 0) END AS mrr_after,
           CASE WHEN b.type = 'subscription_canceled' THEN 0 ELSE 1 END AS live_after
    FROM billing AS b
    LEFT JOIN (
        SELECT customer_id, arg_min(subscription_id, (first_at, first_id)) AS first_subscription
        FROM named WHERE continues GROUP BY customer_id
    ) AS f USING (customer_id)
    WHERE b.type IN {_sql_list(SUBSCRIPTION_TYPES)}
),
subscription_steps AS (
    -- The subscription's MRR, whether it was live and whether it was paying just before each of
    -- its events; whether the event starts or ends paying for a subscription (``opens``): a
    -- cancellation, or a start of one not live before or not paying before (a trial converting).
    SELECT *,
           type = 'subscription_canceled'
             OR (type = 'subscription_started' AND (live_before = 0 OR mrr_before = 0)) AS opens
    FROM (
        SELECT *,
               lag(mrr_after, 1, 0.0) OVER (PARTITION BY customer_id, subscription
                                            ORDER BY occurred_at, event_id) AS mrr_before,
               lag(live_after, 1, 0) OVER (PARTITION BY customer_id, subscription
                                           ORDER BY occurred_at, event_id) AS live_before
        FROM subscription_events
    )
),
subscription_instants AS (
    -- Each subscription at each instant it has events: whether it starts or ends paying there
    -- (``opens``), paid just before it and pays just after it, and the MRR those events move.
    SELECT customer_id, occurred_at, subscription,
           bool_or(opens) AS opens,
           arg_min(mrr_before, event_id) > 0 AS paid_before,
           arg_max(mrr_after, event_id) > 0 AS pays_after,
           sum(CASE WHEN mrr_after > 0 THEN 1 ELSE 0 END
               - CASE WHEN mrr_before > 0 THEN 1 ELSE 0 END) AS change,
           sum(CASE WHEN opens THEN mrr_after - mrr_before ELSE 0.0 END) AS move
    FROM subscription_steps GROUP BY customer_id, occurred_at, subscription
),
instants AS (
    -- The customer-level moves that starts and ends of paying make. The subscriptions started or
    -- ended at one instant are judged together, against the customer's other subscriptions: an
    -- expansion when another was paid for just before the instant and the starts and ends raise
    -- the MRR (a second subscription, a trial add-on that starts paying), a contraction when
    -- another is still paid for just after it and they lower it (one of two ended). Without
    -- another subscription nothing is counted here, so a customer with one subscription reads
    -- exactly as when price changes alone counted (a first purchase, a restart, the end of the
    -- last subscription: churn, not a contraction). One row per customer and instant.
    SELECT customer_id, occurred_at, move, opens,
           paying_after - change - opened_paid_before AS others_paid_before,
           paying_after - opened_pays_after AS others_pay_after
    FROM (
        SELECT *,
               sum(change) OVER (PARTITION BY customer_id ORDER BY occurred_at
                                 ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS paying_after
        FROM (
            SELECT customer_id, occurred_at, sum(change) AS change,
                   round(sum(move), 9) AS move, bool_or(opens) AS opens,
                   count(*) FILTER (opens AND paid_before) AS opened_paid_before,
                   count(*) FILTER (opens AND pays_after) AS opened_pays_after
            FROM subscription_instants GROUP BY customer_id, occurred_at
        )
    )
),
instant_moves AS (
    SELECT customer_id,
           count(*) FILTER (opens AND others_paid_before > 0 AND move > 0
                            AND occurred_at >= {d365}) AS expansions_365d,
           count(*) FILTER (opens AND others_pay_after > 0 AND move < 0
                            AND occurred_at >= {d365}) AS contractions_365d
    FROM instants GROUP BY customer_id
),
subscription_state AS (
    -- Each subscription as of T: its latest event's MRR, seats, type and interval.
    SELECT customer_id, subscription,
           arg_max(mrr_after, (occurred_at, event_id)) AS mrr,
           arg_max(seats_after, (occurred_at, event_id)) AS seats,
           arg_max(type, (occurred_at, event_id)) = 'subscription_canceled' AS canceled,
           arg_max_null(interval, (occurred_at, event_id)) AS latest_interval,
           arg_max_null(plan, (occurred_at, event_id)) AS latest_plan,
           max(occurred_at) AS latest_at,
           arg_max(event_id, (occurred_at, event_id)) AS latest_event_id,
           arg_max(mrr_after, (occurred_at, event_id)) FILTER (occurred_at < {d90}) AS mrr_90d_ago,
           -- price changes; the moves of starts and ends are counted per instant
           count(*) FILTER (type = 'subscription_changed' AND mrr_after > mrr_before
                            AND occurred_at >= {d365}) AS expansions_365d,
           count(*) FILTER (type = 'subscription_changed' AND mrr_after < mrr_before
                            AND occurred_at >= {d365}) AS contractions_365d
    FROM subscription_steps GROUP BY customer_id, subscription
),
latest_subscription AS (
    -- The customer: MRR and seats summed over its subscriptions (a cancelled one counts 0);
    -- cancelled when every one is; billed yearly when its live subscription with the most MRR
    -- is (a cancelled customer keeps its latest subscription's interval).
    SELECT customer_id,
           sum(mrr) AS mrr,
           CAST(sum(seats) AS BIGINT) AS seats,
           bool_and(canceled) AS canceled,
           CASE WHEN bool_and(canceled)
                THEN arg_max_null(latest_interval, (latest_at, latest_event_id))
                ELSE arg_max_null(latest_interval, (mrr, latest_at, latest_event_id))
                         FILTER (NOT canceled)
           END AS latest_interval,
           CASE WHEN bool_and(canceled)
                THEN arg_max_null(latest_plan, (latest_at, latest_event_id))
                ELSE arg_max_null(latest_plan, (mrr, latest_at, latest_event_id))
                         FILTER (NOT canceled)
           END AS latest_plan,
           max(latest_at) AS latest_at,
           sum(mrr_90d_ago) AS mrr_90d_ago,
           CAST(sum(s.expansions_365d) + max(m.expansions_365d) AS BIGINT)
               AS expansions_365d,
           CAST(sum(s.contractions_365d) + max(m.contractions_365d) AS BIGINT)
               AS contractions_365d
    FROM subscription_state AS s JOIN instant_moves AS m USING (customer_id)
    GROUP BY customer_id
)"""


def feature_sql(as_of: datetime) -> str:
    """SQL returning one row per customer with ``customer_id`` and every registered feature."""
    return feature_query(as_of, typed=True)


def feature_query(as_of: datetime, *, typed: bool) -> str:
    """The feature SQL; untyped, each column keeps the type its expression computes (which the
    registry tests compare with the declared ``dtype``, since a cast would hide a mismatch)."""
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
{subscription_ctes(t)},
money AS (
    SELECT customer_id,
           {_whole_days(t, "min(occurred_at) FILTER (type IN ('subscription_started', 'invoice_paid'))")}
               AS days_since_first_paid,
           {_whole_days(t, "max(occurred_at) FILTER (type = 'invoice_paid')")} AS days_since_last_paid,
           coalesce(sum(amount) FILTER (type = 'invoice_paid'), 0)
             - coalesce(sum(amount) FILTER (type = 'refund_issued'), 0) AS ltv,
           count(*) FILTER (type = 'payment_failed' AND occurred_at >= {d90}) AS failed_payments_90d,
           count(*) FILTER (type = 'payment_failed' AND occurred_at >= {d365}) AS failed_payments_365d,
           count(*) FILTER (type = 'invoice_paid' AND occurred_at >= {d365}) AS invoices_paid_365d,
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
    SELECT l.customer_id, l.days_since_last_active, r.active_days_30d, r.active_days_90d, r.events_30d,
           r.events_90d, r.events_30_90d, r.api_events_30d, r.logins_30d, u.active_users_30d,
           f.feature_breadth_90d
    FROM (SELECT customer_id, {_whole_days(t, "max(occurred_at)")} AS days_since_last_active
          FROM usage GROUP BY customer_id) AS l
    LEFT JOIN recent_usage AS r USING (customer_id)
    LEFT JOIN active_users AS u USING (customer_id)
    LEFT JOIN features_used AS f USING (customer_id)
),
currencies AS (
    -- The customer's currency (one per customer in the contract; the latest if several), which
    -- ``feature_store.currency`` converts the money features from: not a feature itself.
    SELECT customer_id, CAST(arg_max(currency, (occurred_at, event_id)) AS VARCHAR) AS currency
    FROM billing WHERE currency IS NOT NULL GROUP BY customer_id
),
customers AS (
    -- Every customer with an event before T: each event lands in one of these aggregates. Built
    -- from them rather than from the raw events so that no event relation is scanned twice.
    SELECT customer_id FROM latest_subscription
    UNION SELECT customer_id FROM money
    UNION SELECT customer_id FROM activity
)
-- One row per customer; each feature's expression comes from its registry entry.
SELECT c.customer_id, cur.currency,
       {_select_list(typed)}
FROM customers AS c
LEFT JOIN currencies AS cur USING (customer_id)
LEFT JOIN latest_subscription AS s USING (customer_id)
LEFT JOIN money AS m USING (customer_id)
LEFT JOIN activity AS a USING (customer_id)
ORDER BY customer_id
"""


def compute_features(
    con: duckdb.DuckDBPyConnection, as_of: datetime, levels: CurrencyLevels | None = None
) -> pd.DataFrame:
    """Every customer's vector as of ``as_of``, read from the ``*_events`` relations of ``con``;
    money in each customer's own currency, or with ``levels``, in their reporting currency."""
    return feature_table(local_features(con, as_of), levels)


def feature_table(local: pd.DataFrame, levels: CurrencyLevels | None) -> pd.DataFrame:
    """``customer_id`` and every registered feature of a ``local_features`` table, money
    converted by ``levels`` (``feature_store.currency``; None: left as computed)."""
    return to_reporting_currency(local, levels)[["customer_id", *(f.name for f in FEATURES)]]


def local_features(con: duckdb.DuckDBPyConnection, as_of: datetime) -> pd.DataFrame:
    """The vectors with money in each customer's own currency, and that currency
    (``feature_store.currency.CURRENCY_COLUMN``) beside ``customer_id``."""
    return con.execute(feature_sql(as_of)).df()


def cancellation_times(con: duckdb.DuckDBPyConnection, as_of: datetime) -> dict[str, datetime]:
    """The customers whose subscription is cancelled as of ``as_of``, and when they cancelled.

    The rule is the ``is_canceled`` feature's (``subscription_ctes``: every subscription of the
    customer ended); this query also returns when the last one ended, which no feature keeps."""
    t = f"TIMESTAMP '{as_of.isoformat(sep=' ')}'"
    rows = con.execute(
        f"""
WITH billing AS (SELECT * FROM {EVENT_VIEWS["billing"]} WHERE occurred_at < {t}),
{subscription_ctes(t)}
SELECT customer_id, latest_at FROM latest_subscription WHERE canceled ORDER BY customer_id"""
    ).fetchall()
    return {str(customer): canceled_at for customer, canceled_at in rows}


def customers_per_currency(con: duckdb.DuckDBPyConnection, as_of: datetime) -> dict[str, int]:
    """Customers with a billing event before ``as_of``, per currency, from the billing events
    alone: whether a table would convert anything (two currencies or more) and how many
    customers a currency has, without computing the table."""
    rows = con.execute(
        f"SELECT currency, count(DISTINCT customer_id) FROM {EVENT_VIEWS['billing']} "
        "WHERE occurred_at < ? AND currency IS NOT NULL GROUP BY currency",
        [as_of],
    ).fetchall()
    return {str(currency): int(customers) for currency, customers in rows}


def use_events(con: duckdb.DuckDBPyConnection, events: dict[Stream, pd.DataFrame]) -> None:
    """Point the event relations of ``con`` at ``events`` (replacing earlier ones)."""
    for stream, view in EVENT_VIEWS.items():
        frame = events.get(stream)
        if frame is None or frame.empty:
            con.execute(f"CREATE OR REPLACE TEMP VIEW {view} AS {empty_events_sql(stream)}")
        else:
            con.register(f"{view}_frame", frame)
            # by name, as the store reads its parts: a frame without an optional column added
            # to the contract later (``schema.ADDED_COLUMNS``) reads it as NULL
            con.execute(
                f"CREATE OR REPLACE TEMP VIEW {view} AS SELECT * FROM {view}_frame "
                f"UNION ALL BY NAME {empty_events_sql(stream)}"
            )


def compute_customer_features(
    events: dict[Stream, pd.DataFrame],
    as_of: datetime,
    session: duckdb.DuckDBPyConnection | None = None,
    levels: CurrencyLevels | None = None,
) -> pd.DataFrame:
    """The same features for events held in memory (already validated, canonical columns).

    ``session`` is a connection of the caller's own (``SessionFactory.session()``, closed by the
    caller); without one, a throwaway database is opened and closed here. ``levels``: the price
    levels of the model the vectors are for (a few customers cannot measure their own).
    """
    con = session if session is not None else connect(threads=1)
    try:
        use_events(con, events)
        return compute_features(con, as_of, levels)
    finally:
        if session is None:
            con.close()
