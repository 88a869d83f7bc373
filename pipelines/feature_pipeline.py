"""Build the feature table as of an instant from the offline store; write snapshot and online store."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pandas as pd

from feature_store.coverage import empty_store_error
from feature_store.currency import (
    CURRENCY_COLUMN,
    ESTIMATE,
    CurrencyLevels,
    LevelsChoice,
    kept_levels,
    with_levels,
)
from feature_store.engine import connect
from feature_store.features import cancellation_times, feature_table, local_features
from feature_store.layout import StoreLayout
from feature_store.offline_store import EVENT_VIEWS, OfflineStore
from feature_store.online_store import SqliteOnlineStore
from feature_store.schema import STREAMS
from feature_store.timeutil import naive_utc, now_utc
from models.assignment import as_of_stamp


@dataclass(frozen=True)
class FeatureRun:
    as_of: datetime
    customers: int
    snapshot_path: Path
    online_written: int


def build_features(
    layout: StoreLayout, as_of: datetime, levels: LevelsChoice = ESTIMATE
) -> pd.DataFrame:
    """One row per customer with any accepted event before ``as_of``, money in one reporting
    currency by the data home's kept price levels (``feature_store.currency.kept_levels``; none
    with one currency), or by ``levels`` (None: each customer's own currency).
    ``feature_store.currency.levels_of`` gives the levels used."""
    local = build_local_features(layout, as_of)
    return converted(local, kept_levels(layout, local) if levels == ESTIMATE else levels)


def converted(local: pd.DataFrame, levels: CurrencyLevels | None) -> pd.DataFrame:
    """A ``build_local_features`` table as ``build_features`` returns it: money converted by
    ``levels`` (None: left as computed), which the table notes (``levels_of``)."""
    currencies = local[CURRENCY_COLUMN].dropna().unique().tolist()
    return with_levels(feature_table(local, levels), levels, currencies)


def build_features_at(
    layout: StoreLayout,
    customers_as_of: Mapping[datetime, Sequence[str]],
    levels: CurrencyLevels | None,
) -> pd.DataFrame:
    """Each listed customer's vector as of its own date (``customers_as_of``: date -> customer
    ids), money converted by ``levels`` (``build_local_features_at``)."""
    return converted(build_local_features_at(layout, customers_as_of), levels)


def build_local_features_at(
    layout: StoreLayout, customers_as_of: Mapping[datetime, Sequence[str]]
) -> pd.DataFrame:
    """Each listed customer's vector as of its own date, money in its own currency: the same
    feature definitions as ``build_features``, computed on the listed customers' events only.
    The store is read once: each customer's events before its date, tagged with that date and
    ordered by it, so each date's query reads its own customers' rows and work grows with their
    events, not with dates times events."""
    wanted = pd.DataFrame(
        [(naive_utc(as_of), str(c)) for as_of, ids in customers_as_of.items() for c in ids],
        columns=["as_of", "customer_id"],
    )
    # No customer: one read of no events still gives the table's columns and types.
    moments = sorted(set(wanted["as_of"])) or [datetime(1970, 1, 1)]
    store = OfflineStore(layout)
    con = connect()
    try:
        store.register_views(con)
        con.register("wanted_frame", wanted)
        con.execute(
            "CREATE TEMP TABLE wanted AS SELECT CAST(as_of AS TIMESTAMP) AS as_of, "
            "CAST(customer_id AS VARCHAR) AS customer_id FROM wanted_frame"
        )
        for view in EVENT_VIEWS.values():
            con.execute(
                f"CREATE TEMP TABLE {view}_wanted AS SELECT e.*, w.as_of AS wanted_as_of "
                f"FROM {view} AS e JOIN wanted AS w ON e.customer_id = w.customer_id "
                "AND e.occurred_at < w.as_of ORDER BY w.as_of"
            )
        frames = []
        for moment in moments:
            at = f"TIMESTAMP '{pd.Timestamp(moment).isoformat(sep=' ')}'"  # a view takes no ?
            for view in EVENT_VIEWS.values():
                con.execute(
                    f"CREATE OR REPLACE TEMP VIEW {view} AS SELECT * EXCLUDE (wanted_as_of) "
                    f"FROM {view}_wanted WHERE wanted_as_of = {at}"
                )
            frames.append(local_features(con, pd.Timestamp(moment).to_pydatetime()))
    finally:
        con.close()
    # a date whose customers had no event before it adds no row (nor an object column)
    return pd.concat([f for f in frames if len(f)] or frames[:1], ignore_index=True)


def cancellations(layout: StoreLayout, as_of: datetime) -> dict[str, datetime]:
    """The customers cancelled as of ``as_of`` and when (``features.cancellation_times``)."""
    con = connect()
    try:
        OfflineStore(layout).register_views(con)
        return cancellation_times(con, naive_utc(as_of))
    finally:
        con.close()


def build_local_features(layout: StoreLayout, as_of: datetime) -> pd.DataFrame:
    """The vectors as of ``as_of`` with money in each customer's own currency, and that currency
    (``feature_store.features.local_features``): what ``build_features`` converts."""
    store = OfflineStore(layout)
    if not any(store.parts(stream) for stream in STREAMS):
        raise empty_store_error(layout)
    con = connect()
    try:
        store.register_views(con)
        return local_features(con, as_of)
    finally:
        con.close()


# The column of a feature table saying the instant its vectors were computed as of (RFC 3339 UTC;
# written by ``segments features``, in its output and the snapshot); carried into every
# assignment, as the API does.
AS_OF_COLUMN = "features_as_of"
# a snapshot folder's as-of, safe in a path on every system (no colons): as_of=2026-07-01T000000
SNAPSHOT_STAMP = "%Y-%m-%dT%H%M%S"


def stamped(features: pd.DataFrame, as_of: datetime) -> pd.DataFrame:
    """``features`` with ``AS_OF_COLUMN`` saying they were computed as of ``as_of``."""
    return features.assign(**{AS_OF_COLUMN: as_of_stamp(as_of)})


def snapshot_path(layout: StoreLayout, as_of: datetime) -> Path:
    return layout.snapshots_dir / f"as_of={as_of.strftime(SNAPSHOT_STAMP)}" / "features.parquet"


def materialize(
    layout: StoreLayout, features: pd.DataFrame, as_of: datetime, now: datetime | None = None
) -> FeatureRun:
    """Keep the table as the snapshot of ``as_of`` and push each vector to the online store.

    Vectors of an as-of still to come (today's date: the end of today) go to the online store
    as of ``now`` (default: the clock), the last instant whose events they can hold: stamped
    with midnight tonight, they outranked every refresh as of now that the service made for a
    customer's new events until then, under the store's later-as-of-wins rule, and today's
    events were lost from the vectors served (an ML engineer's review)."""
    path = snapshot_path(layout, as_of)
    path.parent.mkdir(parents=True, exist_ok=True)
    # stamped, as ``segments features --out`` writes its table: `segments assign --in` a
    # snapshot carries the as-of into every assignment (it was null there)
    stamped(features, as_of).to_parquet(path, index=False)
    served_as_of = min(naive_utc(as_of), naive_utc(now) if now is not None else now_utc())
    written = SqliteOnlineStore(layout.online_store_path).write(features, served_as_of)
    return FeatureRun(as_of, len(features), path, written)
