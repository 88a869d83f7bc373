"""Do discovered segments tell who buys again? UCI Online Retail (4,372 real customers) against RFM.

    python bench/eval_retail_repurchase.py [--data ../shared/datasets/online_retail_uci]
                                           [--as-of 2011-09-09] [--window-days 90] [--segments N ...]

A retailer with no subscriptions and thin usage: what separates customers is value and recency.
The export goes through ``examples/online_retail.py``'s mapping, ingestion (validation,
quarantine) and the feature pipeline as of ``--as-of``; the label, used only to judge, is whether
a customer pays an invoice in the ``--window-days`` after it.

Cross-fitted AUC, as in ``bench/eval_iranian_churn.py``: in 5 folds, segments are fitted on four
fifths, each segment's repurchase rate is measured on those customers, and every held-out customer
is scored with its segment's rate; the AUC pools the held-out scores. Compared, on the same folds:

- ours: ``CustomerSegmenter()`` with defaults on the 27 registry features;
- the classic RFM grid: recency (days since the last invoice), frequency (invoices) and monetary
  value (sum paid) as quintile scores 1-5 from the training fold, 125 cells;
- the 10 named RFM segments (Champions, Loyal customers, ..., Hibernating) from the recency and
  frequency scores, the map marketing tools use.

RFM is computed from the raw invoices, not from our features, so it shares nothing with ours but
the data.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from _common import Grouping, cross_fitted_auc

from feature_store.currency import levels_of
from feature_store.errors import InvalidAsOfError
from feature_store.ingest import ingest_files
from feature_store.layout import StoreLayout
from feature_store.registry import SEGMENTED_FEATURE_NAMES
from feature_store.timeutil import parse_as_of
from models.segmenter import segmenter_for
from pipelines.feature_pipeline import build_features
from pipelines.train import earlier_features, reliability_of

DEFAULT_MAX_SEGMENTS = 12
MAX_TOLD = 30  # as ``segments train --segments``
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "online_retail_uci"

# The usual named-segment map of RFM marketing tools: regular expressions over the recency and
# frequency scores (1-5, 5 = most recent / most frequent); every pair has exactly one name.
NAMED_SEGMENTS = (
    (r"[1-2][1-2]", "Hibernating"),
    (r"[1-2][3-4]", "At risk"),
    (r"[1-2]5", "Can't lose them"),
    (r"3[1-2]", "About to sleep"),
    (r"33", "Need attention"),
    (r"[3-4][4-5]", "Loyal customers"),
    (r"41", "Promising"),
    (r"51", "New customers"),
    (r"[4-5][2-3]", "Potential loyalists"),
    (r"5[4-5]", "Champions"),
)


def load_events(source: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The example's mapping of invoice lines to canonical billing and usage events."""
    sys.path.insert(0, str(EXAMPLES))
    from online_retail import to_billing, to_usage

    lines = pd.read_parquet(source)
    return to_billing(lines), to_usage(lines)


def feature_table(
    billing: pd.DataFrame, usage: pd.DataFrame, as_of: str
) -> tuple[pd.DataFrame, dict[str, float] | None]:
    """The features as of ``as_of``, and each segmented column's reliability a month apart, as
    training measures it (``pipelines.train.earlier_features``, ``reliability_of``)."""
    with tempfile.TemporaryDirectory() as tmp:
        paths = {"billing": Path(tmp) / "billing.csv", "usage": Path(tmp) / "usage.csv"}
        billing.to_csv(paths["billing"], index=False)
        usage.to_csv(paths["usage"], index=False)
        layout = StoreLayout(Path(tmp) / "home")
        ingest_files(layout, paths)
        features = build_features(layout, parse_as_of(as_of))
        earlier = earlier_features(layout, parse_as_of(as_of), levels_of(features))
        names = [n for n in SEGMENTED_FEATURE_NAMES if n in features.columns]
        return features, reliability_of(features, earlier, names)


def rfm(billing: pd.DataFrame, customers: pd.Index, as_of: pd.Timestamp) -> pd.DataFrame:
    """Recency (days since the last paid invoice), frequency (paid invoices), monetary (sum paid),
    from the invoices up to ``as_of``."""
    paid = billing[(billing["type"] == "invoice_paid") & (billing["customer_id"] != "")]
    paid = paid.assign(at=pd.to_datetime(paid["occurred_at"]))
    paid = paid[(paid["at"] < as_of) & (paid["amount"] > 0)]
    per = paid.groupby("customer_id").agg(
        last=("at", "max"), frequency=("at", "size"), monetary=("amount", "sum")
    )
    per["recency"] = (as_of - per["last"]).dt.days
    return per.reindex(customers)[["recency", "frequency", "monetary"]]


def bought_again(
    billing: pd.DataFrame, customers: pd.Index, start: pd.Timestamp, days: int
) -> np.ndarray:
    paid = billing[(billing["type"] == "invoice_paid") & (billing["amount"] > 0)]
    at = pd.to_datetime(paid["occurred_at"])
    window = paid[(at >= start) & (at < start + pd.Timedelta(days=days))]
    return customers.isin(set(window["customer_id"])).astype(int)


