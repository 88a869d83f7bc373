"""What judging columns a month apart adds to `segments train`: the second feature table and the
reliabilities, beside the feature table training builds anyway.

    PYTHONPATH=$PWD:$PWD/bench python bench/bench_reliability.py [--customers 100000] [--months 12]
        [--repeats 3]

On the demo company (generated once under ``bench/out``), ingested into a throwaway data home:
``build_features`` as of the date, ``pipelines.train.earlier_features`` (the same customers 30
days before) and ``reliability_of`` (Spearman per segmented column), each timed ``--repeats``
times in one process; prints the best of each and the extra work as a share of the table
training builds. ``docs/segmentation.md``, "Lasting traits, not passing states".
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from _common import demo_data

from feature_store.currency import levels_of
from feature_store.ingest import ingest_files
from feature_store.layout import StoreLayout
from feature_store.registry import SEGMENTED_FEATURE_NAMES
from feature_store.timeutil import parse_as_of
from pipelines.feature_pipeline import build_features
from pipelines.train import active_customers, earlier_features, reliability_of

AS_OF = "2026-06-30"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--months", type=int, default=12)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    data = demo_data(args.customers, args.months)
    with tempfile.TemporaryDirectory() as tmp:
        layout = StoreLayout(Path(tmp) / "home")
        ingest_files(layout, {s: data / f"{s}_events.parquet" for s in ("billing", "usage")})
        as_of = parse_as_of(AS_OF)
        best = dict.fromkeys(("features", "a month before", "reliability"), float("inf"))
        for _ in range(args.repeats):
            started = time.perf_counter()
            features = build_features(layout, as_of)
            best["features"] = min(best["features"], time.perf_counter() - started)
            started = time.perf_counter()
            earlier = earlier_features(layout, as_of, levels_of(features))
            best["a month before"] = min(best["a month before"], time.perf_counter() - started)
            started = time.perf_counter()
            names = [n for n in SEGMENTED_FEATURE_NAMES if n in features.columns]
            reliability = reliability_of(active_customers(features), earlier, names)
            best["reliability"] = min(best["reliability"], time.perf_counter() - started)
    extra = best["a month before"] + best["reliability"]
    print(f"{args.customers:,} customers, best of {args.repeats}:")
    for step, seconds in best.items():
        print(f"  {step:<15} {seconds:6.2f} s")
    print(f"  extra work: {extra:.2f} s, {extra / best['features']:.2f}x the feature table")
    low = sorted((reliability or {}).items(), key=lambda item: item[1])[:4]
    print("  least reliable: " + ", ".join(f"{name} {value:.2f}" for name, value in low))


if __name__ == "__main__":
    main()
