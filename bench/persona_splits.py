"""What a generated company's segments cut: each planted persona two segments share, described.

    PYTHONPATH=$PWD:$PWD/bench python bench/persona_splits.py --generator agent --variant nuisance --seed 21

Fits the segmenter as ``bench/eval_generators.py`` fits it (six personas, 3,000 customers, the
same company for the same seed), prints segments against personas, and for each persona whose
second segment holds at least 15% of it: the columns whose means differ between the two parts by
the most pooled standard deviations (with their medians), and how the parts hold the nuisance
attributes (annual plan, country). ``docs/evaluation.md``, "Companies no rule was chosen on".
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np
import pandas as pd
from eval_generators import GENERATORS, VARIANTS, Setting, feature_tables
from sklearn.metrics import adjusted_rand_score

from feature_store.registry import SEGMENTED_FEATURE_NAMES
from models.segmenter import CustomerSegmenter
from pipelines.train import active_customers, reliability_of

# A persona is "cut" when its second segment holds at least this share of it.
CUT_SHARE = 0.15


def describe_cuts(features: pd.DataFrame, labels: np.ndarray) -> None:
    X = features[list(SEGMENTED_FEATURE_NAMES)]
    for persona in sorted(features["persona"].unique()):
        rows = (features["persona"] == persona).to_numpy()
        counts = pd.Series(labels[rows]).value_counts()
        if len(counts) < 2 or counts.iloc[1] < CUT_SHARE * rows.sum():
            continue
        a, b = counts.index[:2]
        A, B = X[rows & (labels == a)], X[rows & (labels == b)]
        pooled = np.sqrt((A.var() * (len(A) - 1) + B.var() * (len(B) - 1)) / (len(A) + len(B) - 2))
        effect = ((A.mean() - B.mean()).abs() / pooled.replace(0, np.nan)).dropna()
        top = effect.sort_values(ascending=False).head(6)
        print(f"\n{persona}: segments {a} ({counts[a]}) and {b} ({counts[b]})")
        for column, size in top.items():
            print(
                f"  {column}: {size:.1f} sd (median {A[column].median():.3g} vs {B[column].median():.3g})"
            )
        part = features[rows].assign(segment=labels[rows])
        part = part[part["segment"].isin([a, b])]
        print(pd.crosstab(part["segment"], part["is_annual_plan"]).to_string())
        print(pd.crosstab(part["segment"], part["country"]).to_string())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generator", choices=sorted(GENERATORS), default="agent")
    parser.add_argument("--variant", choices=sorted(VARIANTS), default="nuisance")
    parser.add_argument("--seed", type=int, default=21)
    parser.add_argument("--segmenter-seed", type=int, default=0)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    setting = Setting(args.generator, 3000, 6, args.variant)
    company = GENERATORS[args.generator](setting.spec(args.seed))
    everyone, earlier = feature_tables(company)
    features = active_customers(everyone)
    model = CustomerSegmenter(random_state=args.segmenter_seed).fit(
        features[list(SEGMENTED_FEATURE_NAMES)],
        reliability=reliability_of(features, earlier, SEGMENTED_FEATURE_NAMES),
    )
    ari = adjusted_rand_score(features["persona"], model.labels_)
    print(f"{model.n_segments_} segments, ARI {ari:.3f}")
    print(pd.crosstab(features["persona"], model.labels_).to_string())
    describe_cuts(features, model.labels_)


if __name__ == "__main__":
    main()
