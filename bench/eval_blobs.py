"""Gaussian blobs in few columns: does the selection keep a partition's right answer there?

    python bench/eval_blobs.py [--jobs 2]

The clustering suite is mostly shapes a density method recovers (rings, spirals, stripes), so a
rule that favours HDBSCAN there can look better on it while it loses plain Gaussian groups in 2-4
columns, where density proposals are also made (a review of 2026-12-06 found exactly that:
``docs/segmentation.md``, "Density against partitions"). 36 sets of 3,000 points from
``sklearn.datasets.make_blobs``: 2, 3 and 4 columns, 3, 5 and 8 centres in the box (-10, 10),
standard deviation 1 and 2, seeds 0 and 1. Prints each set's choice, number of segments and ARI
against the blobs, then the mean ARI overall and per number of columns, and how often HDBSCAN's
proposal was chosen.
"""

from __future__ import annotations

import argparse
import itertools
import warnings
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pandas as pd

SETS = list(itertools.product((2, 3, 4), (3, 5, 8), (1.0, 2.0), (0, 1)))


def evaluate(setting: tuple[int, int, float, int]) -> dict[str, object]:
    from sklearn.datasets import make_blobs
    from sklearn.metrics import adjusted_rand_score
    from threadpoolctl import threadpool_limits

    from models.segmenter import CustomerSegmenter

    warnings.filterwarnings("ignore")
    columns, centres, spread, seed = setting
    X, truth = make_blobs(
        3000,
        centers=centres,
        n_features=columns,
        cluster_std=spread,
        random_state=seed,
        center_box=(-10, 10),
    )
    with threadpool_limits(limits=1):
        model = CustomerSegmenter(random_state=0).fit(pd.DataFrame(X))
    return {
        "columns": columns,
        "centres": centres,
        "std": spread,
        "seed": seed,
        "choice": model.chosen_candidate_.name,
        "segments": model.n_segments_,
        "ari": adjusted_rand_score(truth, model.labels_),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    with ProcessPoolExecutor(args.jobs) as pool:
        rows = pd.DataFrame(list(pool.map(evaluate, SETS)))
    print(rows.to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    print(f"\n{len(rows)} sets: mean ARI {rows.ari.mean():.3f}")
    for columns, group in rows.groupby("columns"):
        print(f"  {columns} columns: {group.ari.mean():.3f}")
    chosen = int(rows.choice.str.startswith("hdbscan").sum())
    print(f"HDBSCAN's proposal chosen in {chosen} of {len(rows)}")
    print(f"segments equal to the centres in {int(np.sum(rows.segments == rows.centres))}")


if __name__ == "__main__":
    main()
