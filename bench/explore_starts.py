"""Exploration: the discriminant refinement started from other partitions than ours, told k.

    PYTHONPATH=$PWD:$PWD/bench python bench/explore_starts.py --generator blind \
        --variants clean nuisance --seeds 0 1 2 3

For each six-persona company of 3,000 customers (the companies of ``bench/eval_generators.py``,
the same for the same seed), told the planted six: the refinement (``discriminant_refinement``,
on our preprocessed matrix) started from k-means on our matrix (what the segmenter does, up to its
sampling), on the same features standardised instead of range-scaled, on a quantile transform (each
column's ranks, times its agreement and reliability weight), on our matrix with billing and usage
weighing alike (each registry family's columns divided by the root of the family's total variance,
the "family balancing" issue 9 names), and from a consensus of the first three
(evidence accumulation, Fred and Jain 2005: the share of 15 k-means runs, five per scale on 80% of
the columns, that put two customers together, cut by average linkage). ARI against the personas
for each, then which start three criteria of fit would keep, each computed on the refined segments
with the refinement's own shrunk within-segment covariance: Friedman and Rubin's trace(W^-1 B),
the log-determinant of W (its smaller, the better), and the classification likelihood of a
mixture with one shared covariance (then whether the planted personas themselves score better
than the start kept); and, no criterion of fit, the smaller of the shares of the
value and the usage families' variance that lies between the segments. ``docs/evaluation.md``,
"The refinement from other starts".
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np
from eval_generators import GENERATORS, Setting, as_training_sees_it
from sklearn.cluster import AgglomerativeClustering, KMeans
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.metrics import adjusted_rand_score
from sklearn.preprocessing import QuantileTransformer

from feature_store.registry import find
from models.families.kmeans import discriminant_refinement
from models.preprocessing import NORMAL_SPAN, FeaturePreprocessor
from models.segmenter import segmenter_for

PERSONAS = 6
CONSENSUS_SUBSETS = 5  # k-means runs per scale in the consensus, each on 80% of the columns


def scales(X, reliability) -> tuple[dict[str, np.ndarray], list[str]]:
    """Our matrix, the same standardised, and a quantile transform with the same weights; the
    names of our matrix's columns."""
    ours = FeaturePreprocessor(sources="registry").fit(X, reliability=reliability)
    standardised = FeaturePreprocessor(sources="registry", scaling="std")
    weights = ours.weights_[ours.kept_]
    ranks = QuantileTransformer(n_quantiles=200).fit_transform(X.to_numpy(float)[:, ours.kept_])
    return {
        "range": ours.transform(X),
        "std": standardised.fit(X, reliability=reliability).transform(X),
        "quantile": (ranks - ranks.mean(axis=0)) * NORMAL_SPAN * weights,
    }, [str(name) for name in ours.get_feature_names_out()]


def families_alike(Z: np.ndarray, columns: list[str]) -> np.ndarray:
    """``Z`` with each feature family's columns scaled to a total variance of 1."""
    family = np.array([find(name).family for name in columns])
    balanced = Z.copy()
    for name in set(family):
        block = balanced[:, family == name]
        balanced[:, family == name] = block / np.sqrt(block.var(axis=0).sum())
    return balanced


