"""Training speed, end to end: ours vs HDBSCAN defaults and silhouette-chosen k-means.

    python bench/bench_training.py [--customers 3000 100000] [--months 18] [--train-up-to 3000]

For each company size (the demo company, features as of its last day, the 27 registry features):

- ``fit_model``: what `segments train` fits: the segmenter (model selection included), the
  explainer's surrogate with its held-out fidelity, profiles and segment drivers;
- ``segments train``: the same plus the 90-day backtest and an MLflow run with a registered
  version and its pictures, into a fresh embedded store (sizes up to ``--train-up-to``);
- ``segmenter only``: ``CustomerSegmenter().fit``;
- ``hdbscan defaults``: ``sklearn.cluster.HDBSCAN()`` and ``hdbscan.HDBSCAN()`` on the same
  preprocessed matrix, no explainer and no profiles;
- ``silhouette k-means``: k-means (10 starts) for k = 2..12 on the same preprocessed matrix, the k
  with the best silhouette (on a 5,000-customer sample).

Each approach runs in a fresh process on the same Parquet copy of the features. The machine may be
shared: CPU seconds (user + system of the process and its children) are the figure to compare;
wall seconds are printed beside them, with the load average at the start. Ratios are CPU seconds
over ours (``fit_model``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
import warnings
from datetime import timedelta
from pathlib import Path

from _common import demo_data, peak_rss_mb, run_child

AS_OF = "2026-06-30"
KMEANS_KS = range(2, 13)
SILHOUETTE_SAMPLE = 5000
APPROACHES = (
    "fit_model",
    "segments train",
    "segmenter only",
    "sklearn HDBSCAN()",
    "hdbscan.HDBSCAN()",
    "silhouette k-means",
)


def cpu_seconds() -> float:
    """User + system CPU of this process and its finished children."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def active_matrix(features_file: Path):
    import pandas as pd

    from feature_store.registry import SEGMENTED_FEATURE_NAMES
    from pipelines.train import active_customers

    features = active_customers(pd.read_parquet(features_file))
    return features, features[[n for n in SEGMENTED_FEATURE_NAMES if n in features.columns]]


def run_ours(approach: str, folder: Path) -> tuple[int, str]:
    from models.segmenter import CustomerSegmenter
    from pipelines.train import fit_model, reliability_of

    features, X = active_matrix(folder / "end.parquet")
    earlier = month_before(folder)
    if approach == "segmenter only":
        reliability = reliability_of(features, earlier, list(X.columns))
        model = CustomerSegmenter(random_state=0).fit(X, reliability=reliability)
        return model.n_segments_, model.chosen_candidate_.name
    if approach == "fit_model":
        fitted = fit_model(features, CustomerSegmenter(random_state=0), earlier=earlier)
        return int(fitted.model.metrics["n_segments"]), fidelity_text(fitted.model.metrics)
    return train_with_mlflow(folder)


def month_before(folder: Path):
    """The features a month before (``pipelines.train.earlier_features``), if the data reach."""
    import pandas as pd

    month = folder / "month.parquet"
    return pd.read_parquet(month) if month.exists() else None


def fidelity_text(metrics: dict[str, float]) -> str:
    return f"fidelity {metrics['surrogate_fidelity']:.3f}"


def train_with_mlflow(folder: Path) -> tuple[int, str]:
    """What `segments train` does after the features are built (``pipelines.train.train``)."""
    import pandas as pd

    from feature_store.layout import StoreLayout
    from feature_store.timeutil import parse_as_of
    from models.business import BACKTEST_WINDOW_DAYS
    from models.registry import ModelRegistry, RegistryConfig
    from models.segmenter import CustomerSegmenter
    from pipelines.train import fit_model, measure_business, place_earlier_churn, promote, register

    end, start = pd.read_parquet(folder / "end.parquet"), pd.read_parquet(folder / "start.parquet")
    segmenter = CustomerSegmenter(random_state=0)
    fitted = fit_model(end, segmenter, earlier=month_before(folder))
    measure_business(fitted.model, start, end)
    as_of = parse_as_of(AS_OF)
    window_start = as_of - timedelta(days=BACKTEST_WINDOW_DAYS)
    started = time.perf_counter()
    place_earlier_churn(fitted.model, StoreLayout(folder / "home"), as_of, window_start)
    placing = time.perf_counter() - started
    example = end[fitted.model.feature_names].head(5).astype(float)
    with tempfile.TemporaryDirectory() as home:
        registry = ModelRegistry(RegistryConfig.for_home(Path(home), None, "customer-segments"))
        registration = register(registry, fitted, segmenter, as_of, example)
        promote(registry, registration.version, fitted.model.metrics, segmenter.max_segments)
    earlier = fitted.model.churned.before_window if fitted.model.churned else 0
    return int(fitted.model.metrics["n_segments"]), (
        f"{fidelity_text(fitted.model.metrics)}; {earlier:,} who cancelled before the window "
        f"placed in {placing:.2f} s"
    )


