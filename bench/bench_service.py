"""Scoring service speed, and `mlflow models serve` of the same registered model side by side.

    nice .venv/bin/python bench/bench_service.py [--customers 3000] [--months 18] [--seconds 20]

Both servers run on loopback with the same number of worker processes (``--workers``, default 2)
on this machine, the load generator too. Latency: an open-loop generator (``service_load.py``)
sends POST /v1/score with explanations at a constant rate; each latency runs from the moment the
request was due. Throughput: ``wrk`` (Debian package) keeps 16 connections busy; without wrk the
Python generator stands in. MLflow gets the feature vectors (it has no online store) and answers
without explanations; ours is measured both ways: by customer_id and by the same vectors.
Goals (the issue): p50 <= 5 ms and p99 <= 20 ms at 200 requests/s, >= 500 requests/s, >= 3x MLflow.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from _common import OUT_DIR, demo_data
from service_load import closed_loop, constant_rate, request_bytes, run

AS_OF = "2026-06-30"
HOST = "127.0.0.1"
BIN = Path(sys.executable).parent
GOALS = {"p50_ms": 5.0, "p99_ms": 20.0, "throughput": 500.0, "ratio": 3.0}


def segments(args: list[str], env: dict[str, str]) -> str:
    result = subprocess.run(
        [str(BIN / "segments"), *args], capture_output=True, text=True, env=env, check=False
    )
    if result.returncode != 0:
        raise SystemExit(f"segments {' '.join(args)} failed:\n{result.stderr}")
    return result.stdout


def prepared_home(customers: int, months: int) -> Path:
    """Demo events ingested, features as of AS_OF (online store) and a champion; made once."""
    home = OUT_DIR / f"service-home-{customers}-{months}"
    if (home / "READY").exists():
        return home
    shutil.rmtree(home, ignore_errors=True)
    events = demo_data(customers, months)
    env = {**os.environ, "SEGMENTS_HOME": str(home)}
    env.pop("MLFLOW_TRACKING_URI", None)
    billing, usage = events / "billing_events.parquet", events / "usage_events.parquet"
    segments(["ingest", "--billing", str(billing), "--usage", str(usage)], env)
    segments(["features", "--as-of", AS_OF, "--out", str(home / "features.parquet")], env)
    trained = json.loads(segments(["train", "--as-of", AS_OF, "--json"], env))
    segments(["promote", trained["model_version"]], env)
    (home / "READY").write_text(trained["model_version"])
    return home


BENCH_KEY = "bench-key"


def served_environment(home: Path) -> dict[str, str]:
    """The environment a served bench runs ``segments serve`` in: the prepared home, its own
    MLflow store, one key (``BENCH_KEY``) that scores and reads."""
    return {
        **os.environ,
        "SEGMENTS_HOME": str(home),
        "SEGMENTS_API_KEYS": json.dumps({BENCH_KEY: ["score", "read"]}),
        "MLFLOW_TRACKING_URI": f"sqlite:///{home / 'mlflow.db'}",
        "PYTHONWARNINGS": "ignore",
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def wait_ok(url: str, process: subprocess.Popen, log: Path, checks: int) -> None:
    """``checks`` successes in a row, each on a new connection (so every worker is ready)."""
    deadline, passed = time.monotonic() + 300, 0
    while passed < checks:
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"{url} did not come up:\n{log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=5) as answer:
                passed = passed + 1 if answer.status == 200 else 0
        except OSError:
            passed = 0
            time.sleep(0.5)


@contextlib.contextmanager
def server(
    command: list[str], env: dict[str, str], ready_url: str, log: Path, workers: int
) -> Iterator[None]:
    with log.open("w") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_ok(ready_url, process, log, checks=10 * workers)
        yield
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


def wrk_throughput(url: str, bodies: list[bytes], headers: dict[str, str], seconds: float) -> dict:
    script = OUT_DIR / "service_wrk.lua"
    lines = ['wrk.method = "POST"', 'wrk.headers["Content-Type"] = "application/json"']
    lines += [f'wrk.headers["{name}"] = "{value}"' for name, value in headers.items()]
    lines.append("local bodies = {}")
    lines += [f"bodies[#bodies + 1] = [==[{body.decode()}]==]" for body in bodies]
    lines += [
        "local n = 0",
        "request = function()",
        "  n = n + 1",
        "  return wrk.format(nil, nil, nil, bodies[(n % #bodies) + 1])",
        "end",
    ]
    script.write_text("\n".join(lines) + "\n")
    output = subprocess.run(
        ["wrk", "-t1", "-c16", f"-d{int(seconds)}s", "--latency", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    non_ok = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return {
        "requests_per_s": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),
        "errors": int(non_ok.group(1)) if non_ok else 0,
        "tool": "wrk -t1 -c16",
    }


def throughput(
    port: int, path: str, bodies: list[bytes], headers: dict[str, str], seconds: float
) -> dict:
    if shutil.which("wrk"):
        return wrk_throughput(f"http://{HOST}:{port}{path}", bodies, headers, seconds)
    requests = [request_bytes(HOST, port, path, body, headers) for body in bodies]
    result = run(closed_loop(HOST, port, requests, seconds, connections=16))
    return {
        "requests_per_s": result.count / result.seconds,
        "errors": result.errors,
        "tool": "python closed loop, 16 connections",
    }


def latency(
    port: int, path: str, bodies: list[bytes], headers: dict[str, str], rate: float, seconds: float
) -> dict:
    requests = [request_bytes(HOST, port, path, body, headers) for body in bodies]
    run(constant_rate(HOST, port, requests, rate, min(3.0, seconds), connections=16))  # warm-up
    result = run(constant_rate(HOST, port, requests, rate, seconds, connections=16))
    return {
        "rate": rate,
        "achieved_per_s": result.count / result.seconds,
        "requests": result.count,
        "errors": result.errors,
        "p50_ms": result.percentile(50) * 1000,
        "p90_ms": result.percentile(90) * 1000,
        "p99_ms": result.percentile(99) * 1000,
        "max_ms": max(result.latencies) * 1000,
    }


def request_bodies(home: Path, count: int) -> dict[str, list[bytes]]:
    import pandas as pd

    from feature_store.registry import FEATURE_NAMES

    table = pd.read_parquet(home / "features.parquet").head(count)
    names = [column for column in table.columns if column in FEATURE_NAMES]  # not features_as_of
    rows = table[names].astype(float).to_numpy().tolist()
    dump = lambda value: json.dumps(value, separators=(",", ":")).encode()  # noqa: E731
    return {
        "ours_by_id": [dump({"customer_id": cid, "explain": True}) for cid in table["customer_id"]],
        "ours_by_features": [
            dump({"features": dict(zip(names, row, strict=True)), "explain": True}) for row in rows
        ],
        "mlflow": [dump({"dataframe_split": {"columns": names, "data": [row]}}) for row in rows],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=3000)
    parser.add_argument("--months", type=int, default=18)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()

    home = prepared_home(args.customers, args.months)
    key = BENCH_KEY
    env = served_environment(home)
    bodies = request_bodies(home, 500)
    ours_port, mlflow_port = free_port(), free_port()
    ours = [
        str(BIN / "segments"),
        "serve",
        "--port",
        str(ours_port),
        "--workers",
        str(args.workers),
    ]
    mlflow = [
        str(BIN / "mlflow"), "models", "serve", "-m", "models:/customer-segments@champion",
        "--env-manager", "local", "-h", HOST, "-p", str(mlflow_port), "-w", str(args.workers),
    ]  # fmt: skip
    auth = {"X-API-Key": key}
    results: dict[str, dict] = {}
    with (
        server(ours, env, f"http://{HOST}:{ours_port}/health/ready", OUT_DIR / "service-ours.log", args.workers),
        server(mlflow, {**env, "PATH": f"{BIN}:{os.environ['PATH']}"}, f"http://{HOST}:{mlflow_port}/ping", OUT_DIR / "service-mlflow.log", args.workers),
    ):  # fmt: skip
        results["latency_ours"] = latency(
            ours_port, "/v1/score", bodies["ours_by_id"], auth, args.rate, args.seconds
        )
        results["latency_mlflow"] = latency(
            mlflow_port, "/invocations", bodies["mlflow"], {}, args.rate, args.seconds
        )
        results["throughput_ours_by_id"] = throughput(
            ours_port, "/v1/score", bodies["ours_by_id"], auth, args.seconds
        )
        results["throughput_ours_by_features"] = throughput(
            ours_port, "/v1/score", bodies["ours_by_features"], auth, args.seconds
        )
        results["throughput_mlflow"] = throughput(
            mlflow_port, "/invocations", bodies["mlflow"], {}, args.seconds
        )
    report(results, args)


def report(results: dict[str, dict], args: argparse.Namespace) -> None:
    ours, theirs = results["latency_ours"], results["latency_mlflow"]
    print(
        f"model: demo company {args.customers:,} customers, {args.months} months; workers: {args.workers}"
    )
    print(
        f"constant {args.rate:.0f} requests/s for {args.seconds:.0f} s (open loop, latency from the due time):"
    )
    print(f"{'server':<38}{'p50 ms':>10}{'p90 ms':>10}{'p99 ms':>10}{'max ms':>10}{'errors':>8}")
    for name, row in (
        ("ours, by customer_id, explained", ours),
        ("mlflow models serve, no explanation", theirs),
    ):
        print(
            f"{name:<38}{row['p50_ms']:>10.2f}{row['p90_ms']:>10.2f}{row['p99_ms']:>10.2f}"
            f"{row['max_ms']:>10.1f}{row['errors']:>8}"
        )
        if row["achieved_per_s"] < 0.95 * args.rate:
            print(f"{'':<38}could not keep up: {row['achieved_per_s']:.0f} requests/s answered")
    print(f"throughput ({results['throughput_mlflow']['tool']}, {args.seconds:.0f} s):")
    labels = {
        "throughput_ours_by_id": "ours, by customer_id, explained",
        "throughput_ours_by_features": "ours, by feature vector, explained",
        "throughput_mlflow": "mlflow models serve, no explanation",
    }
    for key, name in labels.items():
        row = results[key]
        print(f"{name:<38}{row['requests_per_s']:>10.0f} requests/s{row['errors']:>8} errors")
    base = results["throughput_mlflow"]["requests_per_s"]
    by_id = results["throughput_ours_by_id"]["requests_per_s"]
    by_features = results["throughput_ours_by_features"]["requests_per_s"]
    print(
        f"ratio to mlflow: by customer_id {by_id / base:.1f}x, by feature vector {by_features / base:.1f}x"
    )
    checks = {
        f"p50 <= {GOALS['p50_ms']} ms": ours["p50_ms"] <= GOALS["p50_ms"],
        f"p99 <= {GOALS['p99_ms']} ms": ours["p99_ms"] <= GOALS["p99_ms"],
        f">= {GOALS['throughput']:.0f} requests/s explained": min(by_id, by_features)
        >= GOALS["throughput"],
        f">= {GOALS['ratio']}x mlflow": min(by_id, by_features) >= GOALS["ratio"] * base,
        "no failed request": not any(row["errors"] for row in results.values()),
    }
    for goal, met in checks.items():
        print(f"{'met' if met else 'NOT MET':>8}  {goal}")
    (OUT_DIR / "service.json").write_text(json.dumps(results, indent=2))
    if not all(checks.values()):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
