"""Map the RavenStack multi-table SaaS export to canonical events, discover segments, check churn.

    python examples/ravenstack.py [--data DIR] [--out DIR] [--home DIR] [--format parquet|csv]

The export (``shared/datasets/ravenstack``, synthetic, credit "River @ Rivalytics") has five
tables: accounts, subscriptions, feature_usage, churn_events, support_tickets. This script writes
``billing_events`` and ``usage_events`` into ``--out`` (a temporary folder by default), then runs the
real ``segments`` CLI with a throwaway ``SEGMENTS_HOME`` (a temporary folder unless ``--home``):
``ingest --json``, ``features --as-of D``, ``train --as-of D --json`` and ``assign``, where ``D`` is
the last day found in the data. It prints what was mapped, what was not, the ingestion counts, the
segments, and the churn rate per segment by the accounts table's ``churn_flag``, which is held out:
it never reaches the events, so the segments are fitted without it.

Mapping and its assumptions (the tables disagree with each other; see docs/ravenstack.md):

- Customer = ``account_id``. Money is USD (the export's only currency, ``refund_amount_usd``).
  Every date is a day; events happen at 00:00 UTC of it. The as-of date is the last day found in
  subscriptions, feature_usage and churn_events.
- Subscriptions run concurrently: a row is active from ``start_date`` up to, not including,
  ``end_date`` (open when empty; 4,514 of 5,000 rows, so an account holds ~9 at once). The contract
  knew one subscription state per customer when this adapter was written (it sums named
  subscriptions, ``subscription_id``, since 2026-12-04), so the adapter sums the account's active rows on every day where a row starts or ends: ``mrr`` and ``seats`` are
  the sums; ``plan`` is the plan of the active row with the highest MRR (latest start on ties);
  ``interval`` is ``year`` when annual rows carry more than half of the active MRR, else ``month``
  (trial-only accounts: ``month``). A row whose end_date equals its start_date is active on no
  day. The first active day is ``subscription_started``, a day that
  leaves no active row is ``subscription_canceled``, any other change of (mrr, seats, plan,
  interval) is ``subscription_changed``; a day whose changes cancel out emits nothing (counted).
  Expansions and contractions are therefore rows added and rows ended.
- ``upgrade_flag`` / ``downgrade_flag`` / ``auto_renew_flag`` have no before-value and no date, so
  they cannot become events (the contract measures expansion by MRR); they are counted, not used.
- Invoices: each row with ``mrr_amount > 0`` is billed in advance on ``start_date`` and every
  month (``monthly``: ``mrr_amount``) or every 12 months (``annual``: ``12 * mrr_amount``, which
  equals ``arr_amount``) while the period starts before ``end_date`` (open rows: up to the last
  day of data). Every invoice is paid: the export has no payment table, so there is no
  ``payment_failed``. Trials (``mrr_amount = 0``) are not billed. No pro-rata refund on
  cancellation.
- ``churn_events`` with ``refund_amount_usd > 0`` become ``refund_issued`` on ``churn_date``; a
  zero refund moves no money and is not an event (counted). Churn events do not cancel anything:
  few of them fall on a day when one of the account's subscriptions ends (the script counts
  them), and the subscription table is taken as the truth about what is billed. Reasons, feedback and reactivation flags have
  no canonical column (counted).
- ``feature_usage`` rows become ``feature_used`` usage events (``feature`` = feature_name,
  ``quantity`` = usage_count), on the account of their subscription, whatever the subscription's
  dates (most usage predates its subscription; counted). ``event_id`` is usage_id plus
  subscription_id, because some usage_ids are shared by two different rows (counted), which
  ingestion would otherwise take for re-sends. Duration, error count and beta flag travel as extra
  columns, which ingestion ignores and reports.
  There is no user id, so user-based features are zero.
- support_tickets and the accounts' firmographics have no place in the two event streams; they are
  counted, not sent. The accounts' churn_flag is read only to evaluate the segments.
- Nothing is dropped silently: a subscription row whose values break the contract (no account, bad
  start date, plan, interval, seats or MRR) is sent as its own ``subscription_started`` row with its
  values as they are, so ingestion quarantines it with the contract's reason; one whose end_date is
  unreadable or before its start is counted as not placed (the contract would accept it as a start);
  a churn refund that is not a number, or negative, is sent and quarantined; usage of an unknown subscription is sent without a customer and
  quarantined (``missing_customer_id``). All event columns are text so that raw values reach the
  contract's validation unchanged. ``MLFLOW_TRACKING_URI`` is not passed on: the run stays in the
  throwaway home.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import pandas as pd
from scipy.stats import chi2_contingency

from feature_store.formats import write_table

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "ravenstack"
TABLES = {
    "accounts": ("account_id", "churn_flag"),
    "subscriptions": (
        "subscription_id",
        "account_id",
        "start_date",
        "end_date",
        "plan_tier",
        "seats",
        "mrr_amount",
        "arr_amount",
        "upgrade_flag",
        "downgrade_flag",
        "billing_frequency",
        "auto_renew_flag",
    ),
    "feature_usage": (
        "usage_id",
        "subscription_id",
        "usage_date",
        "feature_name",
        "usage_count",
    ),
    "churn_events": ("churn_event_id", "account_id", "churn_date", "refund_amount_usd"),
    "support_tickets": ("ticket_id", "account_id"),
}
INTERVALS = {"monthly": "month", "annual": "year"}
BILLING_MONTHS = {"month": 1, "year": 12}
USAGE_EXTRAS = ("subscription_id", "usage_duration_secs", "error_count", "is_beta_feature")
BILLING_COLUMNS = ("event_id", "customer_id", "occurred_at", "type", "plan", "interval", "seats")
BILLING_COLUMNS += ("mrr", "amount", "currency")
STATE = ["mrr", "seats", "plan", "interval"]


# ---------------------------------------------------------------- reading and parsing the export


def fail(message: str, code: int = 2) -> NoReturn:
    """Stop with one line on stderr; 2, like the ``segments`` CLI, for input the user must fix."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(code)


