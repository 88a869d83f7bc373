"""The idempotency store under a day of keys: the cost of claiming a key and storing its answer
(``IdempotencyStore.begin`` then ``finish``, what every `POST /v1/events` with an
``Idempotency-Key`` does under SQLite's write lock) as the entries of the last 24 hours grow.

    python bench/bench_idempotency.py [--entries 1000,100000,300000] [--requests 200]

Side by side in one run, on copies of one SQLite file filled with ``--entries`` answered keys
spread over the last day: the shipped store, and the store as it was before 2026-12-07 (tenth
session): one ``DELETE ... OR ...`` on no index before each claim, and a sync per commit.
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import tempfile
import time
from pathlib import Path

from service.idempotency import IdempotencyStore, StoredAnswer


class StoreBefore(IdempotencyStore):
    """The store before: expired entries found by reading every entry, and a sync per commit."""

    def _connect(self) -> sqlite3.Connection:
        con = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        con.execute("PRAGMA journal_mode = WAL")
        return con

    def _forget_expired(self, con: sqlite3.Connection, now: float) -> None:
        con.execute(
            "DELETE FROM idempotency WHERE created_at < ? "
            "OR (state = 'in_progress' AND updated_at < ?)",
            (now - self.ttl, now - self.stale),
        )


def filled(path: Path, entries: int, indexed: bool) -> None:
    """``entries`` answered keys of the last 23 hours (none expires during the run)."""
    IdempotencyStore(path, ttl_seconds=86_400, stale_seconds=60)._connect().close()
    con = sqlite3.connect(path)
    if not indexed:
        con.execute("DROP INDEX idempotency_created")
        con.execute("DROP INDEX idempotency_stale")
    now = time.time()
    rows = (
        ("crm", f"key-{n}", "f" * 64, b"x" * 300, now - 82_800 * n / entries)
        for n in range(entries)
    )
    con.executemany(
        "INSERT INTO idempotency VALUES (?, ?, ?, 'done', 200, 'application/json', ?, ?, ?)",
        ((client, key, fp, body, at, at) for client, key, fp, body, at in rows),
    )
    con.commit()
    con.close()


def ms_per_request(store: IdempotencyStore, requests: int, prefix: str) -> float:
    started = time.perf_counter()
    for n in range(requests):
        claim = store.begin("crm", f"{prefix}-{n}", "f" * 64)
        assert not isinstance(claim, StoredAnswer)
        store.finish(claim, StoredAnswer(200, "application/json", b'{"accepted": 1}'))
    return (time.perf_counter() - started) / requests * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", default="1000,100000,300000")
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-idempotency-"))
    try:
        for entries in (int(n) for n in args.entries.split(",")):
            timings: dict[str, list[float]] = {"shipped": [], "before": []}
            for round_ in range(3):  # alternating, best of three: the machine is shared
                for name, kind, indexed in (
                    ("shipped", IdempotencyStore, True),
                    ("before", StoreBefore, False),
                ):
                    path = work / f"{name}.sqlite"
                    for leftover in work.glob(f"{name}.sqlite*"):
                        leftover.unlink()
                    filled(path, entries, indexed)
                    store = kind(path, ttl_seconds=86_400, stale_seconds=60)
                    timings[name].append(ms_per_request(store, args.requests, f"r{round_}"))
            shipped, before = min(timings["shipped"]), min(timings["before"])
            print(
                f"{entries:>9,} entries: {shipped:6.2f} ms per keyed request shipped, "
                f"{before:6.2f} ms before ({before / shipped:.1f}x)"
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
