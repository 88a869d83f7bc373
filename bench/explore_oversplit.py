"""Explorations of the over-split on cached selection tables (``docs/segmentation.md``, "Judging a
flag across sources"); none of them was adopted.

    python bench/explore_oversplit.py halves --cache DIR [--only REGEX] [--k 7]
    python bench/explore_oversplit.py both-sources --cache DIR
    python bench/explore_oversplit.py sparse-kmeans --cache DIR
    python bench/explore_oversplit.py refined-k --cache DIR    # k chosen on refined segments
    python bench/explore_oversplit.py starts --cache DIR       # other starts at the planted k

Caches are ``bench/selection_study.py collect`` folders.

- ``halves``: for each k-means candidate with ``--k`` segments, every persona that two segments
  share (each holding at least 20% of it), with the columns whose means differ between the two
  halves by more than one pooled standard deviation: what a persona is cut along.
- ``both-sources``: the adopted rule replayed with a stricter separation, a pair of neighbouring
  segments counting as separated only when its separating columns include more than one registry
  family (billing ``value`` and ``behavioural`` usage); prints ``selection_study.py versus``'s
  table against the rule as it is.
- ``sparse-kmeans``: Witten and Tibshirani's sparse k-means (2010, JASA 105: column weights from
  each column's between-segment sum of squares under an L1 bound s, alternated with k-means),
  told the planted k, against plain k-means told it, for s = sqrt(p), 0.6 sqrt(p), 0.4 sqrt(p).
- ``refined-k``: every k-means candidate refined by the discriminant as the segmenter refines it,
  then k chosen by the refined segments' silhouette, Calinski-Harabasz or Davies-Bouldin index;
  beside the refined ARI at the planted k and at the best k of each set (what is left to choose).
- ``starts``: at the planted k, the cached k-means and 8 random starts and k-means at 2k and 3k
  merged to k by Ward's linkage, each refined; the ARI of each start, and of the start a
  criterion picks (log det W, trace W^-1 B, inertia, classification likelihood).
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from selection_rules import _finished, group, versus
from selection_study import load_tables, planted_ari
from sklearn.cluster import AgglomerativeClustering, KMeans
from sklearn.metrics import calinski_harabasz_score, davies_bouldin_score, silhouette_score
from threadpoolctl import threadpool_limits

from feature_store.registry import find
from models.criteria import gabriel_neighbours

SPARSE_BOUNDS = (1.0, 0.6, 0.4)  # the L1 bound as a share of sqrt(p)
SPARSE_ROUNDS = 6


def _pair_gaps(Z: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per column, the gap between the means of rows ``a`` and rows ``b`` in pooled standard
    deviations (infinite where both are constant and differ)."""
    A, B = Z[a], Z[b]
    squares = ((A - A.mean(axis=0)) ** 2).sum(axis=0) + ((B - B.mean(axis=0)) ** 2).sum(axis=0)
    pooled = np.sqrt(squares / (len(A) + len(B) - 2))
    gap = np.abs(A.mean(axis=0) - B.mean(axis=0))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(pooled > 1e-12, gap / pooled, np.where(gap > 1e-9, np.inf, 0.0))


def halves(tables: dict[str, pd.DataFrame], k: int) -> None:
    for name, t in tables.items():
        Z, truth = t.attrs["Z"].astype(float), np.asarray(t.attrs["truth"])
        columns = np.array(t.attrs["columns"])
        for labels in t[(t.family == "kmeans") & (t.k == k)].labels:
            labels = np.asarray(labels).astype(int)
            shares = pd.crosstab(truth, labels)
            for persona, row in shares.iterrows():
                parts = row[row > 0.2 * row.sum()].index.tolist()
                if len(parts) != 2:
                    continue
                gaps = _pair_gaps(Z, labels == parts[0], labels == parts[1])
                order = [i for i in np.argsort(-gaps) if gaps[i] > 1.0]
                cut = ", ".join(f"{columns[i]} {gaps[i]:.1f}" for i in order)
                print(f"{name} k={k}: {persona} in segments {parts[0]} and {parts[1]}: {cut}")


