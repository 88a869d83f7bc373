"""Feature computation: DuckDB vs Spark local mode on the same Parquet events.

    python bench/bench_spark.py [--events 10000000] [--master 'local[*]'] [--driver-memory 6g]

Spark runs twice: on the store's parts (checked when ingested) and on the same parts read as a
lake's, held to the events contract with one row per event id after a counting pass, as
`segments features --engine spark --billing-source ... --usage-source ...` reads a lake.

The events are the demo company of ``bench_features.py`` (100,000 customers, 12 months, about 10.4M
usage events); larger inputs repeat it with renamed customers and events (so 50M events means
about 480,000 customers), written as further Parquet files. Both engines read the same files;
each runs in its own process, and the two feature tables are compared value by value before any
time counts. Spark's time is split into starting the session and the job (features computed and
written as Parquet); DuckDB's is the feature table in memory, as ``segments features`` builds it.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from datetime import datetime
from pathlib import Path

from _common import OUT_DIR, demo_data, run_child

AS_OF = datetime(2026, 7, 1)
BASE_CUSTOMERS, BASE_MONTHS = 100_000, 12


def prepare(events: int) -> tuple[Path, int]:
    """A store home whose offline store holds enough copies of the demo events; usage rows."""
    import pyarrow.parquet as pq

    base = demo_data(BASE_CUSTOMERS, BASE_MONTHS)
    base_rows = pq.ParquetFile(base / "usage_events.parquet").metadata.num_rows
    copies = max(1, round(events / base_rows))
    home = OUT_DIR / f"spark-home-{copies}x"
    for stream in ("billing", "usage"):
        folder = home / "offline" / "events" / stream
        folder.mkdir(parents=True, exist_ok=True)
        for copy in range(copies):
            _write_copy(base / f"{stream}_events.parquet", folder / f"copy{copy:03d}.parquet", copy)
    return home, base_rows * copies


def _write_copy(source: Path, target: Path, copy: int) -> None:
    """The demo events with customer and event ids made distinct for this copy."""
    import duckdb

    if target.exists():
        return
    suffix = f"-r{copy}"
    duckdb.connect().execute(
        f"COPY (SELECT * REPLACE (customer_id || '{suffix}' AS customer_id, "
        f"event_id || '{suffix}' AS event_id) FROM '{source}') TO '{target}' "
        "(FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 262144)"
    )


def _own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _process_cpu_seconds(pid: int) -> float:
    """CPU time of another process (user + system), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_duckdb(home: Path, out: Path, master: str, memory: str) -> dict:
    from feature_store.layout import StoreLayout
    from pipelines.feature_pipeline import build_features

    started, cpu = time.perf_counter(), _own_cpu_seconds()
    table = build_features(StoreLayout(home), AS_OF)
    seconds, cpu = time.perf_counter() - started, _own_cpu_seconds() - cpu
    table.to_parquet(out)
    return {"seconds": seconds, "cpu_seconds": cpu, "customers": len(table)}


def run_spark(home: Path, out: Path, master: str, memory: str, lake: bool = False) -> dict:
    """``lake``: the same parts read as a lake's (checked against the events contract, one row
    per event id) after the pass `segments features --engine spark` makes over a lake first
    (``examine_events_spark``); the store's own parts skip both."""
    from feature_store.layout import StoreLayout
    from feature_store.offline_store import OfflineStore
    from feature_store.spark_engine import (
        build_features_spark,
        examine_events_spark,
        spark_session,
        store_event_sources,
    )

    started = time.perf_counter()
    spark = spark_session(
        master, config={"spark.driver.memory": memory, "spark.ui.showConsoleProgress": "false"}
    )
    spark.sparkContext.setLogLevel("ERROR")
    session_seconds = time.perf_counter() - started
    jvm = spark.sparkContext._gateway.proc.pid  # the driver JVM runs every task in local mode
    started, cpu = time.perf_counter(), _process_cpu_seconds(jvm)
    sources = store_event_sources(OfflineStore(StoreLayout(home)))
    if lake:
        sources = {stream: list(parts) for stream, parts in sources.items()}
        examined = examine_events_spark(spark, sources)
        assert not examined.left_out, examined  # the store's rows are valid and unique
        assert not examined.repeated, examined
    build_features_spark(spark, sources, AS_OF).write.mode("overwrite").parquet(str(out))
    seconds, cpu = time.perf_counter() - started, _process_cpu_seconds(jvm) - cpu
    cores = spark.sparkContext.defaultParallelism
    spark.stop()
    return {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "session_seconds": session_seconds,
        "cores": cores,
    }


