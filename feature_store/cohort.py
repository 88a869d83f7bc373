"""Which customers a discovery segments: a ``Cohort`` of filters, answered by one DuckDB query.

The same query serves the service's check before a job is queued (unknown filter column, empty
selection: one line, no work) and the job itself (which rows of the feature table to keep), so
what was counted is what is segmented.

Filters, all as of the discovery's as-of:

- ``plan`` and ``interval``: of the customer's live subscription with the most MRR (its one
  subscription's latest event, for most customers; ``feature_store.features.subscription_ctes``);
- any other name: a column of the customer attribute table (``segments ingest --customers``),
  compared as text;
- ``mrr_min`` / ``mrr_max``: the customer's MRR, summed over its subscriptions as the ``mrr``
  feature is (0 once cancelled), both ends included;
- ``history_days``: only customers with an event in the last ``history_days`` days before the
  as-of (the features' own look-back windows are fixed by the feature registry).

Cancelled customers are never segmented (``pipelines.train.fit_model``), so only active ones are
counted.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

import duckdb

from feature_store.currency import (
    ESTIMATE,
    CurrencyLevels,
    LevelsChoice,
    estimate_levels,
    extended,
    read_levels,
)
from feature_store.customers import stored_customers_sql
from feature_store.engine import connect, sql_string
from feature_store.errors import SegmentsError
from feature_store.features import customers_per_currency, local_features, subscription_ctes
from feature_store.layout import StoreLayout
from feature_store.offline_store import EVENT_VIEWS, OfflineStore
from feature_store.timeutil import LATEST, as_of_text, rfc3339

SUBSCRIPTION_FILTERS = ("plan", "interval")


class UnknownFilterError(SegmentsError):
    """A filter names a column neither the subscriptions nor the customer attributes have."""


class EmptySelectionError(SegmentsError):
    """The filters leave too few active customers to segment."""


@dataclass(frozen=True)
class Cohort:
    """Column -> accepted values (any of them), an MRR range and a history window."""

    filters: Mapping[str, Sequence[str]] = field(default_factory=dict)
    mrr_min: float | None = None
    mrr_max: float | None = None
    history_days: int | None = None

    def as_dict(self) -> dict[str, Any]:
        values = asdict(self)
        values["filters"] = {name: list(v) for name, v in self.filters.items()}
        return values

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> Cohort:
        return cls(
            filters={str(k): tuple(map(str, v)) for k, v in values.get("filters", {}).items()},
            mrr_min=values.get("mrr_min"),
            mrr_max=values.get("mrr_max"),
            history_days=values.get("history_days"),
        )

    @property
    def selects_everyone(self) -> bool:
        """No filter, bound or window: every customer."""
        return self == Cohort()

    def describe(self) -> str:
        """The selection in words, the same for the same selection however it was typed (filters
        and their values sorted): the promotion gate on customers compares these."""
        parts = [
            f"{name} in {', '.join(sorted(values))}"
            for name, values in sorted(self.filters.items())
        ]
        if self.mrr_min is not None or self.mrr_max is not None:
            # a maximum of 0 is a bound ("MRR 0 to 0", the customers paying nothing), not "any"
            most = "any" if self.mrr_max is None else _amount(self.mrr_max)
            parts.append(f"MRR {_amount(self.mrr_min or 0)} to {most}")
        if self.history_days:
            parts.append(f"an event in the last {self.history_days} days")
        return "; ".join(parts) or "all customers"


def _amount(value: float) -> str:
    """A bound as typed, without an exponent or rounding: 1234567 and 12345.675, where ``:g``
    wrote "1.23457e+06" and "12345.7" (a review)."""
    text = f"{value:f}".rstrip("0").rstrip(".")
    return text if text not in ("", "-0") else "0"


def attribute_columns(con: duckdb.DuckDBPyConnection, layout: StoreLayout) -> list[str]:
    """The columns of the customer attribute table (none when no attributes were ingested)."""
    stored = stored_customers_sql(layout)
    if stored is None:
        return []
    rows = con.execute(
        f"SELECT DISTINCT unnest(json_keys(attributes)) FROM ({stored}) ORDER BY 1"
    ).fetchall()
    return [str(name) for (name,) in rows if name != "customer_id"]


def filter_columns(layout: StoreLayout) -> list[str]:
    """Every column a filter may name."""
    con = connect()
    try:
        return [*SUBSCRIPTION_FILTERS, *attribute_columns(con, layout)]
    finally:
        con.close()


def filter_values(layout: StoreLayout, limit: int = 20) -> dict[str, dict[str, int]]:
    """The values ``plan`` and ``interval`` hold for customers now, as the filters read them
    (the main live subscription's, ``feature_store.features.subscription_ctes``), each with the
    customers it would select (those not cancelled), the most selected first (at most ``limit``
    each): what the Discover form suggests, so a product manager need not guess the spelling the
    billing system uses, nor run a discovery to learn that a plan holds 11 customers (a product
    manager's review). One scan of the billing events; empty for an empty store."""
    con = connect()
    try:
        OfflineStore(layout).register_views(con)
        latest = con.execute(
            f"""
WITH billing AS (SELECT * FROM {EVENT_VIEWS["billing"]}),
{subscription_ctes(f"TIMESTAMP '{LATEST.isoformat(sep=' ')}'")}
SELECT latest_plan AS plan, latest_interval AS interval, NOT coalesce(canceled, false) AS active
FROM latest_subscription"""
        ).df()
    finally:
        con.close()
    found: dict[str, dict[str, int]] = {}
    for name in SUBSCRIPTION_FILTERS:
        held = latest.dropna(subset=[name])
        active = held.groupby(name)["active"].sum()
        total = held[name].value_counts()
        ranked = sorted(total.index, key=lambda v: (-int(active.get(v, 0)), -int(total[v]), v))
        found[name] = {str(v): int(active.get(v, 0)) for v in ranked[:limit]}
    return found


class FilterValuesCache:
    """``filter_values`` computed again only when the billing events change: their visible parts
    are written whole under new names (an ingestion, a compaction), so the list of their names
    says whether anything did. A Discover page then costs a directory listing, not a scan."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._key: tuple[str, ...] | None = None
        self._values: dict[str, dict[str, int]] = {}

    def get(self, layout: StoreLayout) -> dict[str, dict[str, int]]:
        key = tuple(part.name for part in OfflineStore(layout).parts("billing"))
        with self._lock:
            if key != self._key:
                self._values, self._key = filter_values(layout), key
            return self._values


def _cohort_sql(
    cohort: Cohort,
    attributes: Sequence[str],
    stored: str | None,
    levels: CurrencyLevels | None = None,
) -> str:
    """The selection query; ``levels``, the data home's kept price levels, put MRR in the
    reporting currency the MRR bounds are given in (``feature_store.currency``)."""
    billing, usage = EVENT_VIEWS["billing"], EVENT_VIEWS["usage"]
    order = "(occurred_at, event_id)"
    attribute_join = (
        f"LEFT JOIN ({stored}) AS c ON c.customer_id = e.customer_id" if stored is not None else ""
    )
    conditions = ["NOT coalesce(s.canceled, false)"]
    for name in cohort.filters:
        if name in SUBSCRIPTION_FILTERS:
            column = f"s.{name}"
        else:  # validated against ``attributes`` before this is built
            assert name in attributes
            column = f"json_extract_string(c.attributes, {sql_string('$.' + json.dumps(name))})"
        conditions.append(f"list_contains($filter_{attributes_index(name, attributes)}, {column})")
    mrr = "coalesce(s.mrr, 0)"
    level_join = ""
    bounded = cohort.mrr_min is not None or cohort.mrr_max is not None
    if bounded and levels is not None and levels.converts:
        rows = ", ".join(f"({sql_string(c)}, {float(v)!r})" for c, v in levels.levels.items())
        level_join = f"LEFT JOIN (VALUES {rows}) AS lv(currency, level) ON lv.currency = s.currency"
        mrr = f"{mrr} / coalesce(lv.level, 1.0)"
    if cohort.mrr_min is not None:
        conditions.append(f"{mrr} >= $mrr_min")
    if cohort.mrr_max is not None:
        conditions.append(f"{mrr} <= $mrr_max")
    if cohort.history_days:
        conditions.append("e.last_event >= $since")
    return f"""
WITH billing AS (SELECT * FROM {billing} WHERE occurred_at < $as_of),
{subscription_ctes("$as_of")},
events AS (
    SELECT customer_id, occurred_at FROM billing
    UNION ALL SELECT customer_id, occurred_at FROM {usage} WHERE occurred_at < $as_of
),
e AS (SELECT customer_id, max(occurred_at) AS last_event FROM events GROUP BY customer_id),
s AS (
    -- the features' subscription state (``feature_store.features.subscription_ctes``): plan and
    -- interval of the customer's main live subscription, MRR summed over its subscriptions
    SELECT l.customer_id, l.canceled, l.mrr, l.latest_plan AS plan, l.latest_interval AS interval,
           c.currency
    FROM latest_subscription AS l
    LEFT JOIN (
        SELECT customer_id, arg_max(currency, {order}) AS currency
        FROM billing WHERE currency IS NOT NULL GROUP BY customer_id
    ) AS c USING (customer_id)
)
SELECT e.customer_id FROM e LEFT JOIN s ON s.customer_id = e.customer_id {attribute_join}
{level_join}
WHERE {" AND ".join(conditions)}
ORDER BY e.customer_id"""


def attributes_index(name: str, attributes: Sequence[str]) -> int:
    """A parameter name for the filter on ``name`` (never the column name itself)."""
    return [*SUBSCRIPTION_FILTERS, *attributes].index(name)


def _parameters(cohort: Cohort, as_of: datetime, attributes: Sequence[str]) -> dict[str, Any]:
    values: dict[str, Any] = {"as_of": as_of}
    for name, accepted in cohort.filters.items():
        values[f"filter_{attributes_index(name, attributes)}"] = [str(v) for v in accepted]
    if cohort.mrr_min is not None:
        values["mrr_min"] = float(cohort.mrr_min)
    if cohort.mrr_max is not None:
        values["mrr_max"] = float(cohort.mrr_max)
    if cohort.history_days:
        values["since"] = as_of - timedelta(days=cohort.history_days)
    return values


def cohort_customers(
    layout: StoreLayout, cohort: Cohort, as_of: datetime, levels: LevelsChoice = ESTIMATE
) -> list[str]:
    """The active customers ``cohort`` selects as of ``as_of``; ``UnknownFilterError`` for a
    filter on a column nobody has. MRR bounds are in the reporting currency: ``levels`` convert
    the customers' MRR (a discovery passes those its features are converted by); by default
    the levels a feature build would use, without keeping them (``_bounds_levels``)."""
    con = connect()
    try:
        attributes = attribute_columns(con, layout)
        unknown = [n for n in cohort.filters if n not in (*SUBSCRIPTION_FILTERS, *attributes)]
        if unknown:
            known = ", ".join([*SUBSCRIPTION_FILTERS, *attributes])
            raise UnknownFilterError(
                f"unknown filter column {unknown[0]!r}; known: {known} (customer attributes "
                "come from `segments ingest --customers`)"
            )
        OfflineStore(layout).register_views(con)
        if levels == ESTIMATE:
            levels = _bounds_levels(con, layout, cohort, as_of)
        sql = _cohort_sql(cohort, attributes, stored_customers_sql(layout), levels)
        rows = con.execute(sql, _parameters(cohort, as_of, attributes)).fetchall()
    finally:
        con.close()
    return [str(customer) for (customer,) in rows]


def _bounds_levels(
    con: duckdb.DuckDBPyConnection, layout: StoreLayout, cohort: Cohort, as_of: datetime
) -> CurrencyLevels | None:
    """The levels MRR bounds (in the reporting currency) are compared through: with bounds and
    customers paying in several currencies, the data home's kept levels extended as a feature
    build would extend them (measured when none are kept, a currency the kept ones lack added),
    so the cohort and the features agree; read only: a check before a discovery is queued
    writes nothing."""
    if cohort.mrr_min is None and cohort.mrr_max is None:
        return None
    if len(customers_per_currency(con, as_of)) < 2:
        return read_levels(layout)
    return extended(read_levels(layout), estimate_levels(local_features(con, as_of)))


def check_cohort(
    layout: StoreLayout,
    cohort: Cohort,
    as_of: datetime,
    min_customers: int,
    levels: LevelsChoice = ESTIMATE,
) -> list[str]:
    """``cohort_customers``, refusing a selection of fewer than ``min_customers`` in one line."""
    customers = cohort_customers(layout, cohort, as_of, levels)
    if len(customers) < min_customers:
        raise EmptySelectionError(
            f"the filters ({cohort.describe()}) select {len(customers)} active customer(s) as of "
            f"{as_of_text(rfc3339(as_of))}; a discovery needs at least {min_customers}"
            + _spelling_hint(layout, cohort)
        )
    return customers


def _spelling_hint(layout: StoreLayout, cohort: Cohort) -> str:
    """Where a plan or interval asked for is held by customers only in another case ("Team"
    for "team"), say so: values are exact, and a product team read "selects 0" as no such
    customers. Only on the way to an error, so the scan of ``filter_values`` costs nothing
    otherwise."""
    held = filter_values(layout, limit=1000)
    spelled = [
        f"{name} {value!r} is written {known!r}"
        for name, values in sorted(cohort.filters.items())
        for value in values
        if value not in held.get(name, [])
        for known in held.get(name, [])
        if known.casefold() == value.casefold()
    ]
    return f" (values are exact: {'; '.join(spelled)})" if spelled else ""
