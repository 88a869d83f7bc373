"""Feature computation: DuckDB over the offline store vs a straightforward pandas implementation.

    python bench/bench_features.py [--customers 100000] [--months 12]

Each approach runs in its own process (peak memory is per approach), on the same Parquet events,
computing the spec features as of the same instant; the outputs are compared before timing counts.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from _common import demo_data, peak_rss_mb, run_child

AS_OF = datetime(2026, 7, 1)


def run_duckdb(data: Path, home: Path) -> dict:
    from feature_store.layout import StoreLayout
    from pipelines.feature_pipeline import build_features

    started = time.perf_counter()
    table = build_features(StoreLayout(home), AS_OF)
    seconds = time.perf_counter() - started
    table.to_parquet(home / "duckdb-features.parquet")
    return {"seconds": seconds, "peak_rss_mb": peak_rss_mb(), "customers": len(table)}


def run_pandas(data: Path, home: Path) -> dict:
    import pandas as pd
    from feature_oracle import pandas_features

    started = time.perf_counter()
    billing = pd.read_parquet(data / "billing_events.parquet")
    usage = pd.read_parquet(data / "usage_events.parquet")
    table = pandas_features(billing, usage, AS_OF)
    seconds = time.perf_counter() - started
    table.to_parquet(home / "pandas-features.parquet")
    return {"seconds": seconds, "peak_rss_mb": peak_rss_mb(), "customers": len(table)}


def compare(home: Path) -> float:
    """Largest absolute difference over the spec features between the two outputs."""
    import numpy as np
    import pandas as pd

    from feature_store.registry import SPEC_FEATURE_NAMES

    ours = pd.read_parquet(home / "duckdb-features.parquet").set_index("customer_id")
    theirs = pd.read_parquet(home / "pandas-features.parquet").set_index("customer_id")
    assert list(ours.index) == list(theirs.index), "customer sets differ"
    names = list(SPEC_FEATURE_NAMES)
    return float(np.max(np.abs(ours[names].to_numpy(float) - theirs[names].to_numpy(float))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--months", type=int, default=12)
    parser.add_argument("--one", choices=["duckdb", "pandas"], help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--home", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        runner = run_duckdb if args.one == "duckdb" else run_pandas
        print(json.dumps(runner(args.data, args.home)))
        return
    data = demo_data(args.customers, args.months)
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        from feature_store.ingest import ingest_files
        from feature_store.layout import StoreLayout

        reports = ingest_files(
            StoreLayout(home),
            {"billing": data / "billing_events.parquet", "usage": data / "usage_events.parquet"},
        )
        usage_events = reports["usage"].accepted
        child = [f"--data={data}", f"--home={home}"]
        ours = run_child(Path(__file__), ["--one=duckdb", *child])
        theirs = run_child(Path(__file__), ["--one=pandas", *child])
        difference = compare(home)
    print(
        f"customers: {ours['customers']:,}  usage events: {usage_events:,}  as of {AS_OF:%Y-%m-%d}"
    )
    print(f"{'approach':<10}{'wall s':>10}{'peak MB':>10}")
    for name, result in (("duckdb", ours), ("pandas", theirs)):
        print(f"{name:<10}{result['seconds']:>10.2f}{result['peak_rss_mb']:>10.0f}")
    print(f"speed-up (pandas / duckdb): {theirs['seconds'] / ours['seconds']:.1f}x")
    print(f"max |difference| over spec features: {difference:.2e}")
    sys.exit(0 if difference < 1e-6 else 1)


if __name__ == "__main__":
    main()
