"""The online store: each customer's latest feature vector, keyed by ``customer_id``.

Two backends share one contract (``OnlineStore``) and one test suite: SQLite, the embedded default
the scoring service reads, and an in-process dictionary for embedding the library.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Protocol

import pandas as pd

FeatureVector = dict[str, float]
_READ_VECTOR = "SELECT vector, as_of FROM feature_vectors WHERE customer_id = ?"
_READ_ALL = "SELECT customer_id, vector FROM feature_vectors ORDER BY customer_id"
# A counter every write that stores a vector moves on, so a reader holding what it derived from
# the vectors (the service's member table) can tell they changed, whichever process wrote them.
_READ_GENERATION = "SELECT generation FROM store_generation WHERE id = 0"
_BUMP_GENERATION = (
    "INSERT INTO store_generation VALUES (0, 1) "
    "ON CONFLICT (id) DO UPDATE SET generation = generation + 1"
)


class OnlineStore(Protocol):
    """Latest vector per customer; a write never replaces a vector computed at a later as-of."""

    def write(self, features: pd.DataFrame, as_of: datetime) -> int:
        """Upsert one row per ``customer_id``; return how many vectors were stored or replaced."""
        ...

    def read(self, customer_id: str) -> tuple[FeatureVector, datetime] | None:
        """The customer's vector and its as-of, or ``None`` when the customer is unknown."""
        ...

    def count(self) -> int: ...


def _vectors(features: pd.DataFrame) -> Iterable[tuple[str, str]]:
    names = [column for column in features.columns if column != "customer_id"]
    values = features[names].to_numpy(dtype=float)
    for customer_id, row in zip(features["customer_id"], values, strict=True):
        yield str(customer_id), json.dumps(dict(zip(names, row.tolist(), strict=True)))