def read_table(path: Path) -> pd.DataFrame:
    """A table as text, empty cells as empty strings: parsing happens here, visibly."""
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        fail(f"{path}: cannot read as CSV: {error}")


def read_export(data: Path) -> dict[str, pd.DataFrame]:
    return {name: read_table(data / f"ravenstack_{name}.csv") for name in TABLES}


def days(values: pd.Series) -> pd.Series:
    parsed = pd.to_datetime(values, format="ISO8601", errors="coerce", utc=True)
    return parsed.dt.tz_localize(None).dt.normalize()


def numbers(values: pd.Series) -> pd.Series:
    return pd.to_numeric(values.str.strip(), errors="coerce")


def is_true(values: pd.Series) -> pd.Series:
    return values.str.strip().str.upper() == "TRUE"


def iso(day: pd.Series) -> pd.Series:
    return day.dt.strftime("%Y-%m-%dT00:00:00Z")


def last_day(tables: dict[str, pd.DataFrame]) -> pd.Timestamp:
    """The last day any mapped table mentions: the as-of date of the run."""
    subscriptions = tables["subscriptions"]
    columns = [
        subscriptions["start_date"],
        subscriptions["end_date"],
        tables["feature_usage"]["usage_date"],
        tables["churn_events"]["churn_date"],
    ]
    return max(days(column).max() for column in columns)


# ---------------------------------------------------------------- subscriptions -> billing events


def parse_subscriptions(subscriptions: pd.DataFrame) -> pd.DataFrame:
    """Typed subscription rows plus ``problem``: why a row cannot go on the timeline ('' if none)."""
    rows = subscriptions.assign(
        start=days(subscriptions["start_date"]),
        end=days(subscriptions["end_date"]),
        seats_n=numbers(subscriptions["seats"]),
        mrr_n=numbers(subscriptions["mrr_amount"]),
        interval=subscriptions["billing_frequency"].str.strip().str.lower().map(INTERVALS),
    )
    checks = [
        ("missing account_id", rows["account_id"].str.strip() == ""),
        ("invalid start_date", rows["start"].isna()),
        ("missing plan_tier", rows["plan_tier"].str.strip() == ""),
        ("unknown billing_frequency", rows["interval"].isna()),
        ("invalid seats", ~(rows["seats_n"] >= 0) | (rows["seats_n"] % 1 != 0)),
        ("invalid mrr_amount", ~(rows["mrr_n"] >= 0)),
        ("invalid end_date", (rows["end_date"].str.strip() != "") & rows["end"].isna()),
        ("end_date before start_date", rows["end"] < rows["start"]),
    ]
    problem = pd.Series("", index=rows.index)
    for reason, failed in reversed(checks):
        problem = problem.mask(failed, reason)
    return rows.assign(problem=problem)


