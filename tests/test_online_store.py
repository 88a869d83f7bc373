"""One contract, every online store backend (as Feast tests its stores)."""

from __future__ import annotations

from datetime import datetime

import pandas as pd
import pytest

from feature_store.online_store import InMemoryOnlineStore, SqliteOnlineStore, read_many


@pytest.fixture(params=["sqlite", "memory"])
def store(request, tmp_path):
    if request.param == "sqlite":
        return SqliteOnlineStore(tmp_path / "online.sqlite")
    return InMemoryOnlineStore()


def table(mrr: float) -> pd.DataFrame:
    return pd.DataFrame({"customer_id": ["a", "b"], "mrr": [mrr, 2 * mrr], "seats": [1, 3]})


def test_reads_back_what_was_written(store):
    assert store.write(table(10.0), datetime(2026, 1, 1)) == 2
    vector, as_of = store.read("b")
    assert vector == {"mrr": 20.0, "seats": 3.0}
    assert as_of == datetime(2026, 1, 1)
    assert store.read("unknown") is None
    assert store.count() == 2


def test_a_later_as_of_replaces_an_earlier_one_never_the_reverse(store):
    store.write(table(10.0), datetime(2026, 2, 1))
    assert store.write(table(99.0), datetime(2026, 1, 1)) == 0
    assert store.read("a")[0]["mrr"] == 10.0
    store.write(table(30.0), datetime(2026, 3, 1))
    assert store.read("a") == ({"mrr": 30.0, "seats": 1.0}, datetime(2026, 3, 1))


def test_read_many_returns_only_known_customers(store):
    store.write(table(1.0), datetime(2026, 1, 1))
    assert set(read_many(store, ["a", "zzz"])) == {"a"}


def test_the_read_only_reader_sees_what_the_store_wrote_and_later_updates(tmp_path):
    from feature_store.online_store import SqliteOnlineReader

    path = tmp_path / "online.sqlite"
    reader = SqliteOnlineReader(path)
    assert reader.read("a") is None  # no store yet: unknown, not an error
    store = SqliteOnlineStore(path)
    store.write(table(10.0), datetime(2026, 1, 1))
    assert reader.read("a") == ({"mrr": 10.0, "seats": 1.0}, datetime(2026, 1, 1))
    store.write(table(30.0), datetime(2026, 2, 1))  # written while the reader stays open
    assert reader.read("b")[0]["mrr"] == 60.0
    assert reader.read("zzz") is None
    reader.close()


def test_the_reader_sees_the_generation_move_on_each_write_that_stores_a_vector(tmp_path):
    """What the service derives from all vectors (the member listing) is kept while the
    generation stands: it must move on with every write that changes a vector, from any process,
    and only then."""
    from feature_store.online_store import SqliteOnlineReader

    path = tmp_path / "online.sqlite"
    store, reader = SqliteOnlineStore(path), SqliteOnlineReader(path)
    assert reader.generation() is None  # nothing materialised yet
    store.write(table(10.0), datetime(2026, 2, 1))
    first = reader.generation()
    assert first is not None
    assert store.write(table(99.0), datetime(2026, 1, 1)) == 0  # older: nothing stored
    assert reader.generation() == first
    store.write(table(30.0), datetime(2026, 3, 1))
    assert reader.generation() != first
    reader.close()


def test_a_store_the_reader_cannot_read_is_an_error_not_an_unknown_customer(tmp_path):
    """Every customer was a 404 "unknown customer" on a data home whose store could not be
    read (an operator's review): only a store with no table yet holds nobody."""
    import sqlite3

    from feature_store.online_store import SqliteOnlineReader

    path = tmp_path / "online.sqlite"
    SqliteOnlineStore(path).write(table(10.0), datetime(2026, 1, 1))
    reader = SqliteOnlineReader(path, timeout=0.05)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("PRAGMA locking_mode = EXCLUSIVE")  # as a shell holding the store would
    holder.execute("BEGIN EXCLUSIVE")
    try:
        for read in (lambda: reader.read("a"), reader.read_all, reader.generation):
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                read()
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert reader.read("a") == ({"mrr": 10.0, "seats": 1.0}, datetime(2026, 1, 1))
    empty = tmp_path / "empty.sqlite"
    sqlite3.connect(empty).close()  # a file with no table yet: nobody, not an error
    assert SqliteOnlineReader(empty).read("a") is None
    reader.close()
