"""Two alternatives to the segmenter's k-means segments, replayed on the candidate tables of
``bench/selection_study.py collect`` (``docs/evaluation.md``, "The gap statistic and diagonal
mixtures").

    python bench/kmeans_alternatives.py --cache DIR [--cache DIR ...]

For each cached data set (its selection sample, its planted labels, every k-means candidate's
inertia and stability):

- **gap statistic** (Tibshirani, Walther and Hastie 2001, JRSS B 63): log W_k against its mean
  over ``REFERENCE_DRAWS`` reference sets uniform in the box of the sample's principal axes (the
  reference of ``models.criteria.reference_stability``); k chosen by the authors' rule (the
  smallest k with Gap(k) >= Gap(k+1) - s(k+1)) and by the largest gap. The k-means answer
  replaces the adopted rule's, and the segmenter's last step (``bench/finalist_study.py``, the
  density-against-partitions rule) chooses among the finalists as before.
- **Gaussian mixtures with diagonal and full covariance**, on generated companies at the planted
  k (three starts each), against the segmenter's k-means told that k (the lowest inertia of ten
  starts, refined by ``discriminant_refinement``). The segmenter's mixtures have full
  covariance; a diagonal one gives each segment its own spread per column, which a persona wide
  in some columns might need. (Choosing among k-means starts by trace W^-1 B is
  ``bench/explore_oversplit.py starts``.)

Printed: the mean ARI of each against the adopted rule, per cache. The reference inertias are
computed here (seconds per set); nothing is written.
"""

from __future__ import annotations

import argparse
import itertools
import pickle
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from finalist_study import density_against_partitions
from selection_rules import RULES, _other_favourites
from selection_study import load_tables, planted_ari
from sklearn.cluster import KMeans
from sklearn.mixture import GaussianMixture
from threadpoolctl import threadpool_limits

from models.families.kmeans import discriminant_refinement

REFERENCE_DRAWS = 5
STARTS = 10  # k-means starts, as the segmenter fits them


def reference_log_inertia(Z: np.ndarray, ks: list[int]) -> dict[int, tuple[float, float]]:
    """Mean and standard error (with the authors' sqrt(1 + 1/B)) of log W_k on uniform
    reference sets."""
    rng = np.random.default_rng(0)
    centre = Z.mean(axis=0)
    _, _, axes = np.linalg.svd(Z - centre, full_matrices=False)
    projected = (Z - centre) @ axes.T
    logs: dict[int, list[float]] = {k: [] for k in ks}
    for draw in range(REFERENCE_DRAWS):
        reference = rng.uniform(projected.min(axis=0), projected.max(axis=0), projected.shape)
        for k in ks:
            fit = KMeans(k, n_init=3, random_state=draw).fit(reference)
            logs[k].append(float(np.log(fit.inertia_)))
    spread = np.sqrt(1 + 1 / REFERENCE_DRAWS)
    return {k: (float(np.mean(v)), float(np.std(v)) * spread) for k, v in logs.items()}


def gap_choices(table: pd.DataFrame) -> tuple[int, int]:
    """The k-means candidates the gap statistic chooses: (the authors' rule, the largest gap)."""
    kmeans = table[(table.family == "kmeans") & table.admissible].sort_values("k")
    reference = reference_log_inertia(
        np.asarray(table.attrs["Z"], dtype=float), [int(s) for s in kmeans.setting]
    )
    gaps = {
        i: (reference[int(row.setting)][0] - np.log(row.inertia), reference[int(row.setting)][1])
        for i, row in kmeans.iterrows()
    }
    order = list(kmeans.index)
    authors = next(
        (a for a, b in itertools.pairwise(order) if gaps[a][0] >= gaps[b][0] - gaps[b][1]),
        order[-1],
    )
    return int(authors), int(max(order, key=lambda i: gaps[i][0]))


def final_choice(table: pd.DataFrame, kmeans_answer: int, reference: dict[int, float]) -> int:
    """The segmenter's last step with ``kmeans_answer`` as the k-means finalist."""
    finalists = [kmeans_answer, *_other_favourites(table)]
    return density_against_partitions(table, finalists, reference)


def refined(Z: np.ndarray, labels: np.ndarray) -> np.ndarray:
    result = discriminant_refinement(Z, labels, 0)
    return labels if result is None else result[0]


def at_planted_k(Z: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    k = len(np.unique(truth))
    segmenter_fit = refined(Z, KMeans(k, n_init=STARTS, random_state=0).fit(Z).labels_)
    out = {"planted k: k-means, refined (the segmenter's)": planted_ari(truth, segmenter_fit)}
    for covariance in ("diag", "full"):
        mixture = GaussianMixture(
            k, covariance_type=covariance, n_init=3, reg_covar=1e-4, random_state=0
        ).fit(Z)
        out[f"planted k: Gaussian mixture, {covariance} covariance"] = planted_ari(
            truth, mixture.predict(Z)
        )
    return out


def main() -> None:
    warnings.filterwarnings("ignore")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, action="append", required=True)
    args = parser.parse_args()
    for cache in args.cache:
        tables = {n: t for n, t in load_tables(cache).items() if "Z" in t.attrs}
        if not tables:
            parser.error(f"no candidate tables in {cache}: run selection_study.py collect first")
        path = cache / "reference.pickle"
        references = pickle.loads(path.read_bytes()) if path.exists() else {}
        rows = []
        with threadpool_limits(limits=1):
            for name, table in tables.items():
                reference = references.get(name, {})
                adopted = RULES["adopted"](table)
                authors, largest = gap_choices(table)
                row = {
                    "adopted rule": table.ari[final_choice(table, adopted, reference)],
                    "gap statistic, the authors' rule": table.ari[
                        final_choice(table, authors, reference)
                    ],
                    "gap statistic, the largest gap": table.ari[
                        final_choice(table, largest, reference)
                    ],
                }
                truth = np.asarray(table.attrs["truth"])
                if truth.dtype.kind in "OUS":  # a generated company's persona names
                    row.update(at_planted_k(np.asarray(table.attrs["Z"], dtype=float), truth))
                rows.append(row)
        means = pd.DataFrame(rows).mean()
        print(f"{cache}: {len(rows)} sets, mean ARI")
        for label, value in means.items():
            print(f"  {label:<58} {value:.3f}")


if __name__ == "__main__":
    main()
