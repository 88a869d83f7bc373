"""Persona recovery on generated SaaS companies: ARI of the automatic segments vs planted personas.

    python bench/eval_personas.py [--customers 3000]

Companies come from ``segments demo-data`` with all seven personas or with one left out (six, as in
the acceptance check), through ingest and features as of the last day. Baseline: k-means on the
18 spec features with k chosen by silhouette (2..12), as named in the issue.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score, silhouette_score
from sklearn.preprocessing import StandardScaler

from feature_store.ingest import ingest_files
from feature_store.layout import StoreLayout
from feature_store.registry import FEATURE_NAMES, SPEC_FEATURE_NAMES
from feature_store.timeutil import parse_as_of
from models.segmenter import CustomerSegmenter
from pipelines.demo_data import PERSONAS, generate_company, write_company
from pipelines.feature_pipeline import build_features

COMPANIES = [(0, None), (5, "growing_team"), (9, "dormant_payer"), (11, "steady_smb")]


def silhouette_kmeans(X: np.ndarray) -> np.ndarray:
    S = StandardScaler().fit_transform(X)
    rows = np.random.default_rng(0).choice(len(S), min(len(S), 3000), replace=False)
    fits = {k: KMeans(k, n_init=4, random_state=0).fit_predict(S) for k in range(2, 13)}
    return fits[max(fits, key=lambda k: silhouette_score(S[rows], fits[k][rows]))]


def main() -> None:
    warnings.filterwarnings("ignore")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=3000)
    args = parser.parse_args()
    print(
        f"{'company':<28}{'personas':>9}{'ours k':>8}{'ours ARI':>10}{'fit s':>7}{'sil-kmeans k':>14}{'ARI':>7}"
    )
    for seed, left_out in COMPANIES:
        personas = tuple(p for p in PERSONAS if p.name != left_out)
        company = generate_company(args.customers, 12, seed, personas=personas)
        with tempfile.TemporaryDirectory() as tmp:
            paths = write_company(company, Path(tmp))
            layout = StoreLayout(Path(tmp) / "home")
            ingest_files(layout, {"billing": paths["billing"], "usage": paths["usage"]})
            features = build_features(layout, parse_as_of("2026-06-30")).merge(company.truth)
        truth = features["persona"].astype("category").cat.codes.to_numpy()
        started = time.perf_counter()
        model = CustomerSegmenter(random_state=0).fit(features[list(FEATURE_NAMES)])
        seconds = time.perf_counter() - started
        baseline = silhouette_kmeans(features[list(SPEC_FEATURE_NAMES)].to_numpy(float))
        name = f"seed {seed}, without {left_out}" if left_out else f"seed {seed}, all"
        print(
            f"{name:<28}{len(personas):>9}{model.n_segments_:>8}"
            f"{adjusted_rand_score(truth, model.labels_):>10.3f}{seconds:>7.1f}"
            f"{baseline.max() + 1:>14}{adjusted_rand_score(truth, baseline):>7.3f}"
        )


if __name__ == "__main__":
    main()
