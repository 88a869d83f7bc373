"""What paying in several currencies costs the segments: money features in each customer's own
currency (as the feature store computes them today) against the same features in one currency.

    python bench/eval_currency.py [--generators agent latent] [--seeds 0 1 2 3 4 5 6 7]
        [--customers 3000] [--personas 6]

Each company is a ``nuisance`` company of ``bench/eval_generators.py``: its customers live in six
countries drawn independently of persona (40% US; INR and BRL customers pay a purchasing-power
price, ``planted.PRICE_LEVEL``), so the segmented money columns (``mrr``, ``ltv``,
``mrr_per_seat``, ``mrr_growth_90d``) of an Indian customer are some 35 times a US customer's on
the same plan. The segmenter (defaults) is fitted five times on the same customers, the money
columns as follows:

- ``local``: as computed today, each customer's own currency;
- ``estimated``: divided by a price level estimated from the data alone, the median price per seat
  (``mrr_per_seat`` of paying customers) in the customer's currency over that in the most common
  currency; what a segmenter could do by default with no exchange rates given;
- ``exchange``: converted to USD at illustrative market rates (``ILLUSTRATIVE_USD_RATES``, round
  figures of the right order, not quotes): what user-supplied exchange rates would give. Indian
  and Brazilian customers then still pay about half a US price;
- ``oracle``: divided by the generator's own price level, which no deployed system knows;
- ``estimated, sources``: as ``estimated``, with flags judged across sources
  (``CustomerSegmenter(sources="registry")``, ``docs/segmentation.md``, "Judging a flag across
  sources"): whether that option pays once the currency is out of the way.

The customer's currency is read from the generator's truth table (``country``); the events carry
the same currency on every billing row. Prints ARI against the planted personas and the number of
segments, per company and the mean per generator.
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np
import pandas as pd
from eval_generators import GENERATORS, Setting, feature_table
from planted import CURRENCY, PRICE_LEVEL
from sklearn.metrics import adjusted_rand_score
from threadpoolctl import threadpool_limits

from feature_store.registry import FEATURES, SEGMENTED_FEATURE_NAMES
from models.segmenter import CustomerSegmenter
from pipelines.train import active_customers

MONEY_COLUMNS = tuple(
    f.name for f in FEATURES if f.segmented and f.unit in ("currency", "currency/month")
)
# Units of each currency per USD, round figures of the order of 2024 market rates; illustrative.
ILLUSTRATIVE_USD_RATES = {"USD": 1.0, "EUR": 0.9, "GBP": 0.8, "INR": 83.0, "BRL": 5.0}
VARIANTS = ("local", "estimated", "exchange", "oracle", "estimated, sources")


def estimated_price_levels(price_per_seat: pd.Series, currency: pd.Series) -> pd.Series:
    """Per customer: the median price per seat of paying customers in their currency over that in
    the most common currency (1 where the currency has no paying customer)."""
    paying = price_per_seat > 0
    medians = price_per_seat[paying].groupby(currency[paying]).median()
    reference = currency.value_counts().idxmax()
    levels = (medians / medians.get(reference, np.nan)).fillna(1.0)
    return currency.map(levels).fillna(1.0)


def in_one_currency(X: pd.DataFrame, divisor: pd.Series) -> pd.DataFrame:
    converted = X.copy()
    for column in MONEY_COLUMNS:
        converted[column] = X[column].astype(float) / divisor.to_numpy(float)
    return converted


def variants(features: pd.DataFrame) -> dict[str, pd.DataFrame]:
    X = features[list(SEGMENTED_FEATURE_NAMES)]
    currency = features["country"].map(CURRENCY)
    return {
        "local": X,
        "estimated": in_one_currency(X, estimated_price_levels(X["mrr_per_seat"], currency)),
        "exchange": in_one_currency(X, currency.map(ILLUSTRATIVE_USD_RATES)),
        "oracle": in_one_currency(X, features["country"].map(PRICE_LEVEL)),
    }


def main() -> None:
    warnings.filterwarnings("ignore")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--generators",
        nargs="+",
        choices=["agent", "latent", "journey"],
        default=["agent", "latent"],
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(8)))
    parser.add_argument("--customers", type=int, default=3000)
    parser.add_argument("--personas", type=int, default=6)
    args = parser.parse_args()
    rows = []
    for generator in args.generators:
        for seed in args.seeds:
            setting = Setting(generator, args.customers, args.personas, "nuisance")
            features = active_customers(feature_table(GENERATORS[generator](setting.spec(seed))))
            truth = features["persona"].to_numpy(object)
            row: dict[str, object] = {"company": f"{setting.name}/s{seed}", "generator": generator}
            with threadpool_limits(limits=1):
                data = variants(features)
                data["estimated, sources"] = data["estimated"]
                for name, X in data.items():
                    sources = "registry" if name.endswith("sources") else None
                    labels = CustomerSegmenter(random_state=0, sources=sources).fit(X).labels_
                    row[f"{name} ARI"] = adjusted_rand_score(truth, labels)
                    row[f"{name} k"] = len(set(labels.tolist()) - {-1})
            rows.append(row)
            print(
                row["company"],
                " ".join(f"{v} {row[f'{v} ARI']:.3f} ({row[f'{v} k']})" for v in VARIANTS),
                flush=True,
            )
    table = pd.DataFrame(rows)
    means = table.groupby("generator")[[f"{v} ARI" for v in VARIANTS]].mean()
    print("\nmean ARI per generator (companies)")
    for generator, values in means.iterrows():
        count = int((table.generator == generator).sum())
        print(
            f"{generator} ({count}): "
            + "  ".join(f"{v} {values[f'{v} ARI']:.3f}" for v in VARIANTS)
        )


if __name__ == "__main__":
    main()
