"""The event loop while a large batch is scored: how long the health check waits.

    nice .venv/bin/python bench/bench_event_loop.py [--customers 3000] [--rounds 5]

One worker each, on loopback, side by side in one run: ``segments serve`` as shipped, and the same
command with ``gc.freeze`` made a no-op (what the service did before 2026-12-06, fourth session).
Each round POSTs /v1/score/batch with 1,000 customers explained with ``top_k`` 100 (a 31 KB
request, a 12 MB answer) and, while it runs, GET /health/live every 10 ms on another connection;
it prints the longest and median health wait and the batch's own time. The data home is
``bench_service.py``'s (demo events, features, a champion), made once.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time

import httpx
from _common import OUT_DIR
from bench_service import (
    BENCH_KEY,
    BIN,
    HOST,
    free_port,
    prepared_home,
    served_environment,
    server,
)

# ``segments serve`` with the garbage collector left as it was: everything else the same.
UNFROZEN = (
    "import gc, runpy, sys; gc.freeze = lambda: None; "
    "sys.argv = ['segments', *sys.argv[1:]]; runpy.run_module('pipelines', run_name='__main__')"
)


def round_trip(port: int, items: list[dict], auth: dict[str, str]) -> dict[str, float]:
    url = f"http://{HOST}:{port}"
    answered: list[tuple[int, float]] = []

    def batch() -> None:
        started = time.perf_counter()
        response = httpx.post(
            url + "/v1/score/batch",
            json={"items": items, "explain": True, "top_k": 100},
            headers=auth,
            timeout=300,
        )
        answered.append((response.status_code, time.perf_counter() - started))

    worker = threading.Thread(target=batch)
    worker.start()
    waits = []
    with httpx.Client() as client:
        while worker.is_alive():
            started = time.perf_counter()
            client.get(url + "/health/live")
            waits.append(time.perf_counter() - started)
            time.sleep(0.01)
    worker.join()
    status, seconds = answered[0]
    if status != 200:
        raise SystemExit(f"the batch answered {status}")
    return {"max_wait": max(waits), "median_wait": statistics.median(waits), "batch": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=3000)
    parser.add_argument("--months", type=int, default=18)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    home = prepared_home(args.customers, args.months)
    key = BENCH_KEY
    env = served_environment(home)
    ids = [f"cus_{i:06d}" for i in range(1, args.customers + 1)]
    items = [{"customer_id": ids[i % len(ids)]} for i in range(1000)]
    variants = {
        "segments serve": [str(BIN / "segments")],
        "without gc.freeze": [sys.executable, "-c", UNFROZEN],
    }
    results: dict[str, list[dict[str, float]]] = {}
    for name, command in variants.items():
        port = free_port()
        serve = [*command, "serve", "--port", str(port), "--workers", "1"]
        log = OUT_DIR / f"event-loop-{name.replace(' ', '-')}.log"
        with server(serve, env, f"http://{HOST}:{port}/health/ready", log, 1):
            round_trip(port, items, {"X-API-Key": key})  # warm: explainers built, pages cached
            results[name] = [
                round_trip(port, items, {"X-API-Key": key}) for _ in range(args.rounds)
            ]
    print(f"{args.rounds} rounds each; batch of 1,000 explained customers, top_k 100")
    print("| server | longest health wait, s (median of rounds) | median wait, s | batch, s |")
    print("|---|---:|---:|---:|")
    for name, rounds in results.items():
        longest = statistics.median(r["max_wait"] for r in rounds)
        median = statistics.median(r["median_wait"] for r in rounds)
        batch = statistics.median(r["batch"] for r in rounds)
        print(f"| {name} | {longest:.3f} | {median:.4f} | {batch:.2f} |")
    ours, before = (statistics.median(r["max_wait"] for r in results[n]) for n in variants)
    print(f"longest wait without gc.freeze / with it: {before / ours:.1f}x")


if __name__ == "__main__":
    main()
