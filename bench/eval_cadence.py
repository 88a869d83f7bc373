"""Does billing cadence make the random annual flag a segment? Segmented with and without the columns
that count what an invoice leads to.

    python bench/eval_cadence.py [--generator journey] [--customers 3000] [--personas 3]
        [--variant nuisance] [--seed 0] [--without failed_payments_365d,failed_payments_90d,refunds_365d]

One company of ``bench/eval_generators.py`` (the same setting and seed give the same company), its
active customers, the registry features; the flag ``is_annual`` is drawn at random, independently
of persona. For the registry's features, then without ``--without``, then without ``ltv`` as well,
prints the number of segments, the ARI against the personas and against the flag, the segments
made of annual customers (90% or more) and the flag's agreement weight. Then, on the preprocessed
features, where annual customers differ from monthly ones of the same persona: the standardised
mean difference per persona of the columns that differ most. Yearly invoicing means fewer
invoices, so fewer failed payments and refunds a year, and a year paid up front; when the other
columns follow the flag that way, its agreement weight stays high (``docs/evaluation.md``, "A
third generator").
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np
import pandas as pd
from eval_generators import GENERATORS, VARIANTS, Setting, feature_table
from sklearn.metrics import adjusted_rand_score

from feature_store.registry import FEATURE_NAMES
from models.preprocessing import FeaturePreprocessor
from models.segmenter import CustomerSegmenter
from pipelines.train import active_customers

FLAG = "is_annual"
ANNUAL_ONLY = 0.9  # a segment this annual is one the flag made (the flag is drawn with p = 0.3)


def segmented(X: pd.DataFrame, personas: np.ndarray, annual: np.ndarray) -> str:
    segmenter = CustomerSegmenter(random_state=0).fit(X)
    labels = segmenter.labels_
    weights = dict(zip(X.columns, segmenter.preprocessor_.weights_, strict=True))
    annual_only = sum(annual[labels == s].mean() >= ANNUAL_ONLY for s in np.unique(labels))
    return (
        f"{labels.max() + 1} segments, ARI personas {adjusted_rand_score(personas, labels):.3f}, "
        f"ARI annual flag {adjusted_rand_score(annual, labels):.3f}, annual-only segments "
        f"{annual_only}, weight of {FLAG} {weights[FLAG]:.2f}"
    )


def cadence_differences(X: pd.DataFrame, personas: np.ndarray, annual: np.ndarray) -> pd.DataFrame:
    """Per persona, annual minus monthly means over their pooled standard deviation, on the
    preprocessed columns (the space the segments are found in)."""
    preprocessor = FeaturePreprocessor().fit(X)
    names = X.columns[preprocessor.kept_]
    Z = pd.DataFrame(preprocessor.transform(X), columns=names).drop(columns=FLAG, errors="ignore")
    table = {}
    for persona in np.unique(personas):
        yearly, monthly = Z[(personas == persona) & annual], Z[(personas == persona) & ~annual]
        pooled = np.sqrt((yearly.var() + monthly.var()) / 2).replace(0, np.nan)
        table[persona] = (yearly.mean() - monthly.mean()) / pooled
    frame = pd.DataFrame(table)
    return frame.loc[frame.abs().max(axis=1).sort_values(ascending=False).index]


def main() -> None:
    warnings.filterwarnings("ignore")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generator", choices=list(GENERATORS), default="journey")
    parser.add_argument("--customers", type=int, default=3000)
    parser.add_argument("--personas", type=int, default=3)
    parser.add_argument(
        "--variant", choices=[v for v in VARIANTS if "nuisance" in v], default="nuisance"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--without",
        type=lambda text: text.split(","),
        default=["failed_payments_365d", "failed_payments_90d", "refunds_365d"],
        help="comma-separated registry features to leave out in the second run",
    )
    args = parser.parse_args()
    unknown = sorted(set(args.without) - set(FEATURE_NAMES))
    if unknown or FLAG in args.without:
        parser.error(f"--without: not a registry feature other than {FLAG}: {', '.join(unknown)}")
    setting = Setting(args.generator, args.customers, args.personas, args.variant)
    company = GENERATORS[setting.generator](setting.spec(args.seed))
    features = active_customers(feature_table(company))
    truth = company.truth.set_index("customer_id").loc[features["customer_id"].astype(str)]
    personas = truth["persona"].to_numpy(object)
    annual = truth["is_annual_plan"].to_numpy(bool)
    X = features[list(FEATURE_NAMES)]
    print(
        f"{setting.name}, seed {args.seed}: {len(X):,} active customers, {annual.mean():.0%} annual"
    )
    for label, dropped in (
        ("every feature", []),
        (f"without {', '.join(args.without)}", args.without),
        ("... and without ltv", list(dict.fromkeys([*args.without, "ltv"]))),
    ):
        print(f"{label}: {segmented(X.drop(columns=dropped), personas, annual)}")
    print("\nannual minus monthly customers of each persona, in pooled standard deviations:")
    print(cadence_differences(X, personas, annual).head(8).round(2).to_string())


if __name__ == "__main__":
    main()