def consensus(matrices: dict[str, np.ndarray], k: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    together = np.zeros((len(next(iter(matrices.values()))),) * 2, dtype=np.float32)
    runs = 0
    for Z in matrices.values():
        for _ in range(CONSENSUS_SUBSETS):
            columns = rng.choice(Z.shape[1], max(1, int(0.8 * Z.shape[1])), replace=False)
            labels = KMeans(k, n_init=1, random_state=int(rng.integers(2**31))).fit_predict(
                Z[:, columns]
            )
            together += labels[:, None] == labels[None, :]
            runs += 1
    apart = 1 - together / runs
    return AgglomerativeClustering(k, metric="precomputed", linkage="average").fit_predict(apart)


def between_share(block: np.ndarray, labels: np.ndarray) -> float:
    """The share of ``block``'s variance that lies between the segments (eta squared)."""
    within = sum(
        ((block[labels == s] - block[labels == s].mean(axis=0)) ** 2).sum()
        for s in np.unique(labels)
    )
    return float(1 - within / ((block - block.mean(axis=0)) ** 2).sum())


def fit_criteria(Z: np.ndarray, labels: np.ndarray, columns: list[str]) -> dict[str, float]:
    """Larger is better for each. The likelihood leaves out its trace term, constant only for the
    unshrunk covariance. The last is no criterion of fit: the smaller of the shares of the value
    family's and the usage family's variance between the segments (segments from billing and
    usage together)."""
    family = np.array([find(name).family for name in columns])
    both = min(between_share(Z[:, family == name], labels) for name in set(family))
    Z = Z[:, Z.std(axis=0) > 1e-12]
    discriminant = LinearDiscriminantAnalysis(
        solver="eigen", shrinkage="auto", store_covariance=True
    ).fit(Z, labels)
    within = discriminant.covariance_
    shares = discriminant.priors_  # each segment's share, in the order of ``means_``
    centred = discriminant.means_ - Z.mean(axis=0)
    between = (centred.T * shares) @ centred
    _, log_det = np.linalg.slogdet(within)
    return {
        "trace W^-1 B": float(np.trace(np.linalg.solve(within, between))),
        "-1/2 log det W": -0.5 * log_det,
        "likelihood": -0.5 * log_det + float((shares * np.log(shares)).sum()),
        "both families' share": both,
    }


def main() -> None:
    warnings.filterwarnings("ignore")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generator", choices=list(GENERATORS), default="blind")
    parser.add_argument("--variants", nargs="+", default=["clean", "nuisance"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    args = parser.parse_args()
    totals: dict[str, list[float]] = {}
    for seed in args.seeds:
        for variant in args.variants:
            setting = Setting(args.generator, 3000, PERSONAS, variant)
            X, personas, reliability = as_training_sees_it(setting, seed)
            matrices, columns = scales(X, reliability)
            ours = matrices["range"]
            starts = {
                name: KMeans(PERSONAS, n_init=4, random_state=0).fit_predict(Z)
                for name, Z in matrices.items()
            }
            starts["consensus"] = consensus(matrices, PERSONAS)
            starts["families alike"] = KMeans(PERSONAS, n_init=4, random_state=0).fit_predict(
                families_alike(ours, columns)
            )
            found, criteria = {}, {}
            for name, start in starts.items():
                refined = discriminant_refinement(ours, start, 0)
                labels = refined[0] if refined else start
                found[name] = adjusted_rand_score(personas, labels)
                criteria[name] = fit_criteria(ours, labels, columns)
            # the planted personas scored as one more partition: do the criteria prefer them?
            truth = fit_criteria(ours, personas, columns)
            told = segmenter_for(PERSONAS, random_state=0).fit(X, reliability=reliability)
            row = {"segmenter told six": adjusted_rand_score(personas, told.labels_)}
            row |= {f"start {name}": adjusted_rand_score(personas, s) for name, s in starts.items()}
            row |= {f"refined from {name}": ari for name, ari in found.items()}
            for criterion in truth:
                kept = max(criteria, key=lambda name: criteria[name][criterion])
                row[f"start kept by {criterion}"] = found[kept]
                row[f"personas beat it by {criterion}"] = float(
                    truth[criterion] > criteria[kept][criterion]
                )
            family = np.array([find(name).family for name in columns])
            row["usage / value variance"] = float(
                ours[:, family == "behavioural"].var(axis=0).sum()
                / ours[:, family == "value"].var(axis=0).sum()
            )
            for key, value in row.items():
                totals.setdefault(key, []).append(value)
            print(
                f"{args.generator} {variant} seed {seed}: "
                + "; ".join(f"{key} {value:.3f}" for key, value in row.items()),
                flush=True,
            )
    print(f"mean over {len(next(iter(totals.values())))} companies:")
    for key, values in totals.items():
        print(f"  {key}: {np.mean(values):.3f}")


if __name__ == "__main__":
    main()