# End-date problems are the adapter's own: the contract would accept the row as a start, so such a
# row is counted as unmapped instead of being sent.
ADAPTER_ONLY_PROBLEMS = ("invalid end_date", "end_date before start_date")


def account_states(rows: pd.DataFrame) -> pd.DataFrame:
    """The account's summed subscription state after each day on which one of its rows starts or
    ends, one line per (account, day)."""
    starts = rows[["account_id", "start"]].rename(columns={"start": "day"})
    ends = rows.loc[rows["end"].notna(), ["account_id", "end"]].rename(columns={"end": "day"})
    grid = pd.concat([starts, ends]).drop_duplicates().merge(rows, on="account_id")
    active = grid[
        (grid["start"] <= grid["day"]) & (grid["end"].isna() | (grid["end"] > grid["day"]))
    ]
    annual_mrr = active["mrr_n"].where(active["interval"] == "year", 0.0)
    sums = (
        active.assign(annual_mrr=annual_mrr)
        .groupby(["account_id", "day"])
        .agg(mrr=("mrr_n", "sum"), seats=("seats_n", "sum"), annual_mrr=("annual_mrr", "sum"))
    )
    largest = (
        active.sort_values(["mrr_n", "start", "subscription_id"])
        .groupby(["account_id", "day"])["plan_tier"]
        .last()
    )
    states = sums.assign(
        plan=largest,
        interval=(sums["annual_mrr"] > sums["mrr"] / 2).map({True: "year", False: "month"}),
    )
    all_days = grid[["account_id", "day"]].drop_duplicates().set_index(["account_id", "day"])
    return all_days.join(states[STATE]).sort_index().reset_index()


