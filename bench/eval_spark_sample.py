"""How large a stratified training sample keeps the segments of the full table.

    python bench/eval_spark_sample.py [--sizes 1000,2000,5000,10000,20000] [--seeds 0,1]

On the 100,000-customer demo company (``bench_spark.py`` data): a reference segmenter is fitted on
every customer; then, for each sample size and seed, a segmenter is fitted on a sample drawn by
``pipelines.spark_jobs.stratified_sample`` (Spark local mode) and every customer is assigned by it.
Printed per size: the number of segments, the agreement of the assignments with the reference's
(adjusted Rand index) and with the demo's true personas, and the fit time.
"""

from __future__ import annotations

import argparse
import time
from datetime import datetime

import numpy as np
from _common import demo_data
from sklearn.metrics import adjusted_rand_score

AS_OF = datetime(2026, 7, 1)


def _features():
    import pandas as pd

    from feature_store.features import compute_customer_features

    data = demo_data(100_000, 12)
    events = {s: pd.read_parquet(data / f"{s}_events.parquet") for s in ("billing", "usage")}
    features = compute_customer_features(events, AS_OF)
    truth = pd.read_csv(data / "truth.csv")
    return features.merge(truth, on="customer_id")


def _fit(X, seed: int):
    from models.segmenter import CustomerSegmenter

    started = time.perf_counter()
    segmenter = CustomerSegmenter(random_state=seed).fit(X)
    return segmenter, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,2000,5000,10000,20000")
    parser.add_argument("--seeds", default="0,1")
    args = parser.parse_args()
    from feature_store.registry import FEATURE_NAMES, SEGMENTED_FEATURE_NAMES
    from feature_store.spark_engine import spark_session
    from pipelines.spark_jobs import stratified_sample

    table = _features()
    X = table[list(SEGMENTED_FEATURE_NAMES)]
    reference, seconds = _fit(X, 0)
    ref_labels = reference.predict(X)
    truth = table["persona"].to_numpy()
    print(f"customers: {len(table):,}")
    print(f"{'sample':>8}{'segments':>10}{'ARI vs full':>13}{'ARI vs truth':>14}{'fit s':>8}")
    ari_truth = adjusted_rand_score(truth, ref_labels)
    print(f"{'all':>8}{reference.n_segments_:>10}{1.0:>13.3f}{ari_truth:>14.3f}{seconds:>8.1f}")
    spark = spark_session("local[2]", config={"spark.ui.showConsoleProgress": "false"})
    spark.sparkContext.setLogLevel("ERROR")
    frame = spark.createDataFrame(table[["customer_id", *FEATURE_NAMES]])
    for size in map(int, args.sizes.split(",")):
        rows = []
        for seed in map(int, args.seeds.split(",")):
            sample = stratified_sample(frame, size, seed=seed)
            segmenter, seconds = _fit(sample[list(SEGMENTED_FEATURE_NAMES)], seed)
            labels = segmenter.predict(X)
            rows.append(
                (
                    len(sample),
                    segmenter.n_segments_,
                    adjusted_rand_score(ref_labels, labels),
                    adjusted_rand_score(truth, labels),
                    seconds,
                )
            )
        n, _, full, true, secs = (np.mean([r[i] for r in rows]) for i in range(5))
        k_range = f"{min(r[1] for r in rows)}-{max(r[1] for r in rows)}"
        print(f"{n:>8,.0f}{k_range:>10}{full:>13.3f}{true:>14.3f}{secs:>8.1f}")
    spark.stop()


if __name__ == "__main__":
    main()
