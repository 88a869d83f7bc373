"""How long a worker stops answering while a promotion puts another model in service.

    nice .venv/bin/python bench/bench_swap_pause.py [--customers 3000] [--swaps 4]

One worker each, on loopback, side by side in one run: ``segments serve`` as shipped (a swap
collects and freezes only what is new, ``service.app.LongLivedFreezer``), and the same command
whose swap hook unfreezes and collects every object first (what it did until 2026-12-08). While
``segments promote`` moves the champion between two versions ``--swaps`` times, GET /health/ready
every 5 ms on one connection; it prints the longest wait around each swap (within 2 s of the
first answer naming the new version). The data home is ``bench_service.py``'s, with a second
version trained beside its champion (another seed), made once.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time

import httpx
from _common import OUT_DIR
from bench_service import (
    AS_OF,
    BIN,
    HOST,
    free_port,
    prepared_home,
    segments,
    served_environment,
    server,
)

# ``segments serve`` whose swap hook collects every object, as before 2026-12-08.
FULL_COLLECT = (
    "import gc, runpy, sys; import service.app as app; "
    "app.LongLivedFreezer.__call__ = lambda self: (gc.unfreeze(), gc.collect(), gc.freeze()); "
    "sys.argv = ['segments', *sys.argv[1:]]; runpy.run_module('pipelines', run_name='__main__')"
)


def second_version(env: dict[str, str]) -> tuple[str, str]:
    """The champion and another version of the same data (seed 1), trained once."""
    home = OUT_DIR / "swap-versions.json"
    if home.exists():
        return tuple(json.loads(home.read_text()))  # type: ignore[return-value]
    listed = json.loads(segments(["models", "list", "--json"], env))
    champion = next(v["version"] for v in listed if "champion" in v["aliases"])
    trained = json.loads(segments(["train", "--as-of", AS_OF, "--seed", "1", "--json"], env))
    versions = (str(champion), str(trained["model_version"]))
    home.write_text(json.dumps(versions))
    return versions


def promote(version: str, env: dict[str, str]) -> None:
    """Make ``version`` the champion, whatever its gates say (the bench measures the swap)."""
    listed = json.loads(segments(["models", "list", "--json"], env))
    if any(v["version"] == version and "champion" in v["aliases"] for v in listed):
        return
    segments(["promote", version, "--force", "--reason", "bench: a swap"], env)


def swap_waits(
    port: int, env: dict[str, str], versions: tuple[str, str], swaps: int
) -> list[float]:
    """The longest readiness wait within 2 s of each of ``swaps`` changes of the served model
    (found by the version /health/ready names)."""
    url = f"http://{HOST}:{port}/health/ready"
    answers: list[tuple[float, float, str]] = []
    stop = threading.Event()

    def poll() -> None:
        with httpx.Client() as client:
            while not stop.is_set():
                started = time.perf_counter()
                served = client.get(url).json()["model"]["version"]
                answers.append((time.monotonic(), time.perf_counter() - started, served))
                time.sleep(0.005)

    poller = threading.Thread(target=poll)
    poller.start()
    try:
        for swap in range(swaps):
            time.sleep(2)
            target = versions[(swap + 1) % 2]
            promote(target, env)
            waited = time.monotonic()
            # the service polls the registry every second; then 2 s more of answers after it
            while (not answers or answers[-1][2] != target) and time.monotonic() - waited < 30:
                time.sleep(0.1)
            time.sleep(2)
    finally:
        stop.set()
        poller.join()
    changes = [
        at for (at, _, now), (_, _, before) in zip(answers[1:], answers[:-1], strict=True)
        if now != before
    ]  # fmt: skip
    return [max(w for at, w, _ in answers if abs(at - moment) <= 2) for moment in changes]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=3000)
    parser.add_argument("--months", type=int, default=18)
    parser.add_argument("--swaps", type=int, default=4)
    args = parser.parse_args()
    home = prepared_home(args.customers, args.months)
    env = served_environment(home)
    versions = second_version(env)
    variants = {
        "segments serve": [str(BIN / "segments")],
        "every object collected at each swap": [sys.executable, "-c", FULL_COLLECT],
    }
    results: dict[str, list[float]] = {}
    for name, command in variants.items():
        port = free_port()
        serve = [*command, "serve", "--port", str(port), "--workers", "1"]
        log = OUT_DIR / f"swap-pause-{name.replace(' ', '-')}.log"
        promote(versions[0], env)
        with server(serve, env, f"http://{HOST}:{port}/health/ready", log, 1):
            results[name] = swap_waits(port, env, versions, args.swaps)
    print(f"{args.swaps} swaps each between versions {versions[0]} and {versions[1]}")
    print("| server | longest health wait per swap, s | median of swaps, s |")
    print("|---|---|---:|")
    for name, waits in results.items():
        listed = ", ".join(f"{w:.3f}" for w in waits)
        print(f"| {name} | {listed} | {statistics.median(waits):.3f} |")
    ours, before = (statistics.median(results[n]) for n in variants)
    print(f"longest wait, every object collected / as shipped: {before / ours:.1f}x")


if __name__ == "__main__":
    main()