def separated_in_both_sources(Z: np.ndarray, labels: np.ndarray, families: np.ndarray) -> int:
    """``models.criteria.separating_features`` with a pair whose separating columns all come from
    one family counting as not separated (0)."""
    segments = [s for s in np.unique(labels) if s >= 0]
    if len(segments) < 2:
        return 0
    centres = np.array([Z[labels == s].mean(axis=0) for s in segments])
    fewest = Z.shape[1]
    for i, j in gabriel_neighbours(centres):
        a, b = labels == segments[i], labels == segments[j]
        if min(a.sum(), b.sum()) < 2:
            return 0
        separates = _pair_gaps(Z, a, b) > 1.0
        count = int(separates.sum()) if len(set(families[separates])) >= 2 else 0
        fewest = min(fewest, count)
    return fewest


def both_sources(tables: dict[str, pd.DataFrame]) -> None:
    stricter = {}
    for name, t in tables.items():
        t = t.reset_index(drop=True).copy()
        Z = t.attrs["Z"].astype(float)
        definitions = [find(column) for column in t.attrs["columns"]]
        families = np.array([d.family if d else "unknown" for d in definitions])
        t["sep1.0"] = [
            float(separated_in_both_sources(Z, np.asarray(labels).astype(int), families))
            if family == "kmeans"
            else np.nan
            for family, labels in zip(t.family, t.labels, strict=True)
        ]
        stricter[name] = t
    print(versus(stricter, tables, "adopted"))


def sparse_kmeans(Z: np.ndarray, k: int, bound: float, seed: int = 0) -> np.ndarray:
    """Labels of sparse k-means with L1 bound ``bound`` on the column weights."""
    weights = np.full(Z.shape[1], 1 / np.sqrt(Z.shape[1]))
    for _ in range(SPARSE_ROUNDS):
        labels = KMeans(k, n_init=10, random_state=seed).fit_predict(Z * np.sqrt(weights))
        total = ((Z - Z.mean(axis=0)) ** 2).sum(axis=0)
        within = sum(
            ((Z[labels == s] - Z[labels == s].mean(axis=0)) ** 2).sum(axis=0) for s in range(k)
        )
        weights = _bounded_weights(np.maximum(total - within, 0.0), bound)
    return KMeans(k, n_init=10, random_state=seed).fit_predict(Z * np.sqrt(weights))


def _bounded_weights(between: np.ndarray, bound: float) -> np.ndarray:
    """Soft-thresholded ``between``, unit L2 norm, L1 norm at most ``bound`` (bisection)."""
    weights = between / np.linalg.norm(between)
    if weights.sum() <= bound:
        return weights
    low, high = 0.0, float(between.max())
    for _ in range(50):
        threshold = (low + high) / 2
        weights = np.maximum(between - threshold, 0.0)
        weights /= np.linalg.norm(weights)
        low, high = (threshold, high) if weights.sum() > bound else (low, threshold)
    return weights


def sparse(tables: dict[str, pd.DataFrame]) -> None:
    rows = []
    for name, t in tables.items():
        Z, truth = t.attrs["Z"].astype(float), np.asarray(t.attrs["truth"])
        k = len(set(truth))
        row = {
            "group": group(name),
            "k-means told k": planted_ari(
                truth, KMeans(k, n_init=10, random_state=0).fit_predict(Z)
            ),
        }
        for share in SPARSE_BOUNDS:
            labels = sparse_kmeans(Z, k, share * np.sqrt(Z.shape[1]))
            row[f"sparse, s = {share} sqrt(p)"] = planted_ari(truth, labels)
        rows.append(row)
    print(pd.DataFrame(rows).groupby("group").mean().round(3).to_string())


def _planted_k(name: str) -> int:
    return int(name.split("-")[2])


