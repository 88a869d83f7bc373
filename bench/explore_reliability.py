"""Exploration: three ways to weigh a column by its reliability a month apart, on one company.

    PYTHONPATH=$PWD:$PWD/bench python bench/explore_reliability.py --generator agent \
        --variant nuisance --seed 24 [--segmenter-seed 0]

Fits the segmenter three times on the same generated company (six personas, 3,000 customers, as
``bench/eval_generators.py`` makes it): with no reliability (every column as the data alone
says, as before 2026-12-06's sixth session), with each column's weight multiplied by its
reliability (the first form tried), and by its square root (adopted: classical test theory's
share of lasting variance; ``models.preprocessing``, "Why reliability"). Prints one JSON line:
segments and ARI of each, and every column's reliability. ``docs/segmentation.md``, "Lasting
traits, not passing states".
"""

from __future__ import annotations

import argparse
import json
import warnings

from eval_generators import GENERATORS, VARIANTS, Setting, feature_tables
from sklearn.metrics import adjusted_rand_score

from feature_store.registry import SEGMENTED_FEATURE_NAMES
from models.segmenter import CustomerSegmenter
from pipelines.train import active_customers, reliability_of


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generator", choices=sorted(GENERATORS), default="agent")
    parser.add_argument("--variant", choices=sorted(VARIANTS), default="nuisance")
    parser.add_argument("--seed", type=int, default=24)
    parser.add_argument("--segmenter-seed", type=int, default=0)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    setting = Setting(args.generator, 3000, 6, args.variant)
    everyone, earlier = feature_tables(GENERATORS[args.generator](setting.spec(args.seed)))
    features = active_customers(everyone)
    X = features[list(SEGMENTED_FEATURE_NAMES)]
    reliability = reliability_of(features, earlier, SEGMENTED_FEATURE_NAMES) or {}
    forms = {
        "none": None,
        # the weight is multiplied by the square root of what is given: squared, it is linear
        "linear": {name: value**2 for name, value in reliability.items()},
        "square_root": reliability,
    }
    out: dict[str, object] = {"company": f"{setting.name}/s{args.seed}"}
    for form, given in forms.items():
        model = CustomerSegmenter(random_state=args.segmenter_seed).fit(X, reliability=given)
        ari = adjusted_rand_score(features["persona"], model.labels_)
        out[form] = [model.n_segments_, round(ari, 3)]
    out["reliability"] = {name: round(value, 2) for name, value in reliability.items()}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
