"""The event loop while one customer is scored by 10,000 events: how long the health check waits.

    nice .venv/bin/python bench/bench_score_loop.py [--concurrent 1 16] [--rounds 3]

One worker on loopback. Side by side in one run, the same 10,000 usage events sent as one
``POST /v1/score`` and as a one-item ``POST /v1/score/batch`` (whose items were always validated
in a worker thread), ``--concurrent`` requests at once, while another connection GETs
/health/live every 5 ms; it prints the longest health wait (median of the rounds). Until
2026-12-07 FastAPI validated the score body on the event loop: 0.17-0.24 s for one request, 2.1-3.3
s for 16 at once (a hostile client's probe, on which this bench is modelled). The data home is
``bench_service.py``'s, made once.
"""

from __future__ import annotations

import argparse
import json
import statistics
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


def events(count: int) -> dict[str, list[dict[str, str]]]:
    kinds = ("login", "api_call", "feature_used")
    return {
        "usage": [
            {
                "event_id": f"h{i}",
                "occurred_at": f"2026-{1 + i % 5:02d}-{1 + i % 28:02d}T{i % 24:02d}:00:00Z",
                "event": kinds[i % 3],
                "user_id": f"u{i % 500}",
                "feature": f"f{i % 300}",
            }
            for i in range(count)
        ]
    }


def longest_wait(url: str, path: str, body: bytes, concurrent: int, key: str) -> float:
    """The longest /health/live wait while ``concurrent`` copies of ``body`` are answered."""
    headers = {"X-API-Key": key, "Content-Type": "application/json"}
    statuses: list[int] = []
    done = threading.Event()
    waits: list[float] = []

    def probe() -> None:
        with httpx.Client(timeout=120) as client:
            while not done.is_set():
                started = time.perf_counter()
                client.get(url + "/health/live")
                waits.append(time.perf_counter() - started)
                time.sleep(0.005)

    prober = threading.Thread(target=probe)
    prober.start()
    time.sleep(0.3)

    def send() -> None:
        statuses.append(
            httpx.post(url + path, content=body, headers=headers, timeout=300).status_code
        )

    senders = [threading.Thread(target=send) for _ in range(concurrent)]
    for sender in senders:
        sender.start()
    for sender in senders:
        sender.join()
    done.set()
    prober.join()
    if set(statuses) != {200}:
        raise SystemExit(f"{path} answered {sorted(set(statuses))}")
    return max(waits)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1000)
    parser.add_argument("--months", type=int, default=12)
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--concurrent", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    home = prepared_home(args.customers, args.months)
    sent = events(args.events)
    bodies = {
        "/v1/score": json.dumps({"customer_id": "bench-lead", "events": sent}).encode(),
        "/v1/score/batch (one item)": json.dumps(
            {"items": [{"customer_id": "bench-lead", "events": sent}]}
        ).encode(),
    }
    port = free_port()
    url = f"http://{HOST}:{port}"
    serve = [str(BIN / "segments"), "serve", "--port", str(port), "--workers", "1"]
    results: dict[tuple[str, int], float] = {}
    with server(
        serve, served_environment(home), url + "/health/ready", OUT_DIR / "score-loop.log", 1
    ):
        for concurrent in args.concurrent:
            for name, body in bodies.items():
                path = name.split(" ")[0]
                longest_wait(url, path, body, 1, BENCH_KEY)  # warm
                rounds = [
                    longest_wait(url, path, body, concurrent, BENCH_KEY) for _ in range(args.rounds)
                ]
                results[name, concurrent] = statistics.median(rounds)
    print(
        f"{args.events:,} usage events per request; {args.rounds} rounds, median of each's longest"
    )
    print("| route | requests at once | longest /health/live wait, s |")
    print("|---|---:|---:|")
    for (name, concurrent), wait in results.items():
        print(f"| {name} | {concurrent} | {wait:.3f} |")
    for concurrent in args.concurrent:
        ratio = results["/v1/score", concurrent] / results["/v1/score/batch (one item)", concurrent]
        print(f"{concurrent} at once: score / batch {ratio:.2f}x")


if __name__ == "__main__":
    main()
