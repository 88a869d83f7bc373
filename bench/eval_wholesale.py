"""Real customer spend we did not design around: 440 clients of a Portuguese wholesaler (UCI).

    python bench/eval_wholesale.py [--data ../shared/datasets/wholesale_customers] [--seeds 5]

Six columns of annual spend (fresh food, milk, grocery, frozen, detergents and paper,
delicatessen) and two labels nobody fitted on: the sales channel (298 hotels, restaurants and
cafés against 142 retailers) and the region. The channel is a weak truth: spend tells it only
partly. Ours is ``CustomerSegmenter()`` with its defaults (no k) at several seeds; the baselines
are the suite's (``bench/bench_clustering_suite.py``), on the spend after ``log1p`` and
standardisation, the data's README reference (k-means, k = 2: ARI 0.514 against the channel).
Printed: segments found, ARI against the channel and the region, and each segment's median
spend. Skips cleanly when the data folder is absent.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from bench_clustering_suite import baselines
from sklearn.metrics import adjusted_rand_score

from models.segmenter import CustomerSegmenter

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "wholesale_customers"
SPEND = ["Fresh", "Milk", "Grocery", "Frozen", "Detergents_Paper", "Delicassen"]


def main() -> None:
    warnings.filterwarnings("ignore")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--seeds", type=int, default=5, help="segmenter seeds 0..N-1")
    args = parser.parse_args()
    if args.seeds < 1:
        parser.error("--seeds: at least 1")
    path = args.data / "wholesale_customers_data.csv"
    if not path.exists():
        print(f"skipped: {path} not found (the shared datasets are not on this machine)")
        sys.exit(0)
    frame = pd.read_csv(path)
    spend = frame[SPEND].astype(float)
    channel, region = frame["Channel"].to_numpy(), frame["Region"].to_numpy()
    counts = pd.Series(channel).value_counts().to_dict()
    print(f"{len(frame)} customers; channel: {counts} (1 = hotels/restaurants/cafés, 2 = retail)")

    rows = []
    for seed in range(args.seeds):
        segmenter = CustomerSegmenter(random_state=seed).fit(spend)
        rows.append(
            {
                "method": f"ours (seed {seed})",
                "segments": segmenter.n_segments_,
                "choice": segmenter.chosen_candidate_.name,
                "ARI channel": adjusted_rand_score(channel, segmenter.labels_),
                "ARI region": adjusted_rand_score(region, segmenter.labels_),
            }
        )
        if seed == 0:
            first = segmenter
    for name, labels in baselines(np.log1p(spend.to_numpy())).items():
        rows.append(
            {
                "method": f"{name} (log1p)",
                "segments": len(set(labels) - {-1}),
                "choice": "",
                "ARI channel": adjusted_rand_score(channel, labels),
                "ARI region": adjusted_rand_score(region, labels),
            }
        )
    print(pd.DataFrame(rows).to_string(index=False, float_format=lambda v: f"{v:.3f}"))

    labels = pd.Series(first.labels_, name="segment")
    print("\nours, seed 0: customers per segment and channel")
    print(pd.crosstab(labels, pd.Series(channel, name="channel")).to_string())
    print("\nmedian annual spend per segment")
    print(spend.groupby(labels).median().round(0).astype(int).to_string())


if __name__ == "__main__":
    main()
