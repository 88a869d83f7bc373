"""Reading the online store from the request path, through the feature store's own reader."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pandas as pd

from feature_store.online_store import FeatureVector, SqliteOnlineReader


class OnlineVectors:
    """``get(customer_id)`` -> the customer's latest vector, or ``None`` when unknown;
    ``get_with_as_of`` adds the as-of it was computed at; ``sample`` feeds drift."""

    def __init__(self, path: Path) -> None:
        self._reader = SqliteOnlineReader(path)

    def get(self, customer_id: str) -> FeatureVector | None:
        entry = self._reader.read(customer_id)
        return None if entry is None else entry[0]

    def get_with_as_of(self, customer_id: str) -> tuple[FeatureVector, datetime] | None:
        """The vector and the instant it was computed as of (for ``features_as_of``)."""
        return self._reader.read(customer_id)

    def generation(self) -> int | None:
        """Changes whenever vectors are written, by any process (``SqliteOnlineReader``)."""
        return self._reader.generation()

    def all(self) -> list[tuple[str, FeatureVector]]:
        """Every stored customer and vector, ordered by ``customer_id``."""
        return self._reader.read_all()

    def sample(self, limit: int) -> pd.DataFrame | None:
        """At most ``limit`` stored vectors (random), for drift; None before any is stored."""
        return self._reader.frame(limit)

    def close(self) -> None:
        self._reader.close()