def refined_k(tables: dict[str, pd.DataFrame]) -> None:
    rows = []
    for name, t in tables.items():
        t = t.reset_index(drop=True)
        Z, truth = t.attrs["Z"].astype(float), np.asarray(t.attrs["truth"])
        sample = np.random.default_rng(0).choice(len(Z), min(1000, len(Z)), replace=False)
        for _, candidate in t[(t.family == "kmeans") & (t.k >= 3)].iterrows():
            labels = _finished(Z, np.asarray(candidate.labels).astype(int), [], name)
            if np.bincount(labels).min() < 0.01 * len(labels):
                continue
            rows.append(
                {
                    "set": name,
                    "group": group(name),
                    "k": int(candidate.k),
                    "ari": planted_ari(truth, labels),
                    "silhouette": silhouette_score(Z[sample], labels[sample]),
                    "calinski_harabasz": calinski_harabasz_score(Z, labels),
                    "davies_bouldin": -davies_bouldin_score(Z, labels),  # higher is better
                }
            )
    table = pd.DataFrame(rows)
    summary = {}
    for criterion in ("silhouette", "calinski_harabasz", "davies_bouldin"):
        picked = table.loc[table.groupby("set")[criterion].idxmax()]
        summary[criterion] = picked.groupby("group").ari.mean()
    at_planted = table[table.k == table.set.map(_planted_k)]
    summary["planted k"] = at_planted.groupby("group").ari.mean()
    summary["best k"] = table.groupby(["group", "set"]).ari.max().groupby("group").mean()
    print(pd.DataFrame(summary).round(3).to_string())


def _start_criteria(Z: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Fixed-k criteria of a partition, oriented so that higher is better."""
    varying = Z[:, Z.std(axis=0) > 1e-9]
    k = int(labels.max()) + 1
    centres = np.array([varying[labels == j].mean(axis=0) for j in range(k)])
    within = varying - centres[labels]
    scatter = within.T @ within / len(varying) + 1e-6 * np.eye(varying.shape[1])
    between = np.cov(varying.T, bias=True) - scatter
    log_det = np.linalg.slogdet(scatter)[1]
    shares = np.bincount(labels) / len(labels)
    return {
        "log det W": -log_det,
        "trace W^-1 B": float(np.trace(np.linalg.solve(scatter, between))),
        "inertia": -float((within**2).sum()),
        "classification likelihood": -0.5 * len(varying) * log_det
        + float((len(labels) * shares * np.log(shares)).sum()),
    }


def starts(tables: dict[str, pd.DataFrame]) -> None:
    rows = []
    for name, t in tables.items():
        t = t.reset_index(drop=True)
        Z, truth = t.attrs["Z"].astype(float), np.asarray(t.attrs["truth"])
        k = _planted_k(name)
        cached = t[(t.family == "kmeans") & (t.k == k)].labels.iloc[0]
        begin = {"cached": np.asarray(cached).astype(int)}
        for seed in range(8):
            begin[f"random {seed}"] = KMeans(k, n_init=1, random_state=100 + seed).fit_predict(Z)
        for times in (2, 3):
            over = KMeans(times * k, n_init=4, random_state=0).fit(Z)
            merged = AgglomerativeClustering(k, linkage="ward")
            begin[f"Ward from {times}k"] = merged.fit_predict(over.cluster_centers_[over.labels_])
        for start, labels in begin.items():
            refined = _finished(Z, labels, [], name)
            rows.append(
                {"set": name, "group": group(name), "start": start}
                | {"ari": planted_ari(truth, refined)}
                | _start_criteria(Z, refined)
            )
    table = pd.DataFrame(rows)
    table["kind"] = table.start.str.replace(r"random \d", "random", regex=True)
    print(table.pivot_table(index="group", columns="kind", values="ari").round(3).to_string())
    picked = {
        criterion: table.loc[table.groupby("set")[criterion].idxmax()].groupby("group").ari.mean()
        for criterion in ("log det W", "trace W^-1 B", "inertia", "classification likelihood")
    }
    print(pd.DataFrame(picked).round(3).to_string())


def main() -> None:
    warnings.filterwarnings("ignore")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "action", choices=["halves", "both-sources", "sparse-kmeans", "refined-k", "starts"]
    )
    parser.add_argument("--cache", type=Path, required=True)
    parser.add_argument("--only", help="sets whose name matches this regular expression")
    parser.add_argument("--k", type=int, default=7, help="halves: the number of segments")
    args = parser.parse_args()
    tables = load_tables(args.cache, args.only)
    if not tables:
        parser.error(f"no cached table in {args.cache}")
    with threadpool_limits(limits=1):
        {
            "halves": lambda: halves(tables, args.k),
            "both-sources": lambda: both_sources(tables),
            "sparse-kmeans": lambda: sparse(tables),
            "refined-k": lambda: refined_k(tables),
            "starts": lambda: starts(tables),
        }[args.action]()


if __name__ == "__main__":
    main()
