"""Alternatives to the discriminant refinement, replayed on cached candidates: none beat it.

    python bench/finish_variants.py --cache DIR [--only REGEX] [--starts 8] [--refined-k]

``KMeansFamily.finish`` refines the chosen k-means segments by LDA-k-means from one start, the
chosen k-means labels (``models.families.kmeans.discriminant_refinement``). On the six-persona
companies, refining from other k-means starts sometimes recovers the personas far better
(``oracle``: the best start by ARI against the truth), so this bench asks whether anything that
does not read the truth can find that start, or improve on the refinement otherwise:

- ``fisher``: the start whose refined segments have the largest Fisher criterion (the sum of the
  leading k - 1 eigenvalues of the shrunk within-segment covariance's inverse times the between);
- ``wilks``: the smallest log-determinant of the pooled within-segment covariance (Ledoit-Wolf),
  the classification likelihood of Gaussian segments sharing one covariance (Friedman and Rubin);
- ``agreement``: the start agreeing most with the others (mean ARI), the medoid of the starts;
- ``separated``: the start whose refined neighbouring segments all differ in the most features
  (``models.criteria.separating_features``, the count the rule for k believes), ties to the
  chosen start;
- ``consensus``: average-linkage cut at k of the co-assignment matrix over all starts;
- ``tied EM``: a Gaussian mixture with one shared covariance, started from the refined segments
  (the soft, unequal-size version of LDA-k-means);
- ``--refined-k``: k chosen by the same rule on refined candidates (every admissible k-means
  candidate refined, its prediction strength measured on refined halves, as
  ``models.criteria.prediction_strength_scores`` measures the segmenter's); slow, 30-60 s a set.

Tables come from ``bench/selection_study.py collect`` (``docs/evaluation.md``, "Refined
segments"); ARI against each set's first reference, on the selection sample, as ``finish`` does.
"""

from __future__ import annotations

import argparse
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial.distance import squareform
from selection_rules import RULES, _finished, _planted, choose, group
from selection_study import load_tables, planted_ari
from sklearn.cluster import KMeans
from sklearn.covariance import ledoit_wolf
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.metrics import adjusted_rand_score
from sklearn.mixture import GaussianMixture

from models.candidates import Candidate, FittedCandidate
from models.criteria import prediction_strength_scores, separating_features
from models.families.kmeans import KMeansFamily, segment_means
from models.segmenter import CustomerSegmenter, keeps_segments