def scores(values: pd.Series, reference: pd.Series, higher_is_better: bool) -> np.ndarray:
    """Quintile scores 1-5 of ``values`` by their mid-rank among ``reference`` (the training fold):
    a value's share of the reference below it plus half the share equal to it. Ties share a score,
    and a value held by many customers (40% have one invoice) lands in the middle of the share it
    holds, so every score is used when the data allow it."""
    ordered = np.sort(reference.to_numpy(float))
    x = values.to_numpy(float)
    below = np.searchsorted(ordered, x, side="left")
    at_most = np.searchsorted(ordered, x, side="right")
    share = (below + at_most) / (2 * len(ordered))
    score = np.clip(np.ceil(5 * share), 1, 5).astype(int)
    return score if higher_is_better else 6 - score


def rfm_cells(train: pd.DataFrame, test: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    def cells(frame: pd.DataFrame) -> np.ndarray:
        r = scores(frame["recency"], train["recency"], higher_is_better=False)
        f = scores(frame["frequency"], train["frequency"], higher_is_better=True)
        m = scores(frame["monetary"], train["monetary"], higher_is_better=True)
        return r * 100 + f * 10 + m

    return cells(train), cells(test)


def named_rfm(train: pd.DataFrame, test: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    def names(frame: pd.DataFrame) -> np.ndarray:
        r = scores(frame["recency"], train["recency"], higher_is_better=False)
        f = scores(frame["frequency"], train["frequency"], higher_is_better=True)
        keys = [f"{a}{b}" for a, b in zip(r, f, strict=True)]
        return np.array(
            [
                next(name for pattern, name in NAMED_SEGMENTS if re.fullmatch(pattern, k))
                for k in keys
            ]
        )

    return names(train), names(test)


def ours(segments: int | None = None, reliability: dict[str, float] | None = None) -> Grouping:
    """The segmenter with defaults, or told ``segments`` (the cap rises to it, as the CLI's),
    with the columns' ``reliability`` as training gives it."""

    def group(train: pd.DataFrame, test: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        model = segmenter_for(segments, DEFAULT_MAX_SEGMENTS, random_state=0)
        model.fit(train[list(SEGMENTED_FEATURE_NAMES)], reliability=reliability)
        return model.labels_, model.predict(test[list(SEGMENTED_FEATURE_NAMES)])

    return group


def main() -> None:
    warnings.filterwarnings("ignore")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--as-of", default="2011-09-09", help="features as of this day")
    parser.add_argument("--window-days", type=int, default=90, help="who buys in these days after")
    parser.add_argument(
        "--segments", type=int, nargs="*", default=[], help="also ours told these numbers"
    )
    args = parser.parse_args()
    try:
        # the feature pipeline's T (a bare date means the end of that day); RFM and the label
        # are cut at the same instant
        start = pd.Timestamp(parse_as_of(args.as_of))
    except InvalidAsOfError as error:
        parser.error(str(error))
    if args.window_days < 1:
        parser.error("--window-days must be at least 1")
    if any(not 2 <= n <= MAX_TOLD for n in args.segments):
        parser.error(f"--segments takes numbers from 2 to {MAX_TOLD}")
    source = args.data / "online_retail.parquet"
    if not source.is_file():
        if args.data != DEFAULT_DATA:
            parser.error(f"{source} not found")
        print(f"skipped: {source} not found (the data is not distributed with the project)")
        return
    billing, usage = load_events(source)
    last = pd.to_datetime(billing["occurred_at"]).max()
    if start + pd.Timedelta(days=args.window_days) > last:
        parser.error(
            f"the {args.window_days} days after {start} run past the data's last event ({last}); "
            "choose an earlier --as-of"
        )
    features, reliability = feature_table(billing, usage, args.as_of)
    customers = pd.Index(features["customer_id"])
    table = features.set_index("customer_id").join(rfm(billing, customers, start))
    table = table[table["frequency"].notna()]  # customers who paid before T (not refunds alone)
    label = bought_again(billing, table.index, start, args.window_days)
    print(
        f"{len(table):,} customers with a paid invoice before {start.date()}; "
        f"{label.mean():.1%} pay again within {args.window_days} days"
    )
    compared: list[tuple[str, Grouping]] = [
        ("ours", ours(reliability=reliability)),
        *((f"ours told {n} segments", ours(n, reliability)) for n in args.segments),
        ("RFM grid, 125 cells", rfm_cells),
        ("RFM, 10 named segments", named_rfm),
    ]
    for name, group in compared:
        auc, groups = cross_fitted_auc(group, table.reset_index(), label)
        print(f"cross-fitted AUC  {name:<24}{auc:.3f}  (groups per fold {groups})")


if __name__ == "__main__":
    main()
