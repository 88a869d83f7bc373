"""Ingestion of one large gzipped CSV under memory limits, beside DuckDB's own limit.

    python bench/bench_memory_limit.py [--rows 6000000] [--limits none,4GiB,2GB,1GB,512MB]

Writes ``--rows`` paid invoices of 50,000 customers as a gzipped canonical billing CSV (400 MB
for the default, 34 MB gzipped), then ingests it with ``segments ingest`` into a fresh data home
once per limit (``SEGMENTS_MEMORY_LIMIT``; ``none`` is DuckDB's own limit, 80% of the machine's
memory, what every ingestion had before the limit), each in a process of its own measured by
``/usr/bin/time``: peak resident memory and wall time, and their ratios to ``none``.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from feature_store.engine import MAX_SPILLING_MEMORY


def write_invoices(path: Path, rows: int) -> None:
    with gzip.open(path, "wt", compresslevel=6) as out:
        out.write("event_id,customer_id,occurred_at,type,plan,interval,seats,mrr,amount,currency\n")
        for i in range(rows):
            out.write(
                f"b{i},cus_{i % 50000},2025-0{1 + i % 9}-1{i % 10}T10:00:00Z,"
                "invoice_paid,,,,,49.00,USD\n"
            )


def ingest(data: Path, home: Path, limit: str) -> dict:
    """One ``segments ingest`` in a fresh process: peak MB, seconds and rows accepted."""
    env = {**os.environ, "SEGMENTS_HOME": str(home)}
    env.pop("SEGMENTS_MEMORY_LIMIT", None)
    if limit == "none":
        # the limit DuckDB sets itself, as before: 80% of the machine's memory
        env["SEGMENTS_MEMORY_LIMIT"] = f"{int(0.8 * physical_memory())}B"
    else:
        env["SEGMENTS_MEMORY_LIMIT"] = limit
    segments = Path(sys.executable).with_name("segments")
    result = subprocess.run(
        ["/usr/bin/time", "-f", "%M %e", str(segments), "ingest", "--billing", str(data), "--json"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if result.returncode != 0:
        raise SystemExit(f"ingest under {limit} failed:\n{result.stderr}")
    peak_kb, seconds = result.stderr.strip().splitlines()[-1].split()
    accepted = json.loads(result.stdout)["billing"]["accepted"]
    return {"peak_mb": int(peak_kb) / 1024, "seconds": float(seconds), "accepted": accepted}


def physical_memory() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=6_000_000)
    parser.add_argument("--limits", default="none,4GiB,2GB,1GB,512MB")
    args = parser.parse_args()
    limits = args.limits.split(",")
    print(
        f"default limit on this machine: {MAX_SPILLING_MEMORY / 1024**3:.1f} GiB at most, "
        f"half of {physical_memory() / 1024**3:.1f} GiB"
    )
    with tempfile.TemporaryDirectory() as folder:
        data = Path(folder) / "invoices.csv.gz"
        write_invoices(data, args.rows)
        print(f"{args.rows:,} rows, {data.stat().st_size / 1e6:.0f} MB gzipped")
        results: dict[str, dict] = {}
        for limit in limits:
            home = Path(folder) / f"home-{limit}"
            results[limit] = ingest(data, home, limit)
            shutil.rmtree(home)
    base = results.get("none")
    print(
        f"{'limit':>8} {'peak MB':>9} {'seconds':>8} {'accepted':>10} {'memory x':>9} {'time x':>7}"
    )
    for limit, found in results.items():
        ratios = (
            f"{found['peak_mb'] / base['peak_mb']:>9.2f} {found['seconds'] / base['seconds']:>7.2f}"
            if base
            else ""
        )
        print(
            f"{limit:>8} {found['peak_mb']:>9.0f} {found['seconds']:>8.1f} "
            f"{found['accepted']:>10,} {ratios}"
        )


if __name__ == "__main__":
    main()
