"""Do independent flags change the segments? The nuisance test's company, replayed with numbers.

    python bench/eval_nuisance.py [--customers 300] [--seed 7]

The company of ``tests/test_nuisance.py`` (demo generator, 14 months, features as of 2026-06-30,
active customers, the registry features but ``is_canceled``), segmented with and without two random
0/1 columns (p = 0.3 and 0.5, independent of everything), for agreement judged on every other
column (``sources=None``), agreement judged across sources (``sources="registry"``, the default
since 2026-12-03) and no weights
(``weighting="none"``). Prints the number of segments, the ARI between the two runs, the ARI against the planted
personas, the flags' weights and every other column weighing less than 1.
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np
from sklearn.metrics import adjusted_rand_score

from feature_store.features import compute_customer_features
from feature_store.registry import SEGMENTED_FEATURE_NAMES
from feature_store.timeutil import parse_as_of
from models.segmenter import CustomerSegmenter
from pipelines.demo_data import generate_company

FLAGS = ("random_flag", "random_country_dummy")


def main() -> None:
    warnings.filterwarnings("ignore")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=300)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    company = generate_company(customers=args.customers, months=14, seed=args.seed)
    events = {"billing": company.billing.to_pandas(), "usage": company.usage.to_pandas()}
    features = compute_customer_features(events, parse_as_of("2026-06-30"))
    active = features[features["is_canceled"] == 0].reset_index(drop=True)
    personas = active["customer_id"].map(company.truth.set_index("customer_id")["persona"])
    X = active[[name for name in SEGMENTED_FEATURE_NAMES if name != "is_canceled"]]
    rng = np.random.default_rng(1)  # the test's flags
    flagged = X.assign(
        random_flag=(rng.random(len(X)) < 0.3).astype(float),
        random_country_dummy=(rng.random(len(X)) < 0.5).astype(float),
    )
    rules = {
        "all columns": {"sources": None},
        "across sources (default)": {},
        "none": {"weighting": "none"},
    }
    for rule, params in rules.items():
        plain = CustomerSegmenter(random_state=0, **params).fit(X)
        split = CustomerSegmenter(random_state=0, **params).fit(flagged)
        names = split.preprocessor_.feature_names_in_
        weights = dict(zip(names, split.preprocessor_.weights_.round(2), strict=True))
        others = {n: float(w) for n, w in weights.items() if w < 1 and n not in FLAGS}
        print(
            f"{rule:<14} segments {plain.n_segments_} -> {split.n_segments_}, "
            f"ARI between runs {adjusted_rand_score(plain.labels_, split.labels_):.3f}, "
            f"persona ARI {adjusted_rand_score(personas, plain.labels_):.3f} -> "
            f"{adjusted_rand_score(personas, split.labels_):.3f}, "
            f"flag weights {[float(weights[f]) for f in FLAGS]}, other columns below 1: {others}"
        )


if __name__ == "__main__":
    main()
