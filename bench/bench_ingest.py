"""Ingestion with full validation and dedupe: this project vs a straightforward pandas pipeline.

    python bench/bench_ingest.py [--customers 100000] [--months 12]

Both read the same Parquet files, validate every row against the events contract, drop repeated
event ids and write the accepted rows as Parquet. Ours also quarantines rejected rows, checks
against everything stored before, and keeps the ingestion log. A second run of ours re-ingests the
same files (all duplicates) to show cross-run dedupe at full speed.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from _common import demo_data, peak_rss_mb, run_child

from feature_store.schema import BILLING_TYPES

FILES = ("billing_events.parquet", "usage_events.parquet")


def run_ours(data: Path, home: Path) -> dict:
    from feature_store.ingest import ingest_files
    from feature_store.layout import StoreLayout

    files = {"billing": data / FILES[0], "usage": data / FILES[1]}
    started = time.perf_counter()
    reports = ingest_files(StoreLayout(home), files)
    seconds = time.perf_counter() - started
    received = sum(r.received for r in reports.values())
    accepted = sum(r.accepted for r in reports.values())
    return {
        "seconds": seconds,
        "received": received,
        "accepted": accepted,
        "peak_rss_mb": peak_rss_mb(),
    }


def _pandas_validate_usage(frame):
    import pandas as pd

    when = pd.to_datetime(frame["occurred_at"], errors="coerce", utc=True)
    quantity = pd.to_numeric(frame["quantity"], errors="coerce")
    ok = (
        frame["event_id"].notna()
        & frame["customer_id"].notna()
        & when.notna()
        & frame["event"].notna()
        & (quantity.isna() | (quantity >= 0))
    )
    return frame.assign(occurred_at=when, quantity=quantity.fillna(1.0)), ok


def _pandas_validate_billing(frame):
    import pandas as pd

    when = pd.to_datetime(frame["occurred_at"], errors="coerce", utc=True)
    amount = pd.to_numeric(frame["amount"], errors="coerce")
    mrr = pd.to_numeric(frame["mrr"], errors="coerce")
    money = frame["type"].isin(["invoice_paid", "payment_failed", "refund_issued"])
    priced = frame["type"].isin(["subscription_started", "subscription_changed"])
    ok = (
        frame["event_id"].notna()
        & frame["customer_id"].notna()
        & when.notna()
        & frame["type"].isin(BILLING_TYPES)
        & (~money | (amount > 0))
        & (~priced | (mrr >= 0))
    )
    return frame.assign(occurred_at=when), ok


def run_pandas(data: Path, home: Path) -> dict:
    import pandas as pd

    started = time.perf_counter()
    received = accepted = 0
    for name, validate in zip(
        FILES, (_pandas_validate_billing, _pandas_validate_usage), strict=True
    ):
        frame = pd.read_parquet(data / name)
        typed, ok = validate(frame)
        kept = typed[ok].drop_duplicates("event_id")
        typed[~ok].to_parquet(home / f"rejected-{name}")
        kept.to_parquet(home / f"accepted-{name}", compression="zstd")
        received += len(frame)
        accepted += len(kept)
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "received": received,
        "accepted": accepted,
        "peak_rss_mb": peak_rss_mb(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--months", type=int, default=12)
    parser.add_argument("--one", choices=["ours", "pandas"], help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--home", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps((run_ours if args.one == "ours" else run_pandas)(args.data, args.home)))
        return
    data = demo_data(args.customers, args.months)
    with tempfile.TemporaryDirectory() as tmp:
        child = [f"--data={data}", f"--home={tmp}"]
        first = run_child(Path(__file__), ["--one=ours", *child])
        again = run_child(Path(__file__), ["--one=ours", *child])
        baseline = run_child(Path(__file__), ["--one=pandas", *child])
    print(f"events: {first['received']:,} (billing + usage) from Parquet")
    print(f"{'approach':<26}{'wall s':>8}{'events/s':>12}{'peak MB':>9}{'accepted':>12}")
    for name, result in (
        ("ours, first ingest", first),
        ("ours, same files again", again),
        ("pandas baseline", baseline),
    ):
        rate = result["received"] / result["seconds"]
        print(
            f"{name:<26}{result['seconds']:>8.2f}{rate:>12,.0f}{result['peak_rss_mb']:>9.0f}"
            f"{result['accepted']:>12,}"
        )
    print(f"speed-up (pandas / ours, first ingest): {baseline['seconds'] / first['seconds']:.1f}x")


if __name__ == "__main__":
    main()