def subscription_events(states: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Canonical subscription_* events from the account states, and the days with no net change."""
    active = states["plan"].notna()
    before = states.groupby("account_id")[STATE].shift()
    was_active = before["plan"].notna()
    changed = ((states[STATE] != before) & ~(states[STATE].isna() & before.isna())).any(axis=1)
    kind = pd.Series("subscription_changed", index=states.index)
    kind = kind.mask(active & ~was_active, "subscription_started")
    kind = kind.mask(~active & was_active, "subscription_canceled")
    emit = changed & (active | was_active)
    events = states[emit].assign(type=kind[emit])
    canceled = events["type"] == "subscription_canceled"
    frame = pd.DataFrame(
        {
            "event_id": "acct-" + events["account_id"] + "-" + events["day"].dt.strftime("%Y%m%d"),
            "customer_id": events["account_id"],
            "occurred_at": iso(events["day"]),
            "type": events["type"],
            "plan": events["plan"],
            "interval": events["interval"],
            "seats": events["seats"].fillna(0).astype(int).astype(str),
            "mrr": events["mrr"].fillna(0).round(2).astype(str),
        }
    )
    frame.loc[canceled, ["plan", "interval"]] = None
    return frame, int((~emit).sum())


def billing_days(start: pd.Timestamp, stop: pd.Timestamp, months: int) -> list[pd.Timestamp]:
    """Period starts ``start + k * months`` (k >= 0) before ``stop``."""
    found, k = [], 0
    while (day := start + pd.DateOffset(months=k * months)) < stop:
        found.append(day)
        k += 1
    return found


def invoices(rows: pd.DataFrame, data_end: pd.Timestamp) -> pd.DataFrame:
    """One ``invoice_paid`` per billing period of every paid subscription row."""
    paid = rows[rows["mrr_n"] > 0]
    records = []
    for row in paid.itertuples():
        months = BILLING_MONTHS[row.interval]
        stop = row.end if pd.notna(row.end) else data_end
        for k, day in enumerate(billing_days(row.start, stop, months)):
            records.append(
                (f"inv-{row.subscription_id}-{k}", row.account_id, day, row.mrr_n * months)
            )
    frame = pd.DataFrame(records, columns=["event_id", "customer_id", "day", "amount"])
    return pd.DataFrame(
        {
            "event_id": frame["event_id"],
            "customer_id": frame["customer_id"],
            "occurred_at": iso(pd.to_datetime(frame["day"])),
            "type": "invoice_paid",
            "amount": frame["amount"].round(2).astype(str),
        }
    )


def unplaceable_subscriptions(rows: pd.DataFrame) -> pd.DataFrame:
    """Rows the timeline cannot use, sent as they are so that the contract names the defect."""
    return pd.DataFrame(
        {
            "event_id": "sub-" + rows["subscription_id"],
            "customer_id": rows["account_id"],
            "occurred_at": rows["start_date"],
            "type": "subscription_started",
            "plan": rows["plan_tier"],
            "interval": rows["interval"].fillna(rows["billing_frequency"]),
            "seats": rows["seats"],
            "mrr": rows["mrr_amount"],
        }
    )


def refunds(churn: pd.DataFrame) -> pd.DataFrame:
    """``refund_issued`` per churn event with a refund; a non-numeric or negative amount is kept
    as it is, so that ingestion quarantines it."""
    sent = churn[numbers(churn["refund_amount_usd"]) != 0]
    return pd.DataFrame(
        {
            "event_id": sent["churn_event_id"],
            "customer_id": sent["account_id"],
            "occurred_at": sent["churn_date"],
            "type": "refund_issued",
            "amount": sent["refund_amount_usd"],
        }
    )


def to_billing(parts: list[pd.DataFrame]) -> pd.DataFrame:
    billing = pd.concat(parts, ignore_index=True).assign(currency="USD")
    return billing.reindex(columns=BILLING_COLUMNS).astype("string")


# ---------------------------------------------------------------- feature usage -> usage events


def to_usage(usage: pd.DataFrame, subscriptions: pd.DataFrame) -> pd.DataFrame:
    account_of = subscriptions.drop_duplicates("subscription_id").set_index("subscription_id")
    customer = usage["subscription_id"].map(account_of["account_id"]).fillna("")
    frame = pd.DataFrame(
        {
            "event_id": "fu-" + usage["usage_id"] + "-" + usage["subscription_id"],
            "customer_id": customer,
            "occurred_at": usage["usage_date"],
            "event": "feature_used",
            "feature": usage["feature_name"],
            "quantity": usage["usage_count"],
        }
    )
    extras = usage[[c for c in USAGE_EXTRAS if c in usage.columns]]
    return pd.concat([frame, extras], axis=1).astype("string")


# ---------------------------------------------------------------- what was mapped, what was not


def first_day(billing: pd.DataFrame, kind: str) -> pd.Series:
    """Per customer, the first day of a billing event type."""
    chosen = billing[billing["type"] == kind]
    return days(chosen["occurred_at"]).groupby(chosen["customer_id"]).min()


def noteworthy(
    tables: dict[str, pd.DataFrame], rows: pd.DataFrame, billing: pd.DataFrame
) -> dict[str, int]:
    """Counts of rows that were sent but say something odd about the export."""
    subs, usage, churn = tables["subscriptions"], tables["feature_usage"], tables["churn_events"]
    sub_start = rows.drop_duplicates("subscription_id").set_index("subscription_id")["start"]
    refund = billing[billing["type"] == "refund_issued"]
    first_invoice = refund["customer_id"].map(first_day(billing, "invoice_paid"))
    ended = rows[rows["end"].notna()]
    ends = set(zip(ended["account_id"], ended["end"], strict=True))
    churn_days = zip(churn["account_id"], days(churn["churn_date"]), strict=True)
    return {
        "usage rows dated before their subscription started": int(
            (days(usage["usage_date"]) < usage["subscription_id"].map(sub_start)).sum()
        ),
        "usage_ids on more than one row (event_id adds subscription_id)": int(
            (usage.groupby("usage_id").size() > 1).sum()
        ),
        "refunds dated before the account's first invoice": int(
            (days(refund["occurred_at"]) < first_invoice).sum()
        ),
        "churn events on a day one of the account's subscriptions ends": sum(
            key in ends for key in churn_days
        ),
        "subscription rows with arr_amount != 12 * mrr_amount": int(
            (numbers(subs["arr_amount"]) != 12 * numbers(subs["mrr_amount"])).sum()
        ),
    }


def not_sent(tables: dict[str, pd.DataFrame], rows: pd.DataFrame) -> dict[str, int]:
    """Counts of what has no canonical event: nothing leaves without being counted here."""
    subs, churn = tables["subscriptions"], tables["churn_events"]
    return {
        "subscription rows that cannot be placed (end date)": int(
            rows["problem"].isin(ADAPTER_ONLY_PROBLEMS).sum()
        ),
        "subscription upgrade_flag TRUE (no before-value, no date)": int(
            is_true(subs["upgrade_flag"]).sum()
        ),
        "subscription downgrade_flag TRUE (no before-value, no date)": int(
            is_true(subs["downgrade_flag"]).sum()
        ),
        "subscription auto_renew_flag TRUE (no column)": int(
            is_true(subs["auto_renew_flag"]).sum()
        ),
        "churn events with a zero refund (no money moved)": int(
            (numbers(churn["refund_amount_usd"]) == 0).sum()
        ),
        "churn events: reason, feedback, reactivation (no column)": len(churn),
        "support tickets (no support stream)": len(tables["support_tickets"]),
        "accounts: firmographics (not ingested), churn_flag (held out)": len(tables["accounts"]),
    }


# ---------------------------------------------------------------- the segments CLI


def segments_command() -> list[str]:
    script = Path(sys.executable).with_name("segments")
    return [str(script)] if script.exists() else [sys.executable, "-m", "pipelines"]


def segments(args: list[str], home: Path) -> str:
    """Run ``segments ARGS`` with ``SEGMENTS_HOME=home``; stop with its message if it fails."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")
    }
    print(f"$ segments {' '.join(args)}", flush=True)
    result = subprocess.run(
        [*segments_command(), *args],
        capture_output=True,
        text=True,
        env={**env, "SEGMENTS_HOME": str(home)},
        check=False,
    )
    if result.returncode:
        fail(f"segments {args[0]} failed: {result.stderr.strip()}", result.returncode)
    return result.stdout