class SqliteOnlineStore:
    """SQLite file with one row per customer: the vector as JSON plus its as-of instant."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        con = sqlite3.connect(self.path, timeout=30)
        con.execute("PRAGMA journal_mode = WAL")  # readers keep serving while a batch is written
        con.execute(
            "CREATE TABLE IF NOT EXISTS feature_vectors ("
            "customer_id TEXT PRIMARY KEY, as_of TEXT NOT NULL, vector TEXT NOT NULL)"
        )
        con.execute(
            "CREATE TABLE IF NOT EXISTS store_generation ("
            "id INTEGER PRIMARY KEY CHECK (id = 0), generation INTEGER NOT NULL)"
        )
        return con

    def write(self, features: pd.DataFrame, as_of: datetime) -> int:
        stamp = as_of.isoformat()
        rows = [(cid, stamp, vector) for cid, vector in _vectors(features)]
        with self._connect() as con:
            before = con.total_changes
            con.executemany(
                "INSERT INTO feature_vectors VALUES (?, ?, ?) ON CONFLICT (customer_id) DO UPDATE "
                "SET as_of = excluded.as_of, vector = excluded.vector "
                "WHERE excluded.as_of >= feature_vectors.as_of",
                rows,
            )
            written = con.total_changes - before
            if written:  # in the same transaction: a reader sees both or neither
                con.execute(_BUMP_GENERATION)
        con.close()
        return written

    def read(self, customer_id: str) -> tuple[FeatureVector, datetime] | None:
        with self._connect() as con:
            row = con.execute(_READ_VECTOR, (customer_id,)).fetchone()
        con.close()
        return _decode(row)

    def frame(self, limit: int | None = None) -> pd.DataFrame:
        """The stored vectors as a table (``customer_id``, ``as_of``, one column per feature)."""
        with self._connect() as con:
            found = _frame(con, limit)
        con.close()
        return found

    def count(self) -> int:
        with self._connect() as con:
            (count,) = con.execute("SELECT count(*) FROM feature_vectors").fetchone()
        con.close()
        return int(count)

    def first_customer_id(self) -> str | None:
        """The smallest stored id of a customer whose subscription is not cancelled (None:
        nothing stored), for an example request: a cancelled one is explained apart."""
        with self._connect() as con:
            (first,) = con.execute(
                "SELECT min(customer_id) FROM feature_vectors "
                "WHERE coalesce(json_extract(vector, '$.is_canceled'), 0) = 0"
            ).fetchone()
        con.close()
        return first


def _frame(con: sqlite3.Connection, limit: int | None) -> pd.DataFrame:
    """Stored vectors (at most ``limit``, a random pick when there are more) as a table with
    ``customer_id`` and ``as_of`` columns."""
    query = "SELECT customer_id, as_of, vector FROM feature_vectors"
    if limit is not None:
        query += f" ORDER BY random() LIMIT {int(limit)}"
    rows = con.execute(query).fetchall()
    vectors = pd.DataFrame([json.loads(vector) for _, _, vector in rows])
    vectors.insert(0, "as_of", [stamp for _, stamp, _ in rows])
    vectors.insert(0, "customer_id", [customer for customer, _, _ in rows])
    return vectors


def _decode(row: tuple[str, str] | None) -> tuple[FeatureVector, datetime] | None:
    """A ``_READ_VECTOR`` row as (vector, as-of instant)."""
    return None if row is None else (json.loads(row[0]), datetime.fromisoformat(row[1]))


class SqliteOnlineReader:
    """Read-only access to a ``SqliteOnlineStore`` for a request path: one connection per thread.

    The store opens a connection per call, which suits batch jobs; a service reading thousands of
    vectors a second keeps its connection open instead, and never creates or writes anything.
    """

    def __init__(self, path: Path, timeout: float = 5.0) -> None:
        self.path = path
        self.timeout = timeout  # seconds a read waits for a lock another process holds
        self._local = threading.local()

    def _connection(self) -> sqlite3.Connection | None:
        con = getattr(self._local, "con", None)
        if con is None:
            if not self.path.is_file():
                return None  # nothing materialised yet; looked for again on the next call
            con = sqlite3.connect(
                f"{self.path.as_uri()}?mode=ro",
                uri=True,
                check_same_thread=False,
                timeout=self.timeout,
            )
            self._local.con = con
        return con

    def read(self, customer_id: str) -> tuple[FeatureVector, datetime] | None:
        con = self._connection()
        if con is None:
            return None
        try:
            row = con.execute(_READ_VECTOR, (customer_id,)).fetchone()
        except sqlite3.OperationalError as error:
            # The file exists but the table not yet (a store being created): unknown for now.
            self._local.con = None
            con.close()
            _unless_missing_table(error)
            return None
        return _decode(row)

    def frame(self, limit: int | None = None) -> pd.DataFrame | None:
        """Like ``SqliteOnlineStore.frame``; None while nothing is materialised."""
        con = self._connection()
        if con is None:
            return None
        try:
            return _frame(con, limit)
        except sqlite3.OperationalError as error:
            _unless_missing_table(error)
            return None

    def generation(self) -> int | None:
        """A number that changes whenever a write stores a vector (``SqliteOnlineStore.write``);
        None before the first such write (or in a store written before the counter existed)."""
        con = self._connection()
        if con is None:
            return None
        try:
            row = con.execute(_READ_GENERATION).fetchone()
        except sqlite3.OperationalError as error:  # no counter yet: the first write makes it
            _unless_missing_table(error)
            return None
        return None if row is None else int(row[0])

    def read_all(self) -> list[tuple[str, FeatureVector]]:
        """Every customer's vector, ordered by ``customer_id`` (empty before the first write)."""
        con = self._connection()
        if con is None:
            return []
        try:
            rows = con.execute(_READ_ALL).fetchall()
        except sqlite3.OperationalError as error:
            self._local.con = None
            con.close()
            _unless_missing_table(error)
            return []
        return [(customer_id, json.loads(vector)) for customer_id, vector in rows]

    def close(self) -> None:
        con = getattr(self._local, "con", None)
        if con is not None:
            con.close()
            self._local.con = None


def _unless_missing_table(error: sqlite3.OperationalError) -> None:
    """Raise ``error`` unless it says a table is not there yet (a store being created, which
    holds nobody for now). A store that cannot be read (locked by another process, in a folder
    that cannot be written while its write-ahead log is open) is not a store without the
    customer: every customer was a 404 "unknown customer" on a read-only data home (an
    operator's review)."""
    if "no such table" not in str(error):
        raise error


class InMemoryOnlineStore:
    """The same contract in a dictionary, for embedding the library in a process."""

    def __init__(self) -> None:
        self._vectors: dict[str, tuple[FeatureVector, datetime]] = {}

    def write(self, features: pd.DataFrame, as_of: datetime) -> int:
        written = 0
        for customer_id, vector in _vectors(features):
            current = self._vectors.get(customer_id)
            if current is None or as_of >= current[1]:
                self._vectors[customer_id] = (json.loads(vector), as_of)
                written += 1
        return written

    def read(self, customer_id: str) -> tuple[FeatureVector, datetime] | None:
        return self._vectors.get(customer_id)

    def count(self) -> int:
        return len(self._vectors)


def read_many(store: OnlineStore, customer_ids: Sequence[str]) -> dict[str, FeatureVector]:
    """Vectors of the known customers among ``customer_ids``."""
    found = {}
    for customer_id in customer_ids:
        entry = store.read(customer_id)
        if entry is not None:
            found[customer_id] = entry[0]
    return found