def run_spark_lake(home: Path, out: Path, master: str, memory: str) -> dict:
    return run_spark(home, out, master, memory, lake=True)


def compare(duck: Path, spark: Path) -> float:
    """Largest relative difference over every feature; raises when the customers differ."""
    import numpy as np
    import pandas as pd

    from feature_store.registry import FEATURE_NAMES

    ours = pd.read_parquet(duck).set_index("customer_id")
    theirs = pd.read_parquet(spark).set_index("customer_id").sort_index()
    assert list(ours.index) == list(theirs.index), "customer sets differ"
    a, b = ours[list(FEATURE_NAMES)].to_numpy(float), theirs[list(FEATURE_NAMES)].to_numpy(float)
    return float(np.max(np.abs(a - b) / np.maximum(1.0, np.abs(a))))


def report(
    events: int, duck: dict, spark: dict, difference: float, lake: dict | None = None
) -> None:
    """Wall time, and CPU time: on a shared machine the events per CPU-second are the steadier
    per-core rate (what a cluster of idle cores would reach, less scheduling overhead)."""
    print(f"usage events: {events:,}  customers: {duck['customers']:,}  as of {AS_OF:%Y-%m-%d}")
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the end")
    print(f"{'engine':<22}{'wall s':>9}{'CPU s':>9}{'events/CPU-s':>14}")
    spark_label = f"spark local ({spark['cores']} cores)"
    for label, result in (("duckdb", duck), (spark_label, spark)):
        rate = events / result["cpu_seconds"]
        print(f"{label:<22}{result['seconds']:>9.2f}{result['cpu_seconds']:>9.1f}{rate:>14,.0f}")
    print(f"{'  + session start':<22}{spark['session_seconds']:>9.2f}")
    print(
        f"ratio spark / duckdb: wall {spark['seconds'] / duck['seconds']:.1f}x, "
        f"CPU {spark['cpu_seconds'] / duck['cpu_seconds']:.1f}x"
    )
    print(f"max relative difference over every feature: {difference:.1e}")
    if lake is not None:
        rate = events / lake["cpu_seconds"]
        print(
            f"{'spark, read as a lake':<22}{lake['seconds']:>9.2f}{lake['cpu_seconds']:>9.1f}"
            f"{rate:>14,.0f}"
        )
        print(
            f"ratio lake / store on spark: wall {lake['seconds'] / spark['seconds']:.1f}x, "
            f"CPU {lake['cpu_seconds'] / spark['cpu_seconds']:.1f}x (contract checks, one row "
            "per event id, and the counting pass first)"
        )


RUNNERS = {"duckdb": run_duckdb, "spark": run_spark, "spark-lake": run_spark_lake}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--master", default="local[*]")
    parser.add_argument("--driver-memory", default="6g")
    parser.add_argument("--one", choices=sorted(RUNNERS), help=argparse.SUPPRESS)
    parser.add_argument("--home", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        result = RUNNERS[args.one](args.home, args.out, args.master, args.driver_memory)
        print(json.dumps(result))
        return
    home, events = prepare(args.events)
    outputs = {name: OUT_DIR / f"features-{name}-{home.name}.parquet" for name in RUNNERS}
    common = [f"--home={home}", f"--master={args.master}", f"--driver-memory={args.driver_memory}"]
    results = {
        name: run_child(Path(__file__), [f"--one={name}", f"--out={outputs[name]}", *common])
        for name in RUNNERS
    }
    difference = compare(outputs["duckdb"], outputs["spark"])
    lake_difference = compare(outputs["duckdb"], outputs["spark-lake"])
    report(events, results["duckdb"], results["spark"], difference, results["spark-lake"])
    print(f"max relative difference, read as a lake: {lake_difference:.1e}")
    sys.exit(0 if max(difference, lake_difference) < 1e-9 else 1)


if __name__ == "__main__":
    main()