def write_events(billing: pd.DataFrame, usage: pd.DataFrame, out: Path, fmt: str) -> list[Path]:
    paths = [out / f"billing_events.{fmt}", out / f"usage_events.{fmt}"]
    for frame, path in zip((billing, usage), paths, strict=True):
        write_table(frame, path)
    return paths


@dataclass
class SegmentsRun:
    """What the ``segments`` CLI answered."""

    ingested: dict
    features: dict
    trained: dict
    feature_table: pd.DataFrame
    assignments: pd.DataFrame


def run_segments(paths: list[Path], out: Path, home: Path, day: str) -> SegmentsRun:
    """ingest -> features -> train -> assign, through the real CLI, in ``home``."""
    billing, usage = (str(path) for path in paths)
    ingested = segments(["ingest", "--billing", billing, "--usage", usage, "--json"], home)
    features_path, assigned_path = out / "features.parquet", out / "assignments.csv"
    summary = segments(["features", "--as-of", day, "--out", str(features_path), "--json"], home)
    trained = json.loads(segments(["train", "--as-of", day, "--json"], home))
    version = ["--model-version", trained["model_version"]]
    segments(["assign", "--in", str(features_path), "--out", str(assigned_path), *version], home)
    return SegmentsRun(
        json.loads(ingested),
        json.loads(summary),
        trained,
        pd.read_parquet(features_path),
        pd.read_csv(assigned_path, dtype={"customer_id": str}),
    )


# ---------------------------------------------------------------- evaluation and report