def run_baseline(approach: str, folder: Path) -> tuple[int, str]:
    import numpy as np

    from models.preprocessing import FeaturePreprocessor

    _, X = active_matrix(folder / "end.parquet")
    Z = FeaturePreprocessor().fit_transform(X)
    if approach == "silhouette k-means":
        from sklearn.cluster import KMeans
        from sklearn.metrics import silhouette_score

        def silhouette(labels: np.ndarray) -> float:
            sample = min(len(Z), SILHOUETTE_SAMPLE)
            return silhouette_score(Z, labels, sample_size=sample, random_state=0)

        fits = {k: KMeans(k, n_init=10, random_state=0).fit_predict(Z) for k in KMEANS_KS}
        best = max(fits, key=lambda k: silhouette(fits[k]))
        return best, f"k={best}"
    if approach == "sklearn HDBSCAN()":
        from sklearn.cluster import HDBSCAN

        labels = HDBSCAN().fit_predict(Z)
    else:
        import hdbscan

        labels = hdbscan.HDBSCAN().fit_predict(Z)
    return int(labels.max()) + 1, f"noise {np.mean(labels < 0):.1%}"


def run_one(approach: str, folder: Path) -> dict:
    warnings.filterwarnings("ignore")
    started, cpu = time.perf_counter(), cpu_seconds()
    ours = approach in ("fit_model", "segments train", "segmenter only")
    segments, detail = (run_ours if ours else run_baseline)(approach, folder)
    return {
        "seconds": time.perf_counter() - started,
        "cpu_seconds": cpu_seconds() - cpu,
        "segments": segments,
        "detail": detail,
        "peak_rss_mb": peak_rss_mb(),
    }


def feature_tables(customers: int, months: int) -> Path:
    """The demo company's features as of ``AS_OF`` and 90 days before, built once per company,
    beside the data home they were built from (``segments train`` reads it again to place the
    customers who cancelled before the window)."""
    import pandas as pd

    from feature_store.currency import levels_of
    from feature_store.ingest import ingest_files
    from feature_store.layout import StoreLayout
    from feature_store.timeutil import parse_as_of
    from models.business import BACKTEST_WINDOW_DAYS
    from pipelines.feature_pipeline import build_features
    from pipelines.train import earlier_features

    data = demo_data(customers, months)
    folder = data / f"features-{AS_OF}"
    if (folder / "month.parquet").exists() and (folder / "home").is_dir():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    layout = StoreLayout(folder / "home")
    events = {s: data / f"{s}_events.parquet" for s in ("billing", "usage")}
    ingest_files(layout, events)
    as_of = parse_as_of(AS_OF)
    build_features(layout, as_of).to_parquet(folder / "end.parquet")
    window_start = as_of - timedelta(days=BACKTEST_WINDOW_DAYS)
    build_features(layout, window_start).to_parquet(folder / "start.parquet")
    # a month before, as training takes it to judge which columns are lasting traits
    end = pd.read_parquet(folder / "end.parquet")
    earlier = earlier_features(layout, as_of, levels_of(end))
    if earlier is not None:
        earlier.to_parquet(folder / "month.parquet")
    return folder


def measure(customers: int, args: argparse.Namespace) -> dict[str, dict | None]:
    folder = feature_tables(customers, args.months)
    results: dict[str, dict | None] = {}
    for approach in args.approaches:
        if approach == "segments train" and customers > args.train_up_to:
            continue
        try:
            results[approach] = run_child(
                Path(__file__), [f"--one={approach}", f"--folder={folder}"], timeout=args.timeout
            )
        except TimeoutError:
            results[approach] = None
    return results


def report(customers: int, results: dict[str, dict | None], timeout: int) -> None:
    ours = results.get("fit_model")
    from feature_store.registry import SEGMENTED_FEATURE_NAMES

    print(
        f"\n{customers:,} customers (demo company, {len(SEGMENTED_FEATURE_NAMES)} features "
        "segmented on, active customers segmented)"
    )
    print(
        f"{'approach':<20}{'CPU s':>8}{'wall s':>8}{'x ours':>8}{'segments':>9}{'peak MB':>9}  detail"
    )
    for name, r in results.items():
        if r is None:
            print(
                f"{name:<20}{'> ' + str(timeout):>16}{'-':>8}{'-':>9}{'-':>9}  stopped at the limit"
            )
            continue
        ratio = r["cpu_seconds"] / ours["cpu_seconds"] if ours else float("nan")
        print(
            f"{name:<20}{r['cpu_seconds']:>8.1f}{r['seconds']:>8.1f}{ratio:>8.2f}"
            f"{r['segments']:>9}{r['peak_rss_mb']:>9.0f}  {r['detail']}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, nargs="+", default=[3000, 100_000])
    parser.add_argument("--months", type=int, default=18)
    parser.add_argument("--train-up-to", type=int, default=3000, help="largest size for MLflow")
    parser.add_argument("--timeout", type=int, default=900, help="seconds allowed per approach")
    parser.add_argument("--approaches", nargs="+", choices=APPROACHES, default=list(APPROACHES))
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one, args.folder)))
        return
    print(
        f"load average at start: {' '.join(f'{x:.1f}' for x in os.getloadavg())}, {os.cpu_count()} CPUs"
    )
    for customers in args.customers:
        report(customers, measure(customers, args), args.timeout)


if __name__ == "__main__":
    main()
