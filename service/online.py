"""Reading the online store from the request path: one read-only SQLite connection per thread.

``feature_store.online_store.SqliteOnlineStore`` opens a connection per call, which suits batch
jobs; a request path reading thousands of vectors a second keeps its connection open instead.
The table and its JSON encoding are the store's; this reader only queries them.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path

_QUERY = "SELECT vector FROM feature_vectors WHERE customer_id = ?"


class OnlineVectors:
    """``get(customer_id)`` -> the customer's latest vector, or ``None`` when unknown."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()

    def _connection(self) -> sqlite3.Connection | None:
        con = getattr(self._local, "con", None)
        if con is None:
            if not self.path.is_file():
                return None  # nothing materialised yet; looked for again on the next call
            con = sqlite3.connect(
                f"{self.path.as_uri()}?mode=ro", uri=True, check_same_thread=False
            )
            self._local.con = con
        return con

    def get(self, customer_id: str) -> dict[str, float] | None:
        con = self._connection()
        if con is None:
            return None
        try:
            row = con.execute(_QUERY, (customer_id,)).fetchone()
        except sqlite3.OperationalError:
            # The file exists but the table not yet (a store being created): unknown for now.
            self._local.con = None
            con.close()
            return None
        return None if row is None else json.loads(row[0])

    def get_many(self, customer_ids: list[str]) -> dict[str, dict[str, float]]:
        return {cid: vector for cid in dict.fromkeys(customer_ids) if (vector := self.get(cid))}

    def close(self) -> None:
        con = getattr(self._local, "con", None)
        if con is not None:
            con.close()
            self._local.con = None