def churn_by_segment(result: SegmentsRun, tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Per discovered segment: the service's profile plus the held-out churn labels."""
    accounts = tables["accounts"].set_index("account_id")
    churned_event = accounts.index.isin(tables["churn_events"]["account_id"])
    labels = pd.DataFrame(
        {"churn_flag": is_true(accounts["churn_flag"]), "churn_event": churned_event},
        index=accounts.index,
    )
    annual = result.feature_table.set_index("customer_id")["is_annual"]
    joined = result.assignments.join(labels, on="customer_id").join(annual, on="customer_id")
    per_segment = joined.groupby("segment_id").agg(
        customers=("customer_id", "size"),
        annual=("is_annual", "mean"),
        churn_flag=("churn_flag", "mean"),
        churn_event=("churn_event", "mean"),
    )
    profile = pd.DataFrame(result.trained["segments"]).set_index("id")
    return profile.join(per_segment, how="outer")


def print_mapping(source: dict[str, int], report: dict[str, dict[str, int]]) -> None:
    print("source: " + ", ".join(f"{name} {count:,}" for name, count in source.items()))
    for title, counts in report.items():
        print(f"{title}:")
        for what, count in counts.items():
            print(f"  {what}: {count:,}")


def print_ingest(ingested: dict) -> None:
    for stream, counts in ingested.items():
        print(
            f"{stream}: received {counts['received']:,}, accepted {counts['accepted']:,}, "
            f"duplicates {counts['duplicates']:,}, quarantined {counts['quarantined']:,} "
            f"{counts['reasons']}"
        )
        if counts["unknown_columns"]:
            print(f"  ignored columns: {', '.join(counts['unknown_columns'])}")


def print_features(day: str, summary: dict, table: pd.DataFrame, accounts: pd.Series) -> None:
    features = table.drop(columns=["customer_id", "features_as_of"], errors="ignore")
    constant = [name for name in features if features[name].nunique() <= 1]
    print(
        f"features as of {day} (T = {summary['as_of']}): {summary['customers']:,} customers, "
        f"{summary['features']} features"
    )
    print(f"constant features ({len(constant)}): {', '.join(constant) or '-'}")
    missing = set(accounts) - set(table["customer_id"])
    print(f"accounts without any accepted event (no features, no segment): {len(missing):,}")


def print_segments(trained: dict, segments_table: pd.DataFrame, joined_rate: float) -> None:
    metrics = trained["metrics"]
    status = (
        "champion" if trained["promoted"] else "challenger: " + "; ".join(trained["gate_failures"])
    )
    print(
        f"model version {trained['model_version']} ({status}): {trained['n_segments']} segments, "
        f"silhouette {metrics['silhouette']:.3f}, stability {metrics['stability']:.3f}, "
        f"outliers {metrics['outlier_share']:.1%}, surrogate fidelity "
        f"{metrics['surrogate_fidelity']:.3f}, {trained['seconds']:.0f} s"
    )
    table = pd.DataFrame(
        {
            "segment": segments_table["name"],
            "size": segments_table["size"],
            "MRR share": segments_table["mrr_share"].map("{:.1%}".format),
            "is_annual": segments_table["annual"].map("{:.1%}".format),
            "churn rate (service)": segments_table["churn_rate"].map("{:.1%}".format),
            "churn_flag rate": segments_table["churn_flag"].map("{:.1%}".format),
            "churn-event rate": segments_table["churn_event"].map("{:.1%}".format),
        }
    )
    print(table.to_string())
    print(f"all customers: churn_flag rate {joined_rate:.1%}")
    differ = segments_table[segments_table["size"] != segments_table["customers"]]
    if len(differ):
        print(f"note: `assign` and `train` disagree on the size of segment(s) {list(differ.index)}")


def print_churn_test(assignments: pd.DataFrame, tables: dict[str, pd.DataFrame]) -> None:
    flags = tables["accounts"].set_index("account_id")["churn_flag"].pipe(is_true)
    crosstab = pd.crosstab(assignments["segment_id"], assignments["customer_id"].map(flags))
    if crosstab.shape[0] < 2 or crosstab.shape[1] < 2:
        print("churn_flag vs segment: not testable (one segment or one class)")
        return
    chi2, p, dof, _ = chi2_contingency(crosstab)
    print(f"churn_flag vs segment: chi-square {chi2:.2f}, dof {dof}, p = {p:.3f}")


# ---------------------------------------------------------------- command line


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help=f"the export's folder (default: {DEFAULT_DATA})")
    parser.add_argument("--out", type=Path, help="folder for the event files (default: temporary)")
    parser.add_argument("--home", type=Path, help="SEGMENTS_HOME (default: a temporary folder)")
    parser.add_argument("--format", choices=("parquet", "csv"), default="parquet")
    return parser


