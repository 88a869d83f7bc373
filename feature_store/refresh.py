"""Recompute the feature vectors of a few customers from the offline store (incremental refresh).

The batch feature SQL (``features.compute_features``) runs over the stored events of the named
customers only, so a refreshed vector is exactly the one a full ``segments features`` run as of
the same instant would give those customers, at a fraction of the cost.

Money is converted by the data home's kept price levels. A refreshed customer who pays in a
currency those levels have never seen (neither priced nor noted as unpriced: the first customers
of a new market, ingested over HTTP) would otherwise keep its money unconverted until the next
full build. So then the levels are measured over the whole store and kept, as a full build
would: once the store holds enough of the currency's customers to price it (a count of its
customers first; a currency whose customers are too few to price stays unconverted, as in a full
build), and the currency is noted even when too few of them pay, so that it costs one full
feature query per new currency, not one per refresh.
"""

from __future__ import annotations

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
)
from feature_store.features import feature_table, local_features
from feature_store.layout import StoreLayout
from feature_store.offline_store import EVENT_VIEWS, OfflineStore
from feature_store.online_store import OnlineStore

_WANTED = "refresh_customers"


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
    currency they have not seen (with none kept, the data home has had one currency: a
    refreshed customer in another cannot be told from its only one without a full build, and
    the models trained there convert nothing either; ``segments features`` measures them)."""
    kept = read_levels(layout)
    if kept is None:
        return None
    unseen = set(local[CURRENCY_COLUMN].dropna()) - set(kept.levels) - set(kept.unpriced)
    if not unseen:
        return kept
    store.register_views(con)  # the whole store: a currency is priced over all its customers
    if not _could_be_priced(con, unseen, as_of):
        return kept
    return kept_levels(layout, local_features(con, as_of))


def _could_be_priced(con: duckdb.DuckDBPyConnection, currencies: set[str], as_of: datetime) -> bool:
    """Whether any of ``currencies`` has enough customers in the store to be priced: a count over
    the billing events, so that a trickle of customers in new currencies (or a client inventing
    codes) costs this query per refresh, and a full feature query only once a currency could be
    measured."""
    ((most,),) = con.execute(
        f"SELECT coalesce(max(customers), 0) FROM (SELECT count(DISTINCT customer_id) AS customers "
        f"FROM {EVENT_VIEWS['billing']} WHERE occurred_at < ? AND currency IN "
        f"(SELECT unnest(?)) GROUP BY currency)",
        [as_of, sorted(currencies)],
    ).fetchall()  # all: a result left unfinished blocks the connection's next query
    return most >= MIN_PRICED_CUSTOMERS


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
