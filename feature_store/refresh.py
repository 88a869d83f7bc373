"""Recompute the feature vectors of a few customers from the offline store (incremental refresh).

The batch feature SQL (``features.compute_features``) runs over the stored events of the named
customers only, so a refreshed vector is exactly the one a full ``segments features`` run as of
the same instant would give those customers, at a fraction of the cost.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import duckdb
import pandas as pd
import pyarrow as pa

from feature_store.currency import read_levels
from feature_store.features import compute_features
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
        # a few customers cannot measure price levels: the data home's kept ones convert them
        return compute_features(con, as_of, read_levels(layout))
    finally:
        con.unregister(_WANTED)


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
