"""Map the real UCI Online Retail export to canonical events, then ingest and build features.

    python examples/online_retail.py [--data ../shared/datasets/online_retail_uci] [--home DIR]

Mapping (the dataset's README suggests it; nothing is cleaned beforehand, so the contract's
validation meets the real mess):

- each invoice becomes one billing event: ``invoice_paid`` with amount sum(Quantity * UnitPrice),
  or, for a "C" invoice, ``refund_issued`` with the negated amount. Invoices without CustomerID keep
  an empty ``customer_id`` and are quarantined, as are invoices whose total is not positive;
- each invoice line becomes one usage event ``item_purchased`` with ``feature`` = StockCode and
  ``quantity`` = Quantity (negative quantities on cancellations are quarantined);
- InvoiceDate is naive local UK time; it is read as UTC (at most one hour off in summer).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import NoReturn

import numpy as np
import pandas as pd

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "online_retail_uci"


def to_billing(lines: pd.DataFrame) -> pd.DataFrame:
    lines = lines.assign(value=lines["Quantity"] * lines["UnitPrice"])
    invoices = lines.groupby("InvoiceNo", sort=False).agg(
        customer=("CustomerID", "first"), occurred_at=("InvoiceDate", "min"), total=("value", "sum")
    )
    refund = invoices.index.str.startswith("C")
    return pd.DataFrame(
        {
            "event_id": "inv-" + invoices.index,
            "customer_id": invoices["customer"].map(lambda c: "" if pd.isna(c) else f"{int(c)}"),
            "occurred_at": invoices["occurred_at"].dt.strftime("%Y-%m-%dT%H:%M:%S"),
            "type": np.where(refund, "refund_issued", "invoice_paid"),
            "amount": np.where(refund, -invoices["total"], invoices["total"]).round(2),
            "currency": "GBP",
        }
    )


def to_usage(lines: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "event_id": "line-" + lines.index.astype(str),
            "customer_id": lines["CustomerID"].map(lambda c: "" if pd.isna(c) else f"{int(c)}"),
            "occurred_at": lines["InvoiceDate"].dt.strftime("%Y-%m-%dT%H:%M:%S"),
            "event": "item_purchased",
            "feature": lines["StockCode"],
            "quantity": lines["Quantity"],
        }
    )


def segments(args: list[str], home: Path) -> str:
    env_home = {"SEGMENTS_HOME": str(home)}
    result = subprocess.run(
        [sys.executable, "-m", "pipelines", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env_home},
        check=False,
    )
    if result.returncode:
        fail(f"segments {args[0]} failed: {result.stderr.strip()}", result.returncode)
    return result.stdout


def fail(message: str, code: int = 2) -> NoReturn:
    """Stop with one line on stderr; 2, like the ``segments`` CLI, for input the user must fix."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(code)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--home", type=Path, help="data home (default: a temporary folder)")
    args = parser.parse_args()
    source = args.data / "online_retail.parquet"
    if not source.is_file():
        fail(
            f"the Online Retail data is expected at {source}; "
            "pass --data DIR with its online_retail.parquet"
        )
    lines = pd.read_parquet(source)
    with tempfile.TemporaryDirectory() as tmp:
        home = args.home or Path(tmp) / "home"
        billing, usage = Path(tmp) / "billing.csv", Path(tmp) / "usage.csv"
        to_billing(lines).to_csv(billing, index=False)
        to_usage(lines).to_csv(usage, index=False)
        report = json.loads(
            segments(["ingest", "--billing", str(billing), "--usage", str(usage), "--json"], home)
        )
        features = json.loads(
            segments(
                [
                    "features",
                    "--as-of",
                    "2011-12-09",
                    "--out",
                    str(Path(tmp) / "f.parquet"),
                    "--json",
                ],
                home,
            )
        )
        table = pd.read_parquet(Path(tmp) / "f.parquet")
    print(f"source: {len(lines):,} invoice lines")
    for stream, counts in report.items():
        print(
            f"{stream}: received {counts['received']:,}, accepted {counts['accepted']:,}, "
            f"duplicates {counts['duplicates']:,}, quarantined {counts['quarantined']:,} {counts['reasons']}"
        )
    print(f"features as of 2011-12-09: {features['customers']:,} customers")
    print(
        table[
            ["ltv", "refunds_365d", "events_30d", "feature_breadth_90d", "days_since_last_activity"]
        ]
        .describe()
        .round(1)
        .to_string()
    )


if __name__ == "__main__":
    main()
