"""Money in several currencies, as the feature store converts it (``feature_store.currency``)
against money left in each customer's own currency and two other conversions.

    python bench/eval_currency.py [--generators agent latent] [--seeds 0 1 2 3 4 5 6 7]
        [--customers 3000] [--personas 6]

Each company is a ``nuisance`` company of ``bench/eval_generators.py``: its customers live in six
countries drawn independently of persona (40% US; INR and BRL customers pay a purchasing-power
price, ``planted.PRICE_LEVEL``), so the segmented money columns (``mrr``, ``ltv``,
``mrr_per_seat``, ``mrr_growth_90d``) of an Indian customer are some 35 times a US customer's on
the same plan. The segmenter (defaults) is fitted five times on the same customers, the money
columns as follows:

- ``local``: each customer's own currency, as before 2026-12-03 (built with no levels);
- ``pipeline, all columns``: as ``segments train`` builds them: divided by the price level the
  feature store estimates from the data alone, the median price per seat of a currency's paying
  customers over that of the currency most of them pay in;
- ``exchange``: the local money converted to USD at illustrative market rates
  (``ILLUSTRATIVE_USD_RATES``, round figures of the right order, not quotes): what
  user-supplied exchange rates would give. Indian and Brazilian customers then still pay about
  half a US price;
- ``oracle``: the local money divided by the generator's own price level, which no deployed
  system knows;
- ``pipeline (default)``: the same table, segmented by the default model, which judges flags
  across sources (``CustomerSegmenter(sources="registry")``, ``docs/segmentation.md``, "Judging a
  flag across sources").

The first four are segmented with flags judged on all columns (``sources=None``, the default
before 2026-12-03), so that only the money differs between them.

The customer's currency for ``exchange`` and ``oracle`` is read from the generator's truth table
(``country``); the events carry the same currency on every billing row. Prints ARI against the
planted personas and the number of segments, per company and the mean per generator.
"""

from __future__ import annotations

import argparse
import warnings

import pandas as pd
from eval_generators import GENERATORS, Setting, feature_table
from planted import CURRENCY, PRICE_LEVEL, PlantedCompany
from sklearn.metrics import adjusted_rand_score
from threadpoolctl import threadpool_limits

from feature_store.currency import CURRENCY_COLUMN, CurrencyLevels, to_reporting_currency
from feature_store.registry import SEGMENTED_FEATURE_NAMES
from models.segmenter import CustomerSegmenter
from pipelines.train import active_customers

# Units of each currency per USD, round figures of the order of 2024 market rates; illustrative.
ILLUSTRATIVE_USD_RATES = {"USD": 1.0, "EUR": 0.9, "GBP": 0.8, "INR": 83.0, "BRL": 5.0}
VARIANTS = ("local", "pipeline, all columns", "exchange", "oracle", "pipeline (default)")
# No levels: money left in each customer's own currency.
AS_COLLECTED = None


# The generator's price level of each currency (its countries sharing a currency share a level).
ORACLE_LEVELS = {CURRENCY[country]: level for country, level in PRICE_LEVEL.items()}
assert all(ORACLE_LEVELS[CURRENCY[c]] == level for c, level in PRICE_LEVEL.items())


def in_one_currency(X: pd.DataFrame, currency: pd.Series, levels: dict[str, float]) -> pd.DataFrame:
    """``X``'s money divided by ``levels`` of each row's currency, as the feature store does."""
    table = X.assign(**{CURRENCY_COLUMN: currency.to_numpy()})
    converted = to_reporting_currency(table, CurrencyLevels("USD", levels))
    return converted[list(X.columns)]


def variants(company: PlantedCompany) -> tuple[dict[str, pd.DataFrame], pd.Series]:
    """The segmented columns of the first four variants, and the planted personas, row for
    row."""
    local = active_customers(feature_table(company, AS_COLLECTED))
    pipeline = active_customers(feature_table(company))
    X = local[list(SEGMENTED_FEATURE_NAMES)]
    currency = local["country"].map(CURRENCY)
    converted = pipeline.set_index("customer_id").loc[local["customer_id"]].reset_index()
    data = {
        "local": X,
        "pipeline, all columns": converted[list(SEGMENTED_FEATURE_NAMES)],
        "exchange": in_one_currency(X, currency, ILLUSTRATIVE_USD_RATES),
        "oracle": in_one_currency(X, currency, ORACLE_LEVELS),
    }
    return data, local["persona"]


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
            company = GENERATORS[generator](setting.spec(seed))
            data, personas = variants(company)
            truth = personas.to_numpy(object)
            row: dict[str, object] = {"company": f"{setting.name}/s{seed}", "generator": generator}
            with threadpool_limits(limits=1):
                data["pipeline (default)"] = data["pipeline, all columns"]
                for name, X in data.items():
                    sources = "registry" if name == "pipeline (default)" else None
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
