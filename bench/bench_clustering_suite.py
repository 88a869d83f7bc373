"""Automatic segmentation vs fixed baselines on Gagolewski's clustering benchmark suite (73 sets).

    python bench/bench_clustering_suite.py [--data ../shared/datasets/clustering_benchmarks] [--jobs 2]

Every method gets the same data. Baselines run on standardised features: k-means with k=4 and
k=8, k-means with k chosen by silhouette (2..12), a Gaussian mixture with k chosen by BIC (1..12),
and ``hdbscan.HDBSCAN()`` defaults. Ours is ``CustomerSegmenter()`` with its defaults: no k.
Scoring follows the suite's rules: points labelled 0 (noise) are left out, every reference
labelling is scored and the best ARI kept. Skips cleanly when the data folder is absent.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "clustering_benchmarks"
METHODS = ["ours", "kmeans_k4", "kmeans_k8", "kmeans_silhouette", "gmm_bic", "hdbscan_default"]


def best_ari(references: list[np.ndarray], predicted: np.ndarray) -> float:
    from sklearn.metrics import adjusted_rand_score

    scores = []
    for reference in references:
        keep = reference != 0
        scores.append(adjusted_rand_score(reference[keep], predicted[keep]))
    return max(scores)


def baselines(X: np.ndarray) -> dict[str, np.ndarray]:
    import hdbscan
    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_score
    from sklearn.mixture import GaussianMixture
    from sklearn.preprocessing import StandardScaler

    S = StandardScaler().fit_transform(X)
    rows = np.random.default_rng(0).choice(len(S), min(len(S), 3000), replace=False)
    by_k = {k: KMeans(k, n_init=4, random_state=0).fit_predict(S) for k in range(2, 13)}
    silhouette_k = max(by_k, key=lambda k: silhouette_score(S[rows], by_k[k][rows]))
    mixtures = [GaussianMixture(k, random_state=0).fit(S) for k in range(1, 13)]
    bic_best = min(mixtures, key=lambda m: m.bic(S))
    return {
        "kmeans_k4": by_k[4],
        "kmeans_k8": by_k[8],
        "kmeans_silhouette": by_k[silhouette_k],
        "gmm_bic": bic_best.predict(S),
        "hdbscan_default": hdbscan.HDBSCAN().fit_predict(S),
    }


def evaluate(job: tuple[str, str, str]) -> dict[str, object]:
    warnings.filterwarnings("ignore")
    from models.segmenter import CustomerSegmenter

    root, battery, name = job
    folder = Path(root) / battery
    X = np.loadtxt(folder / f"{name}.data.gz", ndmin=2)
    references = [np.loadtxt(p, dtype=int) for p in sorted(folder.glob(f"{name}.labels*.gz"))]
    segmenter = CustomerSegmenter(random_state=0).fit(pd.DataFrame(X))
    predictions = {"ours": segmenter.labels_, **baselines(X)}
    row: dict[str, object] = {"dataset": f"{battery}/{name}", "n": len(X), "d": X.shape[1]}
    row["true_k"] = "/".join(str(len(set(r[r != 0]))) for r in references)
    row["ours_k"] = segmenter.n_segments_
    row["ours_choice"] = segmenter.chosen_candidate_.name
    row.update({method: best_ari(references, predictions[method]) for method in METHODS})
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "out" / "clustering_suite.csv"
    )
    args = parser.parse_args()
    manifest = args.data / "MANIFEST.csv"
    if not manifest.exists():
        print(f"skipped: {manifest} not found (the suite is not distributed with the project)")
        return
    sets = pd.read_csv(manifest)
    jobs = [(str(args.data), b, n) for b, n in zip(sets["battery"], sets["dataset"], strict=True)]
    with ProcessPoolExecutor(args.jobs) as pool:
        rows = list(pool.map(evaluate, jobs))
    table = pd.DataFrame(rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out, index=False)
    means = table[METHODS].mean().sort_values(ascending=False)
    print(f"{len(table)} datasets; mean ARI (noise points excluded, best reference labelling)")
    for method, value in means.items():
        wins = (table["ours"] > table[method]).sum() if method != "ours" else "-"
        print(f"  {method:<20}{value:.3f}   ours better on {wins} sets")
    ours = means["ours"]
    print("ours beats every baseline:", all(ours > means[m] for m in METHODS if m != "ours"))
    # the goal asks for ours above every baseline on each family (battery) of sets too
    families = table.assign(family=table["dataset"].str.split("/").str[0])
    per_family = families.groupby("family")[list(means.index)].mean()
    per_family.insert(0, "sets", families.groupby("family").size())
    per_family["ours above every baseline"] = [
        all(row["ours"] > row[m] for m in METHODS if m != "ours")
        for _, row in per_family.iterrows()
    ]
    print("per family (mean ARI):")
    print(per_family.round(3).to_string())
    print(f"per-dataset table: {args.out}")
    sys.exit(0)


if __name__ == "__main__":
    main()
