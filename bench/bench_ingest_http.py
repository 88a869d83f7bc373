"""Events over HTTP (``POST /v1/events``, batches of 1,000) against file ingestion, and scoring
latency while ingestion runs.

    python bench/bench_ingest_http.py [--customers 1000] [--months 12] [--batches 30] [--senders 2]
                                      [--score-rate 200] [--quiet-seconds 8]

A real ``uvicorn`` on loopback serves a trained demo home (the champion loaded, the online store
filled as of AS_OF). Measured, each with bounded loops:

- HTTP ingestion: ``--batches`` requests of 1,000 new events (90% usage, 10% invoices, demo
  customers) from ``--senders`` clients; events/s over the whole run and p50/p99 per request;
  the online refresh of the touched customers runs in the server as usual;
- scoring by ``customer_id`` all along, from a process of its own at ``--score-rate`` requests a
  second (a CRM's steady load): ``--quiet-seconds`` before the senders start and again after the
  refresh they caused has finished ("idle"), and while they send ("during"). Idle and during come
  from the same run, so that a noisy machine weighs on both alike;
- the same again with new event ids and no scoring client ("ingestion alone"), with the server's
  CPU per 1,000 events, split into its event loop (main thread) and its busiest other thread
  (the ingestion writer), read from ``/proc``: CPU is what a busy shared machine still measures;
- file ingestion of the same events in the same run, in-process: ``ingest_files`` of the same
  1,000-event batches as JSON Lines files, and of all of them as one file.

Goals (issue 12): >= 20,000 events/s over HTTP on 2 cores, p99 <= 250 ms per 1,000-event request,
scoring latency unchanged while ingestion runs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
from _common import OUT_DIR
from bench_service import free_port, prepared_home, wait_ok

KEYS = {"bench": ["ingest", "score"]}
HEADERS = {"X-API-Key": "bench", "content-type": "application/json"}
# After the senders stop, the refresh of the customers they touched runs a second or two more.
SETTLE_SECONDS = 3.0
GOALS = {"events_per_second": 20_000.0, "p99_ms": 250.0}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def batches(
    customers: list[str], count: int, seed: int = 0, prefix: str = "h"
) -> list[dict[str, list[dict]]]:
    """``count`` requests of 1,000 new events each, dated in the last 20 days."""
    rng = random.Random(seed)
    now = datetime.now(UTC).replace(microsecond=0)
    out = []
    for b in range(count):
        usage, billing = [], []
        for i in range(1000):
            when = (now - timedelta(minutes=rng.randrange(1, 20 * 1440))).isoformat()
            customer = rng.choice(customers)
            if i % 10 == 0:
                billing.append(
                    {"event_id": f"{prefix}-{b}-{i}", "customer_id": customer, "occurred_at": when,
                     "type": "invoice_paid", "amount": 49.0, "currency": "EUR"}
                )  # fmt: skip
            else:
                usage.append(
                    {"event_id": f"{prefix}-{b}-{i}", "customer_id": customer, "occurred_at": when,
                     "event": rng.choice(["login", "api_call", "feature_used"]),
                     "user_id": f"{customer}-u{rng.randrange(5)}", "quantity": 1}
                )  # fmt: skip
        out.append({"billing": billing, "usage": usage})
    return out


def score_loop(url: str, customers: list[str], stop: Any, rate: float) -> list[tuple[float, float]]:
    """Scoring by id, one request at a time, ``rate`` a second (as a CRM would: each starts on
    its schedule, or at once when the previous one ran late), until ``stop`` is set: when each
    request started (``time.time()``) and its latency in ms."""
    rng, latencies = random.Random(1), []
    next_at = time.perf_counter()
    with httpx.Client(base_url=url, headers=HEADERS, timeout=30) as http:
        while not stop.is_set():
            next_at += 1 / rate
            time.sleep(max(0.0, next_at - time.perf_counter()))
            body = json.dumps({"customer_id": rng.choice(customers), "explain": False})
            at, started = time.time(), time.perf_counter()
            response = http.post("/v1/score", content=body)
            latencies.append((at, (time.perf_counter() - started) * 1000))
            assert response.status_code == 200, response.text
    return latencies


def _probe_main(url: str, customers: list[str], stop: Any, rate: float, out: Any) -> None:
    out.send(score_loop(url, customers, stop, rate))


@contextlib.contextmanager
def scoring_probe(
    url: str, customers: list[str], rate: float
) -> Iterator[list[tuple[float, float]]]:
    """Scoring by id in a process of its own until the block ends; the latencies fill the list.

    Not a thread of this process: the sender threads would hold this interpreter's lock and the
    probe would measure them (client-side waits) as much as the server."""
    context = multiprocessing.get_context("spawn")
    stop, (ours, theirs) = context.Event(), context.Pipe(duplex=False)
    process = context.Process(target=_probe_main, args=(url, customers, stop, rate, theirs))
    process.start()
    theirs.close()  # so that a probe that dies is an EOFError here, not a wait for ever
    latencies: list[tuple[float, float]] = []
    try:
        yield latencies
    finally:
        stop.set()
        try:
            latencies.extend(ours.recv())
        except EOFError:
            raise RuntimeError(f"the scoring probe failed (exit code {process.exitcode})") from None
        finally:
            process.join()


def send_batches(url: str, bodies: list[bytes], latencies: list[float]) -> None:
    with httpx.Client(base_url=url, headers=HEADERS, timeout=120) as http:
        for body in bodies:
            started = time.perf_counter()
            response = http.post("/v1/events", content=body)
            latencies.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, response.text
            assert response.json()["accepted"] == 1000, response.text


def warm_up(url: str, customer: str) -> None:
    """One event first, as a service that has run a while has: the first ingestion starts the
    ingestion process (about a second of imports), which is not what the runs measure."""
    event = {"event_id": "warm-up", "customer_id": customer, "event": "login",
             "occurred_at": datetime.now(UTC).replace(microsecond=0).isoformat()}  # fmt: skip
    response = httpx.post(f"{url}/v1/events", json={"usage": [event]}, headers=HEADERS, timeout=60)
    assert response.status_code == 200, response.text


def served_copy(
    prepared: Path, work: Path, keys: dict[str, list[str]]
) -> tuple[int, str, dict[str, str]]:
    """A fresh copy of the prepared home in ``work`` (``work/home``; its writes touch no other
    run), a free loopback port, its URL, and the environment that serves the copy with ``keys``."""
    shutil.rmtree(work, ignore_errors=True)
    home = work / "home"
    shutil.copytree(prepared, home)
    port = free_port()
    env = {**os.environ, "SEGMENTS_HOME": str(home), "SEGMENTS_API_KEYS": json.dumps(keys)}
    env.pop("MLFLOW_TRACKING_URI", None)
    return port, f"http://127.0.0.1:{port}", env


@contextlib.contextmanager
def server(command: list[str], env: dict[str, str], url: str, log: Path) -> Iterator[int]:
    """The service on loopback; yields its pid (to read the CPU time it used)."""
    with log.open("w") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_ok(f"{url}/health/ready", process, log, checks=3)
        yield process.pid
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


def cpu_seconds(pid: int, stat: str = "") -> float:
    """User + system CPU time of a process so far (all its threads), or of the ``stat`` file's."""
    fields = Path(stat or f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    """The processes ``pid`` started (the service's ingestion process)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(stat.parent.name))
    return found


def tree_cpu_seconds(pid: int) -> float:
    """CPU time of the service and of the processes it started, while they run."""
    total = cpu_seconds(pid)
    for child in children(pid):
        with contextlib.suppress(OSError):
            total += cpu_seconds(child)
    return total


def resident_mb(pid: int) -> float | None:
    """A process's resident memory (VmRSS), in MB."""
    with contextlib.suppress(OSError, StopIteration):
        line = next(
            ln
            for ln in Path(f"/proc/{pid}/status").read_text().splitlines()
            if ln.startswith("VmRSS")
        )
        return int(line.split()[1]) / 1024
    return None


def thread_cpu_seconds(pid: int) -> dict[int, float]:
    """CPU time of each thread of the service and of its ingestion process; the main thread (id
    ``pid``) runs the event loop (HTTP parsing, routing, scoring), the busiest other one is the
    ingestion writer."""
    times = {}
    for process in (pid, *children(pid)):
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{process}/task").iterdir():
                with contextlib.suppress(OSError):
                    times[int(task.name)] = cpu_seconds(pid, str(task / "stat"))
    return times


def _spent(before: dict[int, float], after: dict[int, float]) -> dict[int, float]:
    return {tid: seconds - before.get(tid, 0.0) for tid, seconds in after.items()}


def http_ingestion(
    url: str,
    pid: int,
    requests: list[dict],
    senders: int,
    customers: list[str],
    probe: tuple[float, float] | None,
) -> dict:
    """Send the requests; with ``probe`` (requests a second, seconds), score by id all along,
    for that many seconds before the senders start and after the refresh they caused has had
    time to finish too: those scores are the idle ones, the others the ones during ingestion."""
    bodies = [json.dumps(r).encode() for r in requests]
    cpu_before, threads_before = tree_cpu_seconds(pid), thread_cpu_seconds(pid)
    latencies: list[float] = []
    threads = [
        threading.Thread(target=send_batches, args=(url, bodies[n::senders], latencies))
        for n in range(senders)
    ]
    rate, quiet = probe or (0.0, 0.0)
    with scoring_probe(url, customers, rate) if probe else contextlib.nullcontext([]) as scored:
        time.sleep(1.0 + quiet)  # the probe is up (1 s), then scores with nothing else running
        since, started = time.time(), time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        seconds, until = time.perf_counter() - started, time.time()
        time.sleep(SETTLE_SECONDS + quiet)
    scored_during = [latency for at, latency in scored if since <= at <= until]
    scored_idle = [
        latency
        for at, latency in scored
        if since - quiet <= at < since or until + SETTLE_SECONDS <= at
    ]
    server_cpu = tree_cpu_seconds(pid) - cpu_before
    spent = _spent(threads_before, thread_cpu_seconds(pid))
    return {
        "senders": senders,
        "server_cpu_seconds": server_cpu,
        "event_loop_cpu_seconds": spent.pop(pid, 0.0),
        "busiest_worker_cpu_seconds": max(spent.values(), default=0.0),
        "events_per_server_cpu_second": 1000 * len(bodies) / server_cpu,
        "requests": len(bodies),
        "events": 1000 * len(bodies),
        "seconds": seconds,
        "events_per_second": 1000 * len(bodies) / seconds,
        "request_p50_ms": percentile(latencies, 50),
        "request_p99_ms": percentile(latencies, 99),
        "scoring_during": latency_summary(scored_during) if scored_during else None,
        "scoring_idle": latency_summary(scored_idle) if scored_idle else None,
    }


def latency_summary(latencies: list[float]) -> dict:
    return {
        "requests": len(latencies),
        "p50_ms": percentile(latencies, 50),
        "p99_ms": percentile(latencies, 99),
        "mean_ms": statistics.fmean(latencies),
    }


def file_ingestion(home: Path, requests: list[dict]) -> dict:
    """The same events through ``ingest_files``: per 1,000-event file, and as one file."""
    from feature_store.ingest import ingest_files
    from feature_store.layout import StoreLayout

    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, groups in (("files_of_1000", requests), ("one_file", [_merged(requests)])):
            copy = Path(tmp) / name
            shutil.copytree(home, copy, ignore=shutil.ignore_patterns("service", "mlruns"))
            paths = []
            for n, group in enumerate(groups):
                paths.append(
                    {s: _jsonl(Path(tmp) / f"{name}-{n}-{s}.jsonl", group[s]) for s in group}
                )
            started = time.perf_counter()
            for files in paths:
                ingest_files(StoreLayout(copy), files)
            seconds = time.perf_counter() - started
            events = 1000 * len(requests)
            out[name] = {"seconds": seconds, "events_per_second": events / seconds}
    return out


def _merged(requests: list[dict]) -> dict[str, list[dict]]:
    return {s: [e for r in requests for e in r[s]] for s in ("billing", "usage")}


def _jsonl(path: Path, events: list[dict]) -> Path:
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1000)
    parser.add_argument("--months", type=int, default=12)
    parser.add_argument("--batches", type=int, default=30, help="1,000-event requests")
    parser.add_argument("--senders", type=int, default=2, help="concurrent ingestion clients")
    parser.add_argument("--score-rate", type=float, default=200.0, help="scores a second")
    parser.add_argument(
        "--quiet-seconds", type=float, default=8.0, help="idle scoring before and after"
    )
    args = parser.parse_args()

    prepared = prepared_home(args.customers, args.months)
    customers = sorted(pd.read_parquet(prepared / "features.parquet")["customer_id"].astype(str))
    requests = batches(customers, args.batches)
    work = OUT_DIR / "ingest-http"
    port, url, env = served_copy(prepared, work, KEYS)
    command = [sys.executable, "-m", "uvicorn", "--factory", "service.app:app_from_environment"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    results: dict = {"cpus": os.cpu_count(), "load_average_before": os.getloadavg()}
    with server(command, env, url, work / "serve.log") as pid:
        warm_up(url, customers[0])
        probe = (args.score_rate, args.quiet_seconds)
        results["http"] = http_ingestion(url, pid, requests, args.senders, customers, probe)
        # The same again (new event ids) without the scoring probe: the server's CPU per event
        # for ingestion alone (the online refresh included), which is what two free cores divide.
        again = batches(customers, args.batches, seed=1, prefix="g")
        results["http_alone"] = http_ingestion(url, pid, again, args.senders, customers, None)
        # Memory of the service and of the processes it started (the ingestion process; with
        # multiprocessing's resource tracker, a few MB).
        results["resident_mb"] = {
            "service": resident_mb(pid),
            "children": [resident_mb(child) for child in children(pid)],
        }
    results["file"] = file_ingestion(prepared, requests)
    results["load_average_after"] = os.getloadavg()
    print(json.dumps(results, indent=2))
    report(results)


def report(results: dict) -> None:
    http = results["http"]
    idle = http["scoring_idle"]
    during = http["scoring_during"]
    print(
        f"\nHTTP: {http['events_per_second']:,.0f} events/s over {http['requests']} requests of "
        f"1,000 (goal >= {GOALS['events_per_second']:,.0f}); per request p50 "
        f"{http['request_p50_ms']:.0f} ms, p99 {http['request_p99_ms']:.0f} ms "
        f"(goal <= {GOALS['p99_ms']:.0f})"
    )
    print(
        f"server CPU: {http['server_cpu_seconds']:.1f} s for {http['events']:,} events "
        f"({http['events_per_server_cpu_second']:,.0f} events per CPU-second, scoring included)"
    )
    alone = results["http_alone"]
    print(
        f"without the scoring probe: {alone['events_per_second']:,.0f} events/s, p50 "
        f"{alone['request_p50_ms']:.0f} / p99 {alone['request_p99_ms']:.0f} ms; server CPU "
        f"{alone['server_cpu_seconds'] / alone['events'] * 1000 * 1000:.0f} ms per 1,000 events "
        f"(event loop {alone['event_loop_cpu_seconds'] / alone['events'] * 1e6:.0f} ms, busiest "
        f"worker thread {alone['busiest_worker_cpu_seconds'] / alone['events'] * 1e6:.0f} ms); on "
        f"two free cores at most {2 * alone['events_per_server_cpu_second']:,.0f} events/s"
    )
    for name, measured in results["file"].items():
        print(f"file ingestion ({name}): {measured['events_per_second']:,.0f} events/s")
    print(
        f"scoring by id: idle p50 {idle['p50_ms']:.1f} / p99 {idle['p99_ms']:.1f} ms; during "
        f"ingestion p50 {during['p50_ms']:.1f} / p99 {during['p99_ms']:.1f} ms "
        f"({during['requests']} requests)"
    )
    memory = results["resident_mb"]
    print(
        f"resident memory: service {memory['service']:.0f} MB, processes it started "
        + ", ".join(f"{mb:.0f} MB" for mb in memory["children"] if mb is not None)
    )
    print(
        f"load average before/after: {results['load_average_before']} / {results['load_average_after']}"
    )


if __name__ == "__main__":
    main()