def refined(Z: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The refinement's labels, or ``labels`` where it gives none (as the segmenter keeps them)."""
    return _finished(Z, labels, [], "")


def fisher(Z: np.ndarray, labels: np.ndarray) -> float:
    k = int(labels.max()) + 1
    try:
        discriminant = LinearDiscriminantAnalysis(solver="eigen", shrinkage="auto").fit(Z, labels)
    except np.linalg.LinAlgError:
        return -np.inf  # no spread within the segments: not a start to prefer
    # the eigen solver's scalings whiten the within-segment covariance, so the between-segment
    # variance along each is its eigenvalue
    coordinates = Z @ discriminant.scalings_
    means = segment_means(coordinates, labels, k)
    sizes = np.bincount(labels, minlength=k)
    between = (sizes[:, None] * (means - coordinates.mean(axis=0)) ** 2).sum(axis=0) / len(Z)
    return float(np.sort(between)[::-1][: k - 1].sum())


def log_det_within(Z: np.ndarray, labels: np.ndarray) -> float:
    residuals = Z - segment_means(Z, labels, int(labels.max()) + 1)[labels]
    return float(np.linalg.slogdet(ledoit_wolf(residuals)[0])[1])


def consensus(partitions: list[np.ndarray], k: int) -> np.ndarray:
    together = np.mean([p[:, None] == p[None, :] for p in partitions], axis=0)
    distance = squareform(1.0 - together, checks=False)
    return fcluster(linkage(distance, method="average"), k, criterion="maxclust") - 1


def tied_em(Z: np.ndarray, labels: np.ndarray) -> np.ndarray:
    k = int(labels.max()) + 1
    X = Z[:, Z.std(axis=0) > 1e-9]
    means = segment_means(X, labels, k)
    covariance = ledoit_wolf(X - means[labels])[0]
    mixture = GaussianMixture(
        k,
        covariance_type="tied",
        weights_init=np.bincount(labels, minlength=k) / len(labels),
        means_init=means,
        precisions_init=np.linalg.inv(covariance),
        reg_covar=1e-4,
        max_iter=200,
        random_state=0,
    )
    return mixture.fit(X).predict(X)


def variants(Z: np.ndarray, labels: np.ndarray, truth: np.ndarray, starts: int) -> dict:
    k = int(labels.max()) + 1
    partitions = [refined(Z, labels)] + [
        refined(Z, KMeans(k, n_init=1, random_state=100 + s).fit(Z).labels_) for s in range(starts)
    ]
    usable = [np.bincount(p, minlength=k).min() >= 2 for p in partitions]
    aris = [planted_ari(truth, p) for p in partitions]

    def best(score) -> float:
        scores = [score(p) if ok else -np.inf for p, ok in zip(partitions, usable, strict=True)]
        return aris[int(np.argmax(scores))]

    return {
        "refined": aris[0],
        "fisher": best(lambda p: fisher(Z, p)),
        "wilks": best(lambda p: -log_det_within(Z, p)),
        "agreement": best(
            lambda p: np.mean(
                [adjusted_rand_score(p, q) for q, ok in zip(partitions, usable, strict=True) if ok]
            )
        ),
        # max() keeps the first of equals: the chosen start wins ties
        "separated": aris[
            max(
                range(len(partitions)),
                key=lambda q: separating_features(Z, partitions[q]) if usable[q] else -1,
            )
        ],
        "consensus": planted_ari(truth, consensus(partitions, k)),
        "tied EM": planted_ari(truth, tied_em(Z, partitions[0])),
        "oracle": max(aris),
    }


class RefinedKMeans(KMeansFamily):
    """k-means whose every fit is refined as the segmenter refines its chosen one (the guard
    included), so ``prediction_strength_scores`` measures refined halves, each half's customers
    placed by the other half's discriminant assigner."""

    def refit(self, candidate: Candidate, Z: np.ndarray, random_state: int) -> FittedCandidate:
        fitted = super().refit(candidate, Z, random_state)
        finished = self.finish(fitted, Z, random_state)
        share = CustomerSegmenter().min_segment_share
        return finished if keeps_segments(fitted.labels, finished.labels, share) else fitted


def refined_k(t: pd.DataFrame, rule: str) -> float:
    """``rule`` replayed on refined candidates: labels (so the separation measure judges refined
    segments) and prediction strength (its mean and split scores) replaced, the rest of the table
    as collected. ARI against the first reference, as the other columns."""
    # choose() caches the separation of the collected labels in ``sep*`` columns: recomputed here
    t = t.drop(columns=[c for c in t.columns if str(c).startswith("sep")])
    Z, truth = t.attrs["Z"].astype(float), np.asarray(t.attrs["truth"])
    for i in t.index[(t.family == "kmeans") & t.admissible]:
        labels = refined(Z, np.asarray(t.labels[i]).astype(int))
        t.at[i, "labels"] = labels.astype(np.int16)
        t.loc[i, "ari"] = planted_ari(truth, labels)
        if t.k[i] >= 3 and not pd.isna(t.ps[i]):
            scores = prediction_strength_scores(RefinedKMeans().candidate(int(t.k[i])), Z, 4, 0)
            t.loc[i, "ps"] = float(np.mean(scores))
            t.at[i, "ps_scores"] = scores
    return float(t.ari[choose(t, RULES[rule])])


def main() -> None:
    warnings.filterwarnings("ignore")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, required=True)
    parser.add_argument("--only", help="the sets whose name matches this regular expression")
    parser.add_argument("--starts", type=int, default=8, help="k-means starts besides the chosen")
    parser.add_argument("--rule", default="adopted", help="the selection rule replayed")
    parser.add_argument("--refined-k", action="store_true", help="also choose k on refined fits")
    args = parser.parse_args()
    if args.rule not in RULES:
        parser.error(f"--rule: no rule {args.rule!r}; one of {list(RULES)}")
    if args.starts < 1:
        parser.error("--starts: at least 1")
    try:
        tables = load_tables(args.cache, args.only)
    except re.error as error:
        parser.error(f"--only: not a regular expression: {error}")
    if not tables:
        parser.error(f"no candidate tables in {args.cache}: run selection_study.py collect first")
    rows = []
    for name, t in tables.items():
        t = t.reset_index(drop=True)
        Z, truth = t.attrs["Z"].astype(float), np.asarray(t.attrs["truth"])
        chosen = choose(t, RULES[args.rule])
        picks = [("chosen k", chosen)] if t.family[chosen] == "kmeans" else []
        if name.startswith("gen/"):
            told = t.index[(t.family == "kmeans") & (t.k == _planted(name))]
            picks += [("told k", told[0])] if len(told) else []
        for which, i in picks:
            labels = np.asarray(t.labels[i]).astype(int)
            row = {"set": name, "group": group(name), "k": which}
            row |= variants(Z, labels, truth, args.starts)
            if args.refined_k and which == "chosen k":
                row["k on refined fits"] = refined_k(t, args.rule)
            rows.append(row)
            print(
                f"{name} ({which}): "
                + ", ".join(
                    f"{key} {value:.3f}" for key, value in row.items() if isinstance(value, float)
                ),
                flush=True,
            )
    if not rows:
        parser.error("no set where the rule chose k-means")
    played = pd.DataFrame(rows)
    columns = [c for c in played.columns if c not in ("set", "group", "k")]
    summary = played.groupby(["group", "k"])[columns].mean()
    counts = played.groupby(["group", "k"]).size().rename("sets")
    print()
    print(pd.concat([counts, summary], axis=1).round(3).to_string())


if __name__ == "__main__":
    main()
