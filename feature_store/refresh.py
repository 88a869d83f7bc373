"""Recompute the feature vectors of a few customers from the offline store (incremental refresh).

The batch feature SQL (``features.compute_features``) runs over the stored events of the named
customers only, so a refreshed vector is exactly the one a full ``segments features`` run as of
the same instant would give those customers, at a fraction of the cost. (The one exception is a
new currency, below: its price level is measured over the whole store, as a full build does.)

Money is converted by the data home's kept price levels. A refreshed customer who pays in a
currency those levels do not price (the first customers of a new market, ingested over HTTP)
would otherwise keep its money unconverted until the next full build. So, once the store holds
enough of that currency's customers to price it, the levels are measured over the whole store
and kept, as a full build would (``_worth_measuring`` says when; the query runs on the refresh
thread, so refreshes wait for it, a few times per new currency).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime

import duckdb
import pandas as pd
import pyarrow as pa

from feature_store.currency import (
    CURRENCY_COLUMN,
    MIN_PRICED_CUSTOMERS,
    CurrencyLevels,
    kept_levels,
    read_levels,
    worth_measuring_again,
)
from feature_store.features import customers_per_currency, feature_table, local_features
from feature_store.layout import StoreLayout
from feature_store.offline_store import EVENT_VIEWS, OfflineStore
from feature_store.online_store import OnlineStore

_WANTED = "refresh_customers"

logger = logging.getLogger(__name__)


def customer_features(
    con: duckdb.DuckDBPyConnection,
    layout: StoreLayout,
    customer_ids: Sequence[str],
    as_of: datetime,
) -> pd.DataFrame:
    """Vectors as of ``as_of`` of those ``customer_ids`` that have stored events before it."""
    con.register(_WANTED, pa.table({"customer_id": pa.array(list(customer_ids), pa.string())}))
    store = OfflineStore(layout)
    try:
        for stream, view in EVENT_VIEWS.items():
            con.execute(
                f"CREATE OR REPLACE TEMP VIEW {view} AS SELECT * FROM ({store.events_sql(stream)}) "
                f"WHERE customer_id IN (SELECT customer_id FROM {_WANTED})"
            )
        local = local_features(con, as_of)
    finally:
        con.unregister(_WANTED)
    # a few customers cannot measure price levels: the data home's kept ones convert them
    return feature_table(local, _levels_for(con, layout, store, local, as_of))


def _levels_for(
    con: duckdb.DuckDBPyConnection,
    layout: StoreLayout,
    store: OfflineStore,
    local: pd.DataFrame,
    as_of: datetime,
) -> CurrencyLevels | None:
    """The kept levels, first extended over the whole store when ``local``'s customers pay in a
    currency they do not price and that is worth measuring (``_worth_measuring``). With none
    kept the data home has had one currency (or no full build yet): the models trained there
    convert nothing either, and ``segments features`` measures the levels."""
    kept = read_levels(layout)
    if kept is None:
        return None
    unpriced = set(local[CURRENCY_COLUMN].dropna()) - set(kept.levels)
    if not unpriced:
        return kept
    store.register_views(con)  # the whole store: a currency is priced over all its customers
    customers = customers_per_currency(con, as_of)
    if len(customers) < 2 or not any(
        _worth_measuring(currency, customers.get(currency, 0), kept) for currency in unpriced
    ):
        return kept
    try:
        return kept_levels(layout, local_features(con, as_of))
    except OSError as error:  # the levels file cannot be written: convert as before, say why
        logger.warning("price levels not kept (%s); refreshed with the kept ones", error)
        return kept


def _worth_measuring(currency: str, customers: int, kept: CurrencyLevels) -> bool:
    """Whether measuring the whole store could price ``currency``, held by ``customers``: enough
    of them to price (``MIN_PRICED_CUSTOMERS``, counted in the billing events, so that a
    trickle of customers in new currencies, or a client inventing codes, costs a count per
    refresh); for a currency a measurement already left unpriced (too few paying), twice as many
    as then, so the whole store is measured a few times per currency as it grows, not once per
    refresh."""
    if customers < MIN_PRICED_CUSTOMERS:
        return False
    return currency not in kept.unpriced or worth_measuring_again(kept, currency, customers)


def refresh_online(
    con: duckdb.DuckDBPyConnection,
    layout: StoreLayout,
    online: OnlineStore,
    customer_ids: Sequence[str],
    as_of: datetime,
) -> int:
    """Write the customers' vectors as of ``as_of`` to ``online``; returns how many were written."""
    features = customer_features(con, layout, customer_ids, as_of)
    return online.write(features, as_of) if len(features) else 0
