"""Training speed: CustomerSegmenter (model selection included) vs HDBSCAN defaults, same matrix.

    python bench/bench_training.py [--customers 100000] [--months 12]

The matrix is the full feature table (27 features) of the demo company as of its last day. Each
approach runs in its own process on the same Parquet copy of the matrix.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import warnings
from pathlib import Path

from _common import demo_data, peak_rss_mb, run_child

AS_OF = "2026-06-30"


def run_one(approach: str, matrix: Path) -> dict:
    import numpy as np
    import pandas as pd

    warnings.filterwarnings("ignore")
    X = pd.read_parquet(matrix)
    started = time.perf_counter()
    if approach == "ours":
        from models.segmenter import CustomerSegmenter

        model = CustomerSegmenter(random_state=0).fit(X)
        segments, extra = model.n_segments_, model.chosen_candidate_.name
    else:
        from models.preprocessing import FeaturePreprocessor

        Z = FeaturePreprocessor().fit_transform(X)
        if approach == "sklearn_hdbscan":
            from sklearn.cluster import HDBSCAN

            labels = HDBSCAN().fit_predict(Z)
        else:
            import hdbscan

            labels = hdbscan.HDBSCAN().fit_predict(Z)
        segments, extra = int(labels.max()) + 1, f"noise {np.mean(labels < 0):.1%}"
    return {
        "seconds": time.perf_counter() - started,
        "segments": segments,
        "detail": extra,
        "peak_rss_mb": peak_rss_mb(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--months", type=int, default=12)
    parser.add_argument("--timeout", type=int, default=900, help="seconds allowed per baseline")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--matrix", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one, args.matrix)))
        return
    from feature_store.ingest import ingest_files
    from feature_store.layout import StoreLayout
    from feature_store.registry import FEATURE_NAMES
    from feature_store.timeutil import parse_as_of
    from pipelines.feature_pipeline import build_features

    data = demo_data(args.customers, args.months)
    with tempfile.TemporaryDirectory() as tmp:
        layout = StoreLayout(Path(tmp) / "home")
        ingest_files(
            layout,
            {"billing": data / "billing_events.parquet", "usage": data / "usage_events.parquet"},
        )
        matrix = Path(tmp) / "matrix.parquet"
        build_features(layout, parse_as_of(AS_OF))[list(FEATURE_NAMES)].to_parquet(matrix)
        results = {}
        for approach in ("ours", "sklearn_hdbscan", "hdbscan_package"):
            try:
                results[approach] = run_child(
                    Path(__file__),
                    [f"--one={approach}", f"--matrix={matrix}"],
                    timeout=args.timeout,
                )
            except TimeoutError:
                results[approach] = None
    print(f"matrix: {args.customers:,} customers x {len(FEATURE_NAMES)} features")
    print(f"{'approach':<18}{'wall s':>10}{'segments':>10}{'peak MB':>9}  detail")
    for name, r in results.items():
        if r is None:
            print(
                f"{name:<18}{'> ' + str(args.timeout):>10}{'-':>10}{'-':>9}  stopped at the time limit"
            )
        else:
            print(
                f"{name:<18}{r['seconds']:>10.1f}{r['segments']:>10}{r['peak_rss_mb']:>9.0f}  {r['detail']}"
            )


if __name__ == "__main__":
    main()
