"""Summed subscriptions on real data: RavenStack's concurrent subscriptions, two ways.

    python bench/eval_ravenstack_subscriptions.py [--data DIR]

RavenStack's accounts hold about nine subscriptions at once (``docs/ravenstack.md``). Its adapter
(``examples/ravenstack.py``) was written when the events contract knew one subscription per
customer, so it sums each account's live rows itself and sends account-level events. Since the
contract names subscriptions (``subscription_id``), the rows can be sent as they are: each row a
``subscription_started`` on its start date and a ``subscription_canceled`` on its end date (when it
ends before the data does), and the features sum them. Both are ingested into homes of their own
with the same invoices, refunds and usage; the script compares the billing features per account
as of the last day of data. Where the two disagree, the adapter's rules and the contract's differ
(the adapter's ``is_annual``: yearly rows carry more than half of the MRR; the contract's: the live
subscription with the most MRR bills yearly), and the script says how often.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import pandas as pd

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "ravenstack"

COMPARED = (
    "mrr",
    "seats",
    "is_annual",
    "is_canceled",
    "mrr_growth_90d",
    "expansions_365d",
    "contractions_365d",
)


def row_events(placed: pd.DataFrame, data_end: pd.Timestamp) -> pd.DataFrame:
    """Each subscription row as it is: started on its start date, cancelled on its end date when
    that comes before the end of the data, named by its ``subscription_id``."""
    from ravenstack import iso

    starts = pd.DataFrame(
        {
            "event_id": placed["subscription_id"] + "-1-start",
            "customer_id": placed["account_id"],
            "occurred_at": iso(placed["start"]),
            "type": "subscription_started",
            "plan": placed["plan_tier"],
            "interval": placed["interval"],
            "seats": placed["seats_n"].astype(int).astype(str),
            "mrr": placed["mrr_n"].round(2).astype(str),
            "currency": "USD",  # the export's only currency, as examples/ravenstack.py says
            "subscription_id": placed["subscription_id"],
        }
    )
    ended = placed[placed["end"].notna() & (placed["end"] < data_end)]
    ends = pd.DataFrame(
        {
            "event_id": ended["subscription_id"] + "-2-end",
            "customer_id": ended["account_id"],
            "occurred_at": iso(ended["end"]),
            "type": "subscription_canceled",
            "subscription_id": ended["subscription_id"],
        }
    )
    return pd.concat([starts, ends], ignore_index=True)


def features_of(billing: pd.DataFrame, usage: pd.DataFrame, folder: Path, day: pd.Timestamp):
    from feature_store.ingest import ingest_files
    from feature_store.layout import StoreLayout
    from pipelines.feature_pipeline import build_features

    folder.mkdir(parents=True)
    paths = {"billing": folder / "billing.parquet", "usage": folder / "usage.parquet"}
    billing.astype("string").to_parquet(paths["billing"], index=False)
    usage.to_parquet(paths["usage"], index=False)
    layout = StoreLayout(folder / "home")
    reports = ingest_files(layout, paths)
    quarantined = {stream: report.quarantined for stream, report in reports.items()}
    as_of = (day + pd.Timedelta(days=1)).to_pydatetime()
    return build_features(layout, as_of).set_index("customer_id"), quarantined


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = parser.parse_args()
    sys.path.insert(0, str(EXAMPLES))  # the adapter, as examples/ravenstack.py runs it
    import ravenstack

    if not args.data.is_dir():
        ravenstack.fail(f"the RavenStack export is expected in {args.data}; pass --data DIR")
    tables = ravenstack.read_export(args.data)
    day = ravenstack.last_day(tables)
    data_end = day + pd.Timedelta(days=1)
    adapter_billing, usage, _, rows = ravenstack.build_events(tables, data_end)
    placed = rows[rows["problem"] == ""]
    kept = ~adapter_billing["type"].str.startswith("subscription_")
    per_row_billing = pd.concat(
        [adapter_billing[kept], row_events(placed, data_end)], ignore_index=True
    )
    with tempfile.TemporaryDirectory() as tmp:
        summed_by_adapter, q1 = features_of(adapter_billing, usage, Path(tmp) / "adapter", day)
        summed_by_features, q2 = features_of(per_row_billing, usage, Path(tmp) / "rows", day)
    print(
        f"RavenStack: {len(placed):,} subscription rows of {placed['account_id'].nunique():,} "
        f"accounts, features as of {day:%Y-%m-%d}"
    )
    print(f"quarantined: adapter {q1}, rows {q2}")
    ours = summed_by_features.loc[summed_by_adapter.index]
    print(f"{'feature':<20}{'accounts equal':>16}{'differ':>8}  adapter mean  rows mean")
    for name in COMPARED:
        a, b = summed_by_adapter[name].astype(float), ours[name].astype(float)
        equal = (a - b).abs() <= 1e-6
        print(
            f"{name:<20}{int(equal.sum()):>10,} of {len(a):,}{int((~equal).sum()):>8}"
            f"  {a.mean():>12.3f}  {b.mean():>9.3f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
