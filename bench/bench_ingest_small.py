"""Events over HTTP one at a time: ``POST /v1/events`` with one event per request, as a CRM's
webhook or a product's event hook sends them, from many concurrent senders.

    python bench/bench_ingest_small.py [--requests 2000] [--senders 50] [--customers 1000]

A real ``uvicorn`` on loopback serves a trained demo home (``bench_ingest_http``'s setup). Each
sender keeps one connection and sends its share of the requests back to back. Printed: requests
a second over the whole run, p50/p99 per request, and the server's CPU per request, split into
its event loop (main thread), its other threads, and the ingestion process it started.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pandas as pd
from _common import OUT_DIR
from bench_ingest_http import (
    HEADERS,
    KEYS,
    children,
    cpu_seconds,
    percentile,
    served_copy,
    server,
    thread_cpu_seconds,
    warm_up,
)
from bench_service import prepared_home

from feature_store.layout import StoreLayout
from feature_store.offline_store import MANIFEST_SUFFIX, OfflineStore, read_manifest


def one_event_bodies(customers: list[str], count: int, seed: int = 0) -> list[bytes]:
    rng = random.Random(seed)
    now = datetime.now(UTC).replace(microsecond=0)
    bodies = []
    for n in range(count):
        when = (now - timedelta(minutes=rng.randrange(1, 20 * 1440))).isoformat()
        event = {"event_id": f"one-{seed}-{n}", "customer_id": rng.choice(customers),
                 "occurred_at": when, "event": rng.choice(["login", "api_call", "feature_used"])}  # fmt: skip
        bodies.append(json.dumps({"usage": [event]}).encode())
    return bodies


def send(
    url: str,
    bodies: list[bytes],
    latencies: list[float],
    finished: list[float],
    failures: list[str],
    keyed: bool,
) -> None:
    with httpx.Client(base_url=url, headers=HEADERS, timeout=120) as http:
        for body in bodies:
            # a key per request, as a client making its retries safe sends it
            headers = {"Idempotency-Key": hashlib.sha256(body).hexdigest()} if keyed else {}
            started = time.perf_counter()
            response = http.post("/v1/events", content=body, headers=headers)
            latencies.append((time.perf_counter() - started) * 1000)
            finished.append(time.perf_counter())
            if response.status_code != 200 or response.json()["accepted"] != 1:
                failures.append(f"{response.status_code} {response.text[:200]}")


def run(url: str, pid: int, bodies: list[bytes], senders: int, keyed: bool) -> dict:
    child = children(pid)
    before = cpu_seconds(pid), thread_cpu_seconds(pid), [cpu_seconds(c) for c in child]
    latencies: list[float] = []
    finished: list[float] = []
    failures: list[str] = []
    threads = [
        threading.Thread(
            target=send, args=(url, bodies[n::senders], latencies, finished, failures, keyed)
        )
        for n in range(senders)
    ]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    main_thread = thread_cpu_seconds(pid).get(pid, 0.0) - before[1].get(pid, 0.0)
    served = cpu_seconds(pid) - before[0]
    ingesting = sum(cpu_seconds(c) for c in child) - sum(before[2])
    count = len(bodies)
    # the rate in the first and the last fifth of the requests: the store holds more parts as a
    # run goes on (parts replaced by a merge stay for its grace period), and listing them is work
    ends = sorted(finished)
    fifth = max(count // 5, 1)
    first_rate = fifth / (ends[fifth - 1] - started)
    last_rate = fifth / (ends[-1] - ends[-fifth - 1])
    return {
        "requests": count,
        "senders": senders,
        "idempotency_keys": keyed,
        "failures": len(failures),
        "first_failure": failures[0] if failures else None,
        "requests_per_second": count / seconds,
        "first_fifth_requests_per_second": first_rate,
        "last_fifth_requests_per_second": last_rate,
        "p50_ms": percentile(latencies, 50),
        "p99_ms": percentile(latencies, 99),
        "event_loop_ms_per_request": 1000 * main_thread / count,
        "other_threads_ms_per_request": 1000 * (served - main_thread) / count,
        "ingestion_process_ms_per_request": 1000 * ingesting / count,
    }


def globbed_listing(store: OfflineStore, stream: str) -> tuple[list[Path], dict]:
    """The listing before 2026-12-07 (tenth session), for comparison: two globs of Path objects,
    sorted, and every manifest read on each call."""
    directory = store.layout.stream_dir(stream)
    parts = sorted(directory.glob("*.parquet"))
    names = {part.name for part in parts}
    replaced = {}
    for path in sorted(directory.glob(f"*{MANIFEST_SUFFIX}")):
        manifest = read_manifest(path)
        if manifest is not None and manifest.part in names:
            replaced[manifest.part] = manifest.replaces
    hidden = frozenset().union(*replaced.values())
    return [part for part in parts if part.name not in hidden], replaced


def listing_ms(home: Path, rounds: int = 30) -> dict:
    """Milliseconds per listing of the usage parts the run left, each way, alternating."""
    store = OfflineStore(StoreLayout(home))
    assert store.listing("usage") == globbed_listing(store, "usage")
    timings: dict[str, list[float]] = {"scandir": [], "glob": []}
    for _ in range(rounds):
        for name, listing in (("scandir", store.listing), ("glob", globbed_listing)):
            started = time.perf_counter()
            listing("usage") if name == "scandir" else listing(store, "usage")
            timings[name].append((time.perf_counter() - started) * 1000)
    files = len(list(store.layout.stream_dir("usage").iterdir()))
    return {"files": files, **{name: min(values) for name, values in timings.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1000)
    parser.add_argument("--months", type=int, default=12)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--senders", type=int, default=50)
    parser.add_argument(
        "--idempotency-keys", action="store_true", help="send an Idempotency-Key with each request"
    )
    args = parser.parse_args()

    prepared = prepared_home(args.customers, args.months)
    customers = sorted(pd.read_parquet(prepared / "features.parquet")["customer_id"].astype(str))
    port, url, env = served_copy(prepared, OUT_DIR / "ingest-small", KEYS)
    command = [sys.executable, "-m", "uvicorn", "--factory", "service.app:app_from_environment"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    with server(command, env, url, OUT_DIR / "ingest-small" / "serve.log") as pid:
        warm_up(url, customers[0])
        bodies = one_event_bodies(customers, args.requests)
        result = run(url, pid, bodies, args.senders, args.idempotency_keys)
    result["listing_ms"] = listing_ms(OUT_DIR / "ingest-small" / "home")
    print(json.dumps(result, indent=2))
    print(
        f"\none event per request, {result['senders']} senders"
        f"{', each with an Idempotency-Key' if result['idempotency_keys'] else ''}: "
        f"{result['requests_per_second']:,.0f} requests/s, p50 {result['p50_ms']:.0f} ms, "
        f"p99 {result['p99_ms']:.0f} ms, {result['failures']} failures (first fifth "
        f"{result['first_fifth_requests_per_second']:,.0f}/s, last fifth "
        f"{result['last_fifth_requests_per_second']:,.0f}/s); CPU per request: event "
        f"loop {result['event_loop_ms_per_request']:.2f} ms, other threads "
        f"{result['other_threads_ms_per_request']:.2f} ms, ingestion process "
        f"{result['ingestion_process_ms_per_request']:.2f} ms"
    )
    listed = result["listing_ms"]
    print(
        f"listing the {listed['files']:,} files of the usage parts' folder: {listed['scandir']:.1f} "
        f"ms (one scandir, manifests kept) against {listed['glob']:.1f} ms (two globs, every "
        f"manifest read), {listed['glob'] / listed['scandir']:.1f}x"
    )


if __name__ == "__main__":
    main()
