"""A burst of large concurrent ingestion requests: one worker's memory with the bound on the bytes
of ingestion bodies it holds (``SEGMENTS_INGEST_MAX_BYTES_IN_FLIGHT``, default 32 MiB) and
without it, side by side in one run.

    python bench/bench_ingest_admission.py [--requests 120] [--events 5000]

``segments serve`` (one worker) on loopback serves a trained demo home; ``--requests`` clients
each post ``--events`` new usage events at once (about 4 MB a body, as a CRM's full request), and
a sampler reads the resident memory of the service and of its ingestion process from ``/proc``
every 50 ms. Each run starts from a fresh copy of the home. Printed per run: the answers by
status and problem code, the peak resident memory of the service and of the whole process tree,
and the time the burst took; then the ratios. Peak memory is what the bound is for; on a shared
machine it moves less than time does.

A review found 360 concurrent requests of 4 MB holding 1.6-2.3 GB per worker: each body was
parsed before the ingestion process's own bound could refuse it (``docs/service.md``).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import sys
import threading
import time
import uuid
from pathlib import Path

import httpx
from _common import OUT_DIR
from bench_ingest_http import children, resident_mb, served_copy, server
from bench_service import prepared_home

KEYS = {"bench": ["ingest"]}
HEADERS = {"X-API-Key": "bench", "content-type": "application/json"}
UNBOUNDED = str(10**12)


def body(request: int, events: int) -> bytes:
    """``events`` new usage events, ids long as a CRM's (a uuid and a source prefix)."""
    run = uuid.uuid4().hex
    rows = [
        {
            "event_id": f"crm-{run}-{request}-{n}-{'x' * 120}",
            "customer_id": f"cus_{n % 1000:06d}",
            "occurred_at": "2026-06-29T10:00:00Z",
            "event": "feature_used",
            "feature": "f" * 200,
            "user_id": "u" * 150,
        }
        for n in range(events)
    ]
    return json.dumps({"usage": rows}).encode()


def sample(pid: int, stop: threading.Event, peaks: dict[str, float]) -> None:
    while not stop.is_set():
        service = resident_mb(pid) or 0.0
        tree = service + sum(resident_mb(child) or 0.0 for child in children(pid))
        peaks["service"] = max(peaks.get("service", 0.0), service)
        peaks["tree"] = max(peaks.get("tree", 0.0), tree)
        time.sleep(0.05)


async def burst(url: str, bodies: list[bytes]) -> dict[str, int]:
    answers: collections.Counter[str] = collections.Counter()
    limits = httpx.Limits(max_connections=len(bodies))
    async with httpx.AsyncClient(base_url=url, timeout=600, limits=limits) as client:

        async def one(content: bytes) -> None:
            try:
                response = await client.post("/v1/events", content=content, headers=HEADERS)
            except httpx.HTTPError as error:
                answers[f"error {type(error).__name__}"] += 1
                return
            code = response.json().get("code", "") if response.status_code != 200 else ""
            answers[f"{response.status_code} {code}".strip()] += 1

        await asyncio.gather(*(one(content) for content in bodies))
    return dict(answers)


def run(prepared: Path, bound: str | None, bodies: list[bytes], name: str) -> dict:
    work = OUT_DIR / "ingest-admission" / name
    port, url, env = served_copy(prepared, work, KEYS)
    env["SEGMENTS_INGEST_PROCESS_AT_START"] = "true"
    if bound is not None:
        env["SEGMENTS_INGEST_MAX_BYTES_IN_FLIGHT"] = bound
    # the server as shipped (`segments serve`: its h11 protocol closes a connection answered
    # before its body arrived, as a refused burst is), one worker
    command = [sys.executable, "-m", "pipelines", "serve", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--workers", "1"]
    with server(command, env, url, work / "serve.log") as pid:
        time.sleep(3.0)  # the ingestion process imports
        idle = resident_mb(pid) or 0.0
        peaks: dict[str, float] = {}
        stop = threading.Event()
        sampler = threading.Thread(target=sample, args=(pid, stop, peaks), daemon=True)
        sampler.start()
        started = time.perf_counter()
        answers = asyncio.run(burst(url, bodies))
        seconds = time.perf_counter() - started
        stop.set()
        sampler.join()
    return {"answers": answers, "idle_mb": idle, "peak_mb": peaks, "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=120, help="concurrent requests")
    parser.add_argument("--events", type=int, default=5000, help="events per request")
    args = parser.parse_args()
    prepared = prepared_home(1000, 12)
    bodies = [body(n, args.events) for n in range(args.requests)]
    print(f"{args.requests} requests of {len(bodies[0]) / 1e6:.1f} MB, at once, one worker")
    results = {
        "load_average_before": os.getloadavg(),
        "bounded": run(prepared, None, bodies, "bounded"),
        "unbounded": run(prepared, UNBOUNDED, bodies, "unbounded"),
        "load_average_after": os.getloadavg(),
    }
    print(json.dumps(results, indent=2))
    bounded, unbounded = results["bounded"], results["unbounded"]
    for label, figure in (("service", "service"), ("service and ingestion process", "tree")):
        ratio = bounded["peak_mb"][figure] / unbounded["peak_mb"][figure]
        print(
            f"peak resident memory, {label}: {bounded['peak_mb'][figure]:,.0f} MB bounded, "
            f"{unbounded['peak_mb'][figure]:,.0f} MB unbounded ({ratio:.2f} times)"
        )
    print(
        f"burst: {bounded['seconds']:.1f} s bounded, {unbounded['seconds']:.1f} s unbounded; "
        f"answers bounded {bounded['answers']}, unbounded {unbounded['answers']}"
    )


if __name__ == "__main__":
    main()
