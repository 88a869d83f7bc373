"""Does billing cadence make the random annual flag a segment? Each company segmented on every
registry feature, then on the features a model segments on by default, with the flag's agreement
judged on every other column (the default before 2026-12-03) and then across sources
(``sources="registry"``, the default since).

    python bench/eval_cadence.py [--generators journey] [--customers 3000] [--personas 3]
        [--variants nuisance] [--seeds 0]

Companies of ``bench/eval_generators.py`` (the same setting and seed give the same company), their
active customers; the flag ``is_annual`` is drawn at random, independently of persona. For each
company and each of the three configurations, prints the number of segments, the ARI against the
personas and against the flag, the segments made of annual customers (90% or more) and the flag's
agreement weight; then the totals. With one company it also prints, on the preprocessed
features, where annual customers differ from monthly ones of the same persona: the standardised
mean difference per persona of the columns that differ most.

Yearly invoicing means a twelfth of the invoices, so fewer failed payments and refunds a year:
counted per year, they follow the flag and its agreement weight stays high. The registry keeps
those counts out of the default model input (``FeatureDefinition.segmented``) and segments on
the share of payment attempts that failed instead (``docs/evaluation.md``, "A third generator").
The rates still follow the cadence in part (one charge a year is a coarse rate), and ``ltv`` does
(a year paid up front); ``sources="registry"`` judges a billing flag on usage columns only
(``models.preprocessing``), which the third configuration, the default model, measures.
"""

from __future__ import annotations

import argparse
import itertools
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from eval_generators import GENERATORS, VARIANTS, Setting, feature_table
from sklearn.metrics import adjusted_rand_score

from feature_store.registry import FEATURE_NAMES, SEGMENTED_FEATURE_NAMES
from models.preprocessing import FeaturePreprocessor
from models.segmenter import CustomerSegmenter
from pipelines.train import active_customers

FLAG = "is_annual"
ANNUAL_ONLY = 0.9  # a segment this annual is one the flag made (the flag is drawn with p = 0.3)
# label: (features, the preprocessor's ``sources``); the last is the default model (since
# 2026-12-03; the second was before)
CONFIGURATIONS: dict[str, tuple[tuple[str, ...], str | None]] = {
    "every feature, all columns": (FEATURE_NAMES, None),
    "segmented, all columns": (SEGMENTED_FEATURE_NAMES, None),
    "segmented, across sources (default)": (SEGMENTED_FEATURE_NAMES, "registry"),
}


@dataclass(frozen=True)
class Outcome:
    segments: int
    ari_personas: float
    ari_flag: float
    annual_only: int
    flag_weight: float

    def line(self) -> str:
        return (
            f"{self.segments:>3} segments  ARI personas {self.ari_personas:.3f}  ARI flag "
            f"{self.ari_flag:.3f}  annual-only segments {self.annual_only}  weight of {FLAG} "
            f"{self.flag_weight:.2f}"
        )


def segmented(
    X: pd.DataFrame, personas: np.ndarray, annual: np.ndarray, sources: str | None
) -> Outcome:
    segmenter = CustomerSegmenter(random_state=0, sources=sources).fit(X)
    labels = segmenter.labels_
    weights = dict(zip(X.columns, segmenter.preprocessor_.weights_, strict=True))
    return Outcome(
        int(labels.max() + 1),
        adjusted_rand_score(personas, labels),
        adjusted_rand_score(annual, labels),
        int(sum(annual[labels == s].mean() >= ANNUAL_ONLY for s in np.unique(labels))),
        float(weights[FLAG]),
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
    parser.add_argument("--generators", nargs="+", choices=list(GENERATORS), default=["journey"])
    parser.add_argument("--customers", type=int, default=3000)
    parser.add_argument("--personas", type=int, nargs="+", default=[3])
    nuisance = [v for v in VARIANTS if "nuisance" in v]
    parser.add_argument("--variants", nargs="+", choices=nuisance, default=["nuisance"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    args = parser.parse_args()
    totals: dict[str, list[Outcome]] = {name: [] for name in CONFIGURATIONS}
    companies = list(itertools.product(args.generators, args.personas, args.variants, args.seeds))
    for generator, personas_planted, variant, seed in companies:
        setting = Setting(generator, args.customers, personas_planted, variant)
        company = GENERATORS[generator](setting.spec(seed))
        features = active_customers(feature_table(company))
        truth = company.truth.set_index("customer_id").loc[features["customer_id"].astype(str)]
        personas = truth["persona"].to_numpy(object)
        annual = truth["is_annual_plan"].to_numpy(bool)
        print(f"{setting.name}, seed {seed}: {len(features):,} active, {annual.mean():.0%} annual")
        for label, (names, sources) in CONFIGURATIONS.items():
            outcome = segmented(features[list(names)], personas, annual, sources)
            totals[label].append(outcome)
            print(f"  {label:<36}{outcome.line()}", flush=True)
        if len(companies) == 1:
            print(
                "\nannual minus monthly customers of each persona, in pooled standard deviations:"
            )
            differences = cadence_differences(features[list(FEATURE_NAMES)], personas, annual)
            print(differences.head(8).round(2).to_string())
    print(f"\n{len(companies)} companies:")
    for label, outcomes in totals.items():
        weights = [o.flag_weight for o in outcomes]
        print(
            f"  {label:<36}mean ARI personas {np.mean([o.ari_personas for o in outcomes]):.3f}, "
            f"mean ARI flag {np.mean([o.ari_flag for o in outcomes]):.3f}, companies with an "
            f"annual-only segment {sum(o.annual_only > 0 for o in outcomes)}, weight of {FLAG} "
            f"mean {np.mean(weights):.3f} (range {min(weights):.3f}-{max(weights):.3f})"
        )
    labels = list(CONFIGURATIONS)
    for before, after in itertools.pairwise(labels):
        change = [
            b.flag_weight - a.flag_weight
            for a, b in zip(totals[before], totals[after], strict=True)
        ]
        print(
            f"  weight of {FLAG}, {after} against {before}: lower in "
            f"{sum(round(c, 2) < 0 for c in change)}, equal in "
            f"{sum(round(c, 2) == 0 for c in change)}, higher in "
            f"{sum(round(c, 2) > 0 for c in change)} (at two decimals, as printed)"
        )


if __name__ == "__main__":
    main()