def argument_problem(args: argparse.Namespace) -> str | None:
    """What is wrong with the arguments, in one line; None when nothing is."""
    if not args.data.is_dir():
        return f"--data {args.data}: no such folder"
    missing = [n for n in TABLES if not (args.data / f"ravenstack_{n}.csv").is_file()]
    if missing:
        return f"--data {args.data}: not a RavenStack export, no ravenstack_{missing[0]}.csv"
    for name in ("out", "home"):
        path = getattr(args, name)
        if path is not None and path.exists() and not path.is_dir():
            return f"--{name} {path}: exists and is not a folder"
    return None


def check_columns(tables: dict[str, pd.DataFrame]) -> None:
    for name, required in TABLES.items():
        missing = [c for c in required if c not in tables[name].columns]
        if missing:
            fail(f"ravenstack_{name}.csv lacks column(s) {', '.join(missing)}")


def build_events(
    tables: dict[str, pd.DataFrame], data_end: pd.Timestamp
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, int], pd.DataFrame]:
    rows = parse_subscriptions(tables["subscriptions"])
    placed = rows[rows["problem"] == ""]
    contract_problems = rows[(rows["problem"] != "") & ~rows["problem"].isin(ADAPTER_ONLY_PROBLEMS)]
    subscription, unchanged = subscription_events(account_states(placed))
    billing = to_billing(
        [
            subscription,
            invoices(placed, data_end),
            refunds(tables["churn_events"]),
            unplaceable_subscriptions(contract_problems),
        ]
    )
    usage = to_usage(tables["feature_usage"], tables["subscriptions"])
    kinds = Counter(billing["type"])
    sent = {f"billing {kind}": kinds[kind] for kind in sorted(kinds)}
    sent["  of which unplaceable subscription rows sent as they are"] = len(contract_problems)
    sent["account-days whose subscription changes cancel out (no event)"] = unchanged
    sent["usage feature_used"] = len(usage)
    return billing, usage, sent, rows


def print_results(result: SegmentsRun, tables: dict[str, pd.DataFrame], day: str) -> None:
    print_ingest(result.ingested)
    print_features(day, result.features, result.feature_table, tables["accounts"]["account_id"])
    table = churn_by_segment(result, tables)
    print_segments(result.trained, table, is_true(tables["accounts"]["churn_flag"]).mean())
    print_churn_test(result.assignments, tables)


def run(args: argparse.Namespace, work: Path) -> None:
    tables = read_export(args.data)
    check_columns(tables)
    as_of = last_day(tables)
    billing, usage, sent, rows = build_events(tables, as_of + pd.Timedelta(days=1))
    report = {
        "sent": sent,
        "sent, but noteworthy": noteworthy(tables, rows, billing),
        "not sent (no place in the contract, or no event)": not_sent(tables, rows),
    }
    print_mapping({name: len(frame) for name, frame in tables.items()}, report)
    out, home = args.out or work / "events", args.home or work / "home"
    paths = write_events(billing, usage, out, args.format)
    print(f"events written to {out}; SEGMENTS_HOME={home}")
    day = as_of.strftime("%Y-%m-%d")
    print_results(run_segments(paths, out, home, day), tables, day)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.data is None:
        if not DEFAULT_DATA.is_dir():
            fail(
                f"the RavenStack export is expected in {DEFAULT_DATA}; "
                "pass --data DIR with its ravenstack_*.csv files"
            )
        args.data = DEFAULT_DATA
    problem = argument_problem(args)
    if problem:
        parser.error(problem)
    with tempfile.TemporaryDirectory() as tmp:
        run(args, Path(tmp))
    return 0


if __name__ == "__main__":
    sys.exit(main())
