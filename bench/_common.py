"""Helpers shared by the benchmarks: demo data on demand, child processes, peak memory, and the
cross-fitted AUC of a grouping of customers."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

BENCH_DIR = Path(__file__).resolve().parent
# The pandas feature oracle (``feature_oracle``) lives with the tests; the benchmarks import it.
TESTS_DIR = BENCH_DIR.parent / "tests"
OUT_DIR = BENCH_DIR / "out"


def demo_data(customers: int, months: int, seed: int = 0) -> Path:
    """Generate (once) the demo company the benchmarks run on."""
    folder = OUT_DIR / f"demo-{customers}-{months}-{seed}"
    if not (folder / "usage_events.parquet").exists():
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pipelines",
                "demo-data",
                "--out",
                str(folder),
                "--customers",
                str(customers),
                "--months",
                str(months),
                "--seed",
                str(seed),
            ],
            check=True,
        )
    return folder


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB.

    Read from VmHWM, which starts afresh at exec; ``ru_maxrss`` would carry over the parent's peak.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def ingestion_figures(started: float, report: Any) -> dict:
    """What an ingestion bench prints of one run: wall seconds since ``started``
    (``time.perf_counter()``), the report's row counts and the process's peak memory."""
    return {
        "seconds": time.perf_counter() - started,
        "received": report.received,
        "accepted": report.accepted,
        "quarantined": report.quarantined,
        "peak_rss_mb": peak_rss_mb(),
    }


_CHILD_PATH = (BENCH_DIR.parent, BENCH_DIR, TESTS_DIR)


def run_child(script: Path, args: list[str], timeout: float | None = None) -> dict:
    """Run one measured approach in a fresh process so its peak memory is its own.

    Raises ``TimeoutError`` when it runs longer than ``timeout`` seconds.
    """
    started = time.perf_counter()
    try:
        result = subprocess.run(
            [sys.executable, str(script), *args],
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(map(str, _CHILD_PATH))},
            check=False,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        raise TimeoutError(f"{script.name} {' '.join(args)} exceeded {timeout} s") from None
    if result.returncode != 0:
        raise SystemExit(f"{script.name} {' '.join(args)} failed:\n{result.stderr}")
    measured = json.loads(result.stdout.strip().splitlines()[-1])
    measured["process_seconds"] = time.perf_counter() - started
    return measured


# Groups for the training customers and for the held-out ones, from a grouping fitted on the former.
Grouping = Callable[[pd.DataFrame, pd.DataFrame], tuple[np.ndarray, np.ndarray]]


def cross_fitted_auc(
    group: Grouping, table: pd.DataFrame, label: np.ndarray, folds: int = 5
) -> tuple[float, list[int]]:
    """How well groups separate a 0/1 label they never saw: in stratified folds, each group's rate
    of the label among the training customers scores the held-out customers in it (the overall
    rate for a group the training customers do not have); the AUC pools the held-out scores.
    Also the number of groups in each fold."""
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold

    held_out = np.zeros(len(table))
    counts = []
    for train, test in StratifiedKFold(folds, shuffle=True, random_state=0).split(table, label):
        train_groups, test_groups = group(table.iloc[train], table.iloc[test])
        rates = pd.Series(label[train]).groupby(train_groups).mean()
        held_out[test] = rates.reindex(test_groups).fillna(label[train].mean()).to_numpy()
        counts.append(len(rates))
    return float(roc_auc_score(label, held_out)), counts
