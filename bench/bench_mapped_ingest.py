"""Exports of other systems against the same events as a canonical CSV, and the readers'
numbering of rows around malformed lines.

    python bench/bench_mapped_ingest.py [--rows 1000000] [--malformed-share 0.01]

Writes a Recurly Transactions export of ``--rows`` rows (``examples/mappings/recurly.toml``),
``--malformed-share`` of its lines with a field too many, the same events as a canonical billing
CSV (the malformed lines as they are) and as a Stripe export of ``invoice.paid`` events (the
malformed lines cut short); ingests each into a fresh data home in a process of its own
(``segments ingest --mapping``, ``segments ingest`` and ``segments import stripe`` as the CLI runs
them), and prints wall time, peak memory and their ratios to the canonical CSV. Then loads the
canonical file's rows with the readers alone, timing how they number the rows around the
malformed lines (one as-of join).
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import tempfile
import time
from pathlib import Path

from _common import BENCH_DIR, ingestion_figures, peak_rss_mb, run_child

MAPPING = BENCH_DIR.parent / "examples" / "mappings" / "recurly.toml"
KINDS = (("purchase", "success", "invoice_paid"), ("refund", "success", "refund_issued"))


def write_exports(folder: Path, rows: int, malformed_share: float, seed: int = 0) -> None:
    """The Recurly export, the canonical CSV and the Stripe export of the same events, malformed
    lines alike."""
    # Stripe's object shapes as the tests build them (a child process has the tests on its path)
    from test_stripe import event, invoice

    rng = random.Random(seed)
    with (
        (folder / "recurly.csv").open("w", newline="") as recurly_file,
        (folder / "canonical.csv").open("w", newline="") as canonical_file,
        (folder / "stripe.jsonl").open("w") as stripe_file,
    ):
        recurly, canonical = csv.writer(recurly_file), csv.writer(canonical_file)
        recurly.writerow(
            ["transaction_id", "account_code", "type", "status", "amount", "currency", "date"]
        )
        canonical.writerow(["event_id", "customer_id", "occurred_at", "type", "amount", "currency"])
        for i in range(rows):
            kind, status, canonical_type = KINDS[i % 7 == 0]
            amount = f"{rng.uniform(5, 500):.2f}"
            day = f"2025-{1 + i % 12:02d}-{1 + i % 28:02d}"
            extra = ["EXTRA"] if rng.random() < malformed_share else []
            customer = f"a{i % 50_000}"
            recurly.writerow(
                [f"t{i}", customer, kind, status, amount, "USD", f"{day} 11:16:41 PST", *extra]
            )
            canonical.writerow(
                [f"t{i}", customer, f"{day}T19:16:41Z", canonical_type, amount, "USD", *extra]
            )
            paid = {**invoice("2024-06-20", paid=round(float(amount) * 100)), "customer": customer}
            line = json.dumps(event(f"evt_{i}", "invoice.paid", {**paid, "id": f"in_{i}"}))
            stripe_file.write((line[: len(line) // 2] if extra else line) + "\n")


def run_one(approach: str, data: Path, home: Path) -> dict:
    from feature_store.layout import StoreLayout

    started = time.perf_counter()
    if approach == "mapped":
        from feature_store.converted import ingest_converted
        from feature_store.mapping import convert_export, load_mapping

        mapping = load_mapping(MAPPING)
        converted = convert_export(data / "recurly.csv", mapping)
        report = ingest_converted(
            StoreLayout(home), "billing", converted.rows, source_name=str(data / "recurly.csv")
        )
    elif approach == "stripe":
        from feature_store.stripe import import_stripe_export

        _, report = import_stripe_export(StoreLayout(home), data / "stripe.jsonl")
    elif approach == "canonical":
        from feature_store.ingest import ingest_files

        report = ingest_files(StoreLayout(home), {"billing": data / "canonical.csv"})["billing"]
    else:  # the readers alone: how long numbering rows around malformed lines takes
        from feature_store.engine import connect
        from feature_store.readers import load_raw_rows

        con = connect(threads=1)
        raw = load_raw_rows(con, data / "canonical.csv", "raw_billing")
        return {
            "seconds": time.perf_counter() - started,
            "rows": raw.row_count,
            "malformed": raw.malformed_count,
            "peak_rss_mb": peak_rss_mb(),
        }
    return ingestion_figures(started, report)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--malformed-share", type=float, default=0.01)
    parser.add_argument(
        "--one",
        choices=["write", "mapped", "stripe", "canonical", "readers"],
        help=argparse.SUPPRESS,
    )
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--home", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one == "write":
        write_exports(args.data, args.rows, args.malformed_share)
        print(json.dumps({}))
        return
    if args.one:
        print(json.dumps(run_one(args.one, args.data, args.home)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        shape = [f"--rows={args.rows}", f"--malformed-share={args.malformed_share}"]
        run_child(Path(__file__), ["--one=write", f"--data={data}", *shape])
        results = {}
        for approach in ("mapped", "stripe", "canonical", "readers"):
            home = data / f"home-{approach}"
            child = [f"--one={approach}", f"--data={data}", f"--home={home}"]
            results[approach] = run_child(Path(__file__), child)
    canonical, readers = results["canonical"], results["readers"]
    print(f"rows: {args.rows:,}, {args.malformed_share:.0%} of them malformed lines")
    print(
        f"{'approach':<30}{'wall s':>8}{'peak MB':>9}{'received':>11}{'quarantined':>13}"
        f"{'time x':>8}{'memory x':>10}"
    )
    for name, result in (
        ("mapped export (recurly.toml)", results["mapped"]),
        ("Stripe export (import stripe)", results["stripe"]),
        ("canonical CSV", canonical),
    ):
        print(
            f"{name:<30}{result['seconds']:>8.2f}{result['peak_rss_mb']:>9.0f}"
            f"{result['received']:>11,}{result['quarantined']:>13,}"
            f"{result['seconds'] / canonical['seconds']:>8.1f}"
            f"{result['peak_rss_mb'] / canonical['peak_rss_mb']:>10.1f}"
        )
    print(
        f"readers alone (the canonical CSV, rows numbered around {readers['malformed']:,} "
        f"malformed lines): {readers['seconds']:.2f} s, {readers['peak_rss_mb']:.0f} MB"
    )


if __name__ == "__main__":
    main()
