"""Selection rules replayed on the candidate tables of ``bench/selection_study.py``.

Each rule names the k-means favourite; the other families' favourites (GMM: BIC, HDBSCAN:
relative validity) and the final choice (most stable finalist, ties within 0.02 to more
segments, then silhouette) are the segmenter's, so a row differs from ``previous`` only by the
k-means rule. ``previous`` is the rule before 2026-12-02; ``within noise`` the one adopted that
morning (with no reproducible k, the best silhouette unless a k within its noise reproduces better
beyond the noise of prediction strength); ``separated`` the rule from 2026-12-02 to 2026-12-06
(the finer of ``within noise``'s k and the largest k whose neighbouring segments differ in at
least four features and whose prediction strength is at least 0.8); ``adopted`` is the
segmenter's rule since (``models/families/kmeans.py``: ``separated``, then a finer k that both
the silhouette and the Calinski-Harabasz index clearly prefer).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
from eval_generators import QUICK
from scipy.sparse.csgraph import connected_components
from selection_study import planted_ari
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.model_selection import cross_val_predict

from models.criteria import gabriel_neighbours, separating_features
from models.families.kmeans import (
    CALINSKI_HARABASZ_TOLERANCE,
    NOISE_Z,
    SEPARATED_PREDICTION_STRENGTH,
    SEPARATING_FEATURES,
    discriminant_refinement,
)
from models.segmenter import CustomerSegmenter, keeps_segments

Rule = Callable[[pd.DataFrame], int | None]
TOLERANCE = 0.02


def _kmeans(t: pd.DataFrame) -> pd.DataFrame:
    return t[(t.family == "kmeans") & t.admissible]


def _ch_best(pool: pd.DataFrame, tolerance: float = 0.03) -> int:
    tied = pool[pool.ch >= (1 - tolerance) * pool.ch.max()]
    return int(tied.k.idxmax())


def _silhouette_fallback(km: pd.DataFrame) -> int | None:
    return None if km.empty else int(km.silhouette.idxmax())


def previous(t: pd.DataFrame) -> int | None:
    km = _kmeans(t)
    pool = km[(km.k >= 3) & (km.ps >= 0.9)]
    return _ch_best(pool) if len(pool) else _silhouette_fallback(km)


def fixed_threshold(threshold: float) -> Rule:
    def rule(t: pd.DataFrame) -> int | None:
        km = _kmeans(t)
        pool = km[(km.k >= 3) & (km.ps >= threshold)]
        return _ch_best(pool) if len(pool) else _silhouette_fallback(km)

    return rule


def chance_corrected(threshold: float, choose: str = "ch") -> Rule:
    """Prediction strength corrected for chance like the adjusted Rand index:
    (PS - 1/k) / (1 - 1/k) >= threshold, i.e. PS >= threshold + (1 - threshold) / k."""

    def rule(t: pd.DataFrame) -> int | None:
        km = _kmeans(t)
        corrected = (km.ps - 1 / km.k) / (1 - 1 / km.k)
        pool = km[(km.k >= 3) & (corrected >= threshold)]
        if pool.empty:
            return _silhouette_fallback(km)
        return _ch_best(pool) if choose == "ch" else int(pool.k.idxmax())

    return rule


def _silhouette_band(km: pd.DataFrame, z: float, paired: bool) -> pd.Index:
    """The k whose silhouette is within ``z`` standard errors of the best one's. The standard
    error is that of a mean over the customers the silhouette is measured on: of the best
    candidate's per-customer silhouettes, or (``paired``) of each candidate's difference from it
    on the same customers."""
    best = km.silhouette.idxmax()
    top = np.asarray(km.silhouette_points[best])
    band = []
    for i in km.index:
        points = np.asarray(km.silhouette_points[i])
        spread = (top - points).std() if paired else top.std()
        if km.silhouette[i] >= km.silhouette[best] - z * spread / np.sqrt(len(top)):
            band.append(i)
    return pd.Index(band)


def _before_fallback(km: pd.DataFrame) -> tuple[bool, int | None]:
    """What ``previous`` decides before any fallback: (True, the reproducible k >= 3 with the
    best Calinski-Harabasz, or None without candidates, or the best silhouette when that is
    k = 2); else (False, the best silhouette's row), which a fallback rule may overrule."""
    pool = km[(km.k >= 3) & (km.ps >= 0.9)]
    if len(pool):
        return True, _ch_best(pool)
    if km.empty:
        return True, None
    best = int(km.silhouette.idxmax())
    return bool(km.k[best] < 3), best


def banded_fallback(z: float, paired: bool = False, chance: bool = False) -> Rule:
    """``previous``; when no k >= 3 reproduces, the most reproducible (highest prediction
    strength, optionally chance-corrected) among the k >= 3 whose silhouette is within ``z``
    standard errors of the best silhouette; the best silhouette itself when that is k = 2."""

    def rule(t: pd.DataFrame) -> int | None:
        km = _kmeans(t)
        decided, best = _before_fallback(km)
        if decided or "silhouette_points" not in km or km.silhouette_points[best] is None:
            return best
        band = km.loc[_silhouette_band(km, z, paired)]
        band = band[band.k >= 3]
        strength = (band.ps - 1 / band.k) / (1 - 1 / band.k) if chance else band.ps
        return int(strength.idxmax())

    return rule


def noisy_fallback(z_sil: float = 2.0, z_ps: float = 2.0, paired: bool = True) -> Rule:
    """``previous``; when no k >= 3 reproduces, the best silhouette, unless a k >= 3 whose
    silhouette is within ``z_sil`` standard errors of it reproduces better by more than ``z_ps``
    standard errors of the difference in prediction strength (over the 2 x 4 split scores: the
    same halves for every k, so ``paired`` compares them split by split)."""

    def rule(t: pd.DataFrame) -> int | None:
        km = _kmeans(t)
        decided, best = _before_fallback(km)
        if decided:
            return best
        top = np.asarray(km.silhouette_points[best])
        bar = km.silhouette[best] - z_sil * top.std(ddof=1) / np.sqrt(len(top))
        band = km[(km.k >= 3) & (km.silhouette >= bar)]
        challenger = int(band.ps.idxmax())
        a, b = np.asarray(km.ps_scores[challenger]), np.asarray(km.ps_scores[best])
        if paired:
            se = (a - b).std(ddof=1) / np.sqrt(len(a))
        else:
            se = np.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b))
        return challenger if a.mean() - b.mean() > z_ps * se else best

    return rule


def largest_reproducible(threshold: float) -> Rule:
    """Tibshirani and Walther's own rule: the largest k with PS >= threshold."""

    def rule(t: pd.DataFrame) -> int | None:
        km = _kmeans(t)
        pool = km[(km.k >= 3) & (km.ps >= threshold)]
        return int(pool.k.idxmax()) if len(pool) else _silhouette_fallback(km)

    return rule


def loose_calinski_harabasz(tolerance: float) -> Rule:
    """``within noise`` with Calinski-Harabasz near-ties up to ``tolerance`` (relative) instead of 3%:
    among reproducible k, the finest whose index is within ``tolerance`` of the best."""

    def rule(t: pd.DataFrame) -> int | None:
        km = _kmeans(t)
        pool = km[(km.k >= 3) & (km.ps >= 0.9)]
        return _ch_best(pool, tolerance) if len(pool) else noisy_fallback()(t)

    return rule


def largest_then_noisy(threshold: float) -> Rule:
    """Tibshirani and Walther's largest reproducible k; ``within noise``'s fallback when none is."""

    def rule(t: pd.DataFrame) -> int | None:
        km = _kmeans(t)
        pool = km[(km.k >= 3) & (km.ps >= threshold)]
        return int(pool.k.idxmax()) if len(pool) else noisy_fallback()(t)

    return rule


def jump(t: pd.DataFrame) -> int | None:
    """Sugar and James (2003): the largest jump in transformed distortion d_k^(-p/2)."""
    km = _kmeans(t).sort_values("k")
    if km.empty:
        return None
    all_km = t[t.family == "kmeans"].sort_values("k")
    p = float(all_km.d.iloc[0])
    n = float(all_km.n.iloc[0])
    distortion = {int(r.k): r.inertia / (n * p) for r in all_km.itertuples()}
    distortion[1] = np.nan  # no k=1 fit in the table: use total variance
    y = p / 2
    transformed = {k: d ** (-y) for k, d in distortion.items() if k >= 2}
    jumps = {
        k: transformed[k] - transformed.get(k - 1, 0.0) for k in transformed if k - 1 in transformed
    }
    admissible = {int(r.k): i for i, r in km.iterrows()}
    best = max((k for k in jumps if k in admissible), key=lambda k: jumps[k], default=None)
    return admissible[best] if best is not None else None


def _with_separation(t: pd.DataFrame, effect: float = 1.0) -> pd.DataFrame:
    column = f"sep{effect}"
    if column not in t:
        Z = np.asarray(t.attrs["Z"], dtype=float)
        t[column] = [
            separating_features(Z, np.asarray(labels), effect) if family == "kmeans" else np.nan
            for family, labels in zip(t.family, t.labels, strict=True)
        ]
    return t


def separated_reproducible(
    threshold: float,
    features: float,
    effect: float = 1.0,
    ch_tolerance: float | None = None,
) -> Rule:
    """The largest k >= 3 with prediction strength >= ``threshold`` whose neighbouring segments
    all differ in at least ``features`` columns (a share of the columns when below 1); else
    ``within noise``'s choice."""

    def rule(t: pd.DataFrame) -> int | None:
        if "labels" not in t:
            raise ValueError(
                "this cache was collected before the tables kept labels: collect it again"
            )
        km = _kmeans(_with_separation(t, effect))
        needed = features if features >= 1 else max(2.0, features * float(km.d.iloc[0]))
        pool = km[(km.k >= 3) & (km.ps >= threshold) & (km[f"sep{effect}"] >= needed)]
        if pool.empty:
            return noisy_fallback()(t)
        if ch_tolerance is not None:
            return _ch_best(pool, ch_tolerance)
        return int(pool.k.idxmax())

    return rule


def grouped_separating_features(Z: np.ndarray, labels: np.ndarray, r: float) -> int:
    """``models.criteria.separating_features``, but columns that move together count once: within
    each pair of neighbouring segments, separating columns whose pooled within-pair correlation
    is at least ``r`` in absolute value are joined (connected components), and the pair counts
    its groups. Tried against the agent over-split, not adopted (``docs/segmentation.md``)."""
    segments = [s for s in np.unique(labels) if s >= 0]
    if len(segments) < 2:
        return 0
    blocks = [Z[labels == s] for s in segments]
    centres = np.array([block.mean(axis=0) for block in blocks])
    fewest = Z.shape[1]
    for i, j in gabriel_neighbours(centres):
        if min(len(blocks[i]), len(blocks[j])) < 2:
            return 0
        centred = np.vstack([blocks[i] - centres[i], blocks[j] - centres[j]])
        pooled = (centred**2).sum(axis=0) / (len(centred) - 2)
        gap = np.abs(centres[i] - centres[j])
        separates = np.where(pooled > 1e-12, gap > np.sqrt(pooled), gap > 1e-9)
        columns = np.flatnonzero(separates & (pooled > 1e-12))
        constant = int((separates & (pooled <= 1e-12)).sum())  # no spread: a group each
        if len(columns) > 1:
            correlation = np.nan_to_num(np.corrcoef(centred[:, columns], rowvar=False))
            groups, _ = connected_components(np.abs(correlation) >= r, directed=False)
        else:
            groups = len(columns)
        fewest = min(fewest, int(groups) + constant)
    return fewest


def separated_grouped(r: float) -> Rule:
    """``adopted`` with separating columns counted once per group that moves together
    (``grouped_separating_features``)."""

    def rule(t: pd.DataFrame) -> int | None:
        column = f"sep_grouped{r}"
        if column not in t:
            Z = np.asarray(t.attrs["Z"], dtype=float)
            t[column] = [
                grouped_separating_features(Z, np.asarray(labels), r)
                if family == "kmeans"
                else np.nan
                for family, labels in zip(t.family, t.labels, strict=True)
            ]
        base = noisy_fallback()(t)
        km = _kmeans(t)
        pool = km[
            (km.k >= 3)
            & (km.ps >= SEPARATED_PREDICTION_STRENGTH)
            & (km[column] >= SEPARATING_FEATURES)
        ]
        if base is not None:
            pool = pool[pool.k > t.k[base]]
        return base if pool.empty else int(pool.k.idxmax())

    return rule


def separated_paying(tolerance: float = 0.03) -> Rule:
    """``separated`` (the rule adopted until 2026-12-06), but the finer separated k must also pay
    for its segments: its Calinski-Harabasz index at least ``1 - tolerance`` times that of
    ``within noise``'s answer.
    Tried against the agent over-split, not adopted (``docs/segmentation.md``)."""

    def rule(t: pd.DataFrame) -> int | None:
        base = noisy_fallback()(t)
        if base is None:
            return None
        pool = _finer_separated(t, base)
        pool = pool[pool.ch >= (1 - tolerance) * t.ch[base]]
        return base if pool.empty else int(pool.k.idxmax())

    return rule


def _finer_separated(t: pd.DataFrame, base: int) -> pd.DataFrame:
    """The k-means candidates finer than ``base`` that the adopted rule's separated branch would
    take: prediction strength and separating features above its bars."""
    km = _kmeans(_with_separation(t))
    return km[
        (km.k > t.k[base])
        & (km.ps >= SEPARATED_PREDICTION_STRENGTH)
        & (km["sep1.0"] >= SEPARATING_FEATURES)
    ]


def separated_as_cohesive(z: float = 2.0) -> Rule:
    """``separated``, but the finer separated k must also be as cohesive: its silhouette no lower
    than that of ``within noise``'s answer by more than ``z`` standard errors of their paired
    per-customer difference. Tried against the agent over-split, not adopted (``docs/segmentation.md``)."""

    def rule(t: pd.DataFrame) -> int | None:
        base = noisy_fallback()(t)
        if base is None:
            return None
        if "silhouette_points" not in t or t.silhouette_points[base] is None:
            return base  # a cache collected before the per-customer silhouettes were kept
        pool = _finer_separated(t, base)
        top = np.asarray(t.silhouette_points[base])
        for i in pool.sort_values("k", ascending=False).index:
            difference = top - np.asarray(pool.silhouette_points[i])
            se = difference.std(ddof=1) / np.sqrt(len(difference))
            if difference.mean() <= z * se:
                return int(i)
        return base

    return rule


def separated_above_reproducible(t: pd.DataFrame) -> int | None:
    """``separated``, but a finer separated k replaces only a reproducible answer: where no k >= 3
    reproduces (the silhouette fallback decided), that answer stands. Tried against the agent
    over-split, not adopted (``docs/segmentation.md``)."""
    km = _kmeans(t)
    if len(km[(km.k >= 3) & (km.ps >= 0.9)]):
        return RULES["separated"](t)
    return noisy_fallback()(t)


def finer_by_both_indices(rule: Rule) -> Rule:
    """``rule``, then a finer k whose silhouette is higher by more than ``NOISE_Z`` standard
    errors of the difference and whose Calinski-Harabasz index is higher by more than
    ``CALINSKI_HARABASZ_TOLERANCE`` (``models.families.kmeans._finer_by_both_indices``)."""

    def replayed(t: pd.DataFrame) -> int | None:
        base = rule(t)
        if base is None or "silhouette_points" not in t or t.silhouette_points[base] is None:
            return base  # a cache collected before the per-customer silhouettes were kept
        km = _kmeans(t)

        def error(i: int) -> float:
            points = np.asarray(t.silhouette_points[i])
            return float(points.std(ddof=1) / np.sqrt(len(points)))

        finer = [
            i
            for i in km[km.k > t.k[base]].index
            if t.silhouette_points[i] is not None
            and t.silhouette[i] - t.silhouette[base] > NOISE_Z * np.hypot(error(i), error(base))
            and t.ch[i] > (1 + CALINSKI_HARABASZ_TOLERANCE) * t.ch[base]
        ]
        return max(finer, key=lambda i: (t.silhouette[i], t.k[i]), default=base)

    return replayed


def finer_of(*rules: Rule) -> Rule:
    """The choice with the most segments among ``rules``' (ties to the first rule)."""

    def rule(t: pd.DataFrame) -> int | None:
        chosen = [i for i in (r(t) for r in rules) if i is not None]
        return max(chosen, key=lambda i: t.k[i], default=None)

    return rule


def _other_favourites(t: pd.DataFrame) -> list[int]:
    out = []
    gmm = t[(t.family == "gmm") & t.admissible]
    # as ``GaussianMixtureFamily.propose``: no proposal when the BIC still falls at the most
    # components among the admissible ones
    if len(gmm) == 1 or (len(gmm) > 1 and gmm.bic.idxmin() != gmm.k.idxmax()):
        out.append(int(gmm.bic.idxmin()))
    hdb = t[(t.family == "hdbscan") & t.admissible]
    if len(hdb):
        out.append(int(hdb.relative_validity.idxmax()))
    return out


def choose(t: pd.DataFrame, kmeans_rule: Rule) -> int:
    finalists = [i for i in [kmeans_rule(t), *_other_favourites(t)] if i is not None]
    if not finalists:
        km = t[t.family == "kmeans"]
        return int(km.silhouette.idxmax())
    stab = t.loc[finalists, "stability"].fillna(0.0)
    tied = stab[stab >= stab.max() - TOLERANCE].index
    return int(max(tied, key=lambda i: (t.k[i], t.silhouette[i])))


RULES: dict[str, Rule] = {
    "previous": previous,
    "within noise": noisy_fallback(),
    # ties (two k-means settings with the same number of segments) go to ``within noise``'s
    # choice, as in ``KMeansFamily.propose``
    "adopted": finer_by_both_indices(
        finer_of(
            noisy_fallback(),
            separated_reproducible(SEPARATED_PREDICTION_STRENGTH, SEPARATING_FEATURES),
        )
    ),
    # the rule before 2026-12-06, without the finer k both indices prefer
    "separated": finer_of(
        noisy_fallback(),
        separated_reproducible(SEPARATED_PREDICTION_STRENGTH, SEPARATING_FEATURES),
    ),
    "separated paying": separated_paying(),
    "separated paying 10%": separated_paying(0.10),
    "separated above reproducible": separated_above_reproducible,
    "separated cohesive": separated_as_cohesive(),
    "separated grouped r0.7": separated_grouped(0.7),
    "separated grouped r0.5": separated_grouped(0.5),
    "ps>=0.8": fixed_threshold(0.8),
    "ps>=0.85": fixed_threshold(0.85),
    "cc>=0.8": chance_corrected(0.8),
    "cc>=0.75": chance_corrected(0.75),
    "largest ps>=0.9": largest_reproducible(0.9),
    "largest ps>=0.8": largest_reproducible(0.8),
    "largest cc>=0.8": chance_corrected(0.8, "largest"),
    "largest cc>=0.75": chance_corrected(0.75, "largest"),
    "largest cc>=0.85": chance_corrected(0.85, "largest"),
    "largest ps>=0.85": largest_reproducible(0.85),
    "jump": jump,
    "band z1": banded_fallback(1.0),
    "band z2": banded_fallback(2.0),
    "band z1 paired": banded_fallback(1.0, paired=True),
    "band z2 paired": banded_fallback(2.0, paired=True),
    "band z2 cc": banded_fallback(2.0, chance=True),
    "band z3 paired": banded_fallback(3.0, paired=True),
    "within noise, unpaired ps": noisy_fallback(paired=False),
    "within noise, ps z1": noisy_fallback(z_ps=1.0),
    "ch 10%": loose_calinski_harabasz(0.10),
    "ch 15%": loose_calinski_harabasz(0.15),
    "ch 30%": loose_calinski_harabasz(0.30),
    "largest ps>=0.9, noisy": largest_then_noisy(0.9),
    "sep3 ps>=0.8": separated_reproducible(0.8, 3),
    "sep4 ps>=0.8": separated_reproducible(0.8, 4),
    "sep5 ps>=0.8": separated_reproducible(0.8, 5),
    "sep3 ps>=0.7": separated_reproducible(0.7, 3),
    "sep4 ps>=0.7": separated_reproducible(0.7, 4),
    "sep5 ps>=0.7": separated_reproducible(0.7, 5),
    "sep.15d ps>=0.8": separated_reproducible(0.8, 0.15),
    "sep.2d ps>=0.8": separated_reproducible(0.8, 0.2),
    "sep4 ps>=0.8 e.8": separated_reproducible(0.8, 4, effect=0.8),
    "sep4 ps>=0.8 e1.5": separated_reproducible(0.8, 4, effect=1.5),
    "sep4 ps>=0.8 ch3": separated_reproducible(0.8, 4, ch_tolerance=0.03),
    "sep4 ps>=0.8 ch10": separated_reproducible(0.8, 4, ch_tolerance=0.10),
    "sep4 ps>=0.8 ch15": separated_reproducible(0.8, 4, ch_tolerance=0.15),
    "sep3 ps>=0.8 ch10": separated_reproducible(0.8, 3, ch_tolerance=0.10),
    "sep5 ps>=0.8 ch10": separated_reproducible(0.8, 5, ch_tolerance=0.10),
    "sep4 ps>=0.7 ch10": separated_reproducible(0.7, 4, ch_tolerance=0.10),
}


def group(name: str) -> str:
    """gen-<generator> for the quick grid (1,000 customers, six personas), gen-<generator>-<customers>-<personas>
    for other generated companies, suite-<battery>, personas-<generator>."""
    parts = name.split("/")
    if parts[0] == "gen":
        generator, customers, personas, _ = parts[1].split("-", 3)
        if (int(customers), int(personas)) in {(n, k) for n, k, _ in QUICK}:
            return f"gen-{generator}"
        return f"gen-{generator}-{customers}-{personas}"
    if parts[0] == "suite":
        return f"suite-{parts[1]}"
    return f"personas-{parts[1]}"


def replay(tables: dict[str, pd.DataFrame], rules: dict[str, Rule] = RULES) -> pd.DataFrame:
    rows = []
    for name, t in tables.items():
        t = t.reset_index(drop=True)
        for rule_name, rule in rules.items():
            i = choose(t, rule)
            rows.append(
                {
                    "set": name,
                    "group": group(name),
                    "rule": rule_name,
                    "k": int(t.k[i]),
                    "choice": f"{t.family[i]}({t.setting[i]})",
                    "ari": float(t.ari[i]),
                }
            )
    return pd.DataFrame(rows)


def _planted(name: str) -> int:
    """The planted persona count in a generated set's name (gen/<generator>-<n>-<k>-<variant>/s<seed>)."""
    return int(name.split("/")[1].split("-")[2])


def references(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Per group of generated companies, what no rule can beat by its choice of k-means k: the
    mean ARI of k-means told the planted k (the persona count in the set's name) and of the best
    k-means candidate by ARI (an oracle that reads the truth)."""
    rows = []
    for name, t in tables.items():
        if not name.startswith("gen/"):
            continue
        planted = _planted(name)
        km = t[t.family == "kmeans"]
        told = km[km.k == planted].ari
        rows.append(
            {
                "group": group(name),
                "kmeans told k": float(told.iloc[0]) if len(told) else np.nan,
                "best kmeans k": float(km.ari.max()),
            }
        )
    return pd.DataFrame(rows).groupby("group").mean() if rows else pd.DataFrame()


def separation_around_planted_k(tables: dict[str, pd.DataFrame]) -> str:
    """Per group of generated companies: how many features separate the closest neighbouring
    k-means segments one below, at and one above the planted k (median and range over the
    companies), and how often the planted k is separated (>= ``SEPARATING_FEATURES``) while the
    next is not."""
    rows = []
    for name, t in tables.items():
        if not name.startswith("gen/") or "labels" not in t:
            continue
        planted = _planted(name)
        t = _with_separation(t.reset_index(drop=True))
        km = t[t.family == "kmeans"].set_index("k")
        step = {
            f"k{offset:+d}": km["sep1.0"].get(planted + offset, np.nan) for offset in (-1, 0, 1)
        }
        rows.append({"group": group(name), **step})
    if not rows:
        return "no generated company (gen/...) among these tables: nothing is planted"
    table = pd.DataFrame(rows)
    table["planted separated, next not"] = (table["k+0"] >= SEPARATING_FEATURES) & (
        table["k+1"] < SEPARATING_FEATURES
    )
    summary = table.groupby("group").agg(
        companies=("k+0", "size"),
        **{
            f"{c} median (min-max)": (
                c,
                lambda v: f"{v.median():.0f} ({v.min():.0f}-{v.max():.0f})",
            )
            for c in ("k-1", "k+0", "k+1")
        },
        planted_separated_next_not=("planted separated, next not", "sum"),
    )
    return summary.to_string()


def persona_overlap(tables: dict[str, pd.DataFrame]) -> str:
    """Per group of generated companies, how far apart the planted personas are, column by
    column: the share of each preprocessed column's variance that lies between personas (eta
    squared, 1 - mean within-persona variance / total variance), its largest and third largest
    value and the number of columns above 0.5, averaged over the companies."""
    rows = []
    for name, t in tables.items():
        if not name.startswith("gen/"):
            continue
        Z = pd.DataFrame(t.attrs["Z"].astype(float))
        personas = np.asarray(t.attrs["truth"])
        total = Z.var()
        between = (1 - Z.groupby(personas).var().mean() / total.where(total > 0)).dropna()
        ranked = between.sort_values(ascending=False).to_numpy()
        rows.append(
            {
                "group": group(name),
                "largest": ranked[0],
                "third": ranked[2],
                "columns above 0.5": int((ranked > 0.5).sum()),
            }
        )
    if not rows:
        return "no generated company (gen/...) among these tables: nothing is planted"
    table = pd.DataFrame(rows).groupby("group")
    return pd.concat([table.size().rename("companies"), table.mean().round(2)], axis=1).to_string()


def report(tables: dict[str, pd.DataFrame]) -> None:
    played = replay(tables)
    order = list(RULES)
    means = played.pivot_table(index="group", columns="rule", values="ari", aggfunc="mean")
    print(means[order].round(3).to_string())
    suite = played[played.group.str.startswith("suite")]
    if len(suite):
        print("suite overall", suite.groupby("rule").ari.mean()[order].round(3).to_dict())
    families = _suite_as_one(played)
    overall = families.pivot_table(index="group", columns="rule", values="ari", aggfunc="mean")
    print("mean over groups, suite as one:", overall[order].mean().round(3).to_dict())
    segments = families.pivot_table(index="group", columns="rule", values="k", aggfunc="mean")
    print("mean number of segments per group:")
    print(segments[order].round(1).to_string())
    print("references (k-means on the selection sample):")
    print(references(tables).round(3).to_string())
    with pd.option_context("display.width", 250, "display.max_rows", 500):
        ks = played.pivot_table(index="set", columns="rule", values="k", aggfunc="first")[order]
        print(ks.to_string())


def _suite_as_one(played: pd.DataFrame) -> pd.DataFrame:
    """``played`` with the 73 suite sets in one group, so that no kind of data outweighs another
    in a mean over groups because more of it was collected."""
    return played.assign(group=played.group.where(~played.group.str.startswith("suite"), "suite"))


def finishing(tables: dict[str, pd.DataFrame], rule: str) -> str:
    """Markdown: what the final step (``KMeansFamily.finish``, the discriminant refinement) does
    to ``rule``'s choices: mean ARI per group as chosen and as finished, and every set whose ARI
    moved by more than 0.02. Both are scored against the set's first reference labelling (the
    table's ``ari`` is the best over several references for some suite sets), on the selection
    sample. A choice of another family is left as it is, as the segmenter leaves it.

    For generated companies also: k-means told the planted k, the same finished, and what a
    linear discriminant fitted on the planted personas themselves recovers (scikit-learn's
    default ``LinearDiscriminantAnalysis``, 5-fold cross-validated predictions): how far the
    personas are linearly separable in the preprocessed space, a ceiling no partition of it is
    likely to pass."""
    rows, discarded = [], []
    for name, t in tables.items():
        t = t.reset_index(drop=True)
        i = choose(t, RULES[rule])
        truth = np.asarray(t.attrs["truth"])
        Z = t.attrs["Z"].astype(float)
        labels = np.asarray(t.labels[i]).astype(int)
        row = {
            "set": name,
            "group": group(name),
            "k": int(t.k[i]),
            "chosen": planted_ari(truth, labels),
            "finished": planted_ari(
                truth,
                _finished(Z, labels, discarded, name) if t.family[i] == "kmeans" else labels,
            ),
        }
        told = (
            t[(t.family == "kmeans") & (t.k == _planted(name))] if name.startswith("gen/") else []
        )
        if len(told):
            told_labels = np.asarray(told.labels.iloc[0]).astype(int)
            row["told"] = planted_ari(truth, told_labels)
            row["told finished"] = planted_ari(
                truth, _finished(Z, told_labels, discarded, f"{name} (told k)")
            )
            row["discriminant on the truth"] = planted_ari(
                truth, cross_val_predict(LinearDiscriminantAnalysis(), Z, truth, cv=5)
            )
        rows.append(row)
    played = pd.DataFrame(rows)
    columns = [
        c
        for c in ("chosen", "finished", "told", "told finished", "discriminant on the truth")
        if c in played
    ]
    groups = played.groupby("group")[columns].mean()
    counts = played.groupby("group").size()
    headers = [rule, "finished", "k-means told k", "told k, finished", "discriminant on the truth"]
    lines = [
        "| group | sets | " + " | ".join(headers[: len(columns)]) + " |",
        "|---|---|" + "---|" * len(columns),
    ]
    for g, row in groups.iterrows():
        cells = " | ".join("" if pd.isna(row[c]) else f"{row[c]:.3f}" for c in columns)
        lines.append(f"| {g} | {counts[g]} | {cells} |")
    overall = _suite_as_one(played).groupby("group")[["chosen", "finished"]].mean().mean()
    lines.append(
        f"| mean over groups, suite as one | | {overall.chosen:.3f} | {overall.finished:.3f} |"
    )
    lines += ["", f"Refinements the segmenter would discard: {len(discarded)} {discarded}"]
    lines += ["", "| set | k | ARI chosen | ARI finished |", "|---|---|---|---|"]
    for row in played.itertuples():
        if abs(row.finished - row.chosen) > 0.02:
            lines.append(f"| {row.set} | {row.k} | {row.chosen:.3f} | {row.finished:.3f} |")
    return "\n".join(lines)


def finished_per_set(tables: dict[str, pd.DataFrame], rule: str) -> pd.DataFrame:
    """Per set: the number of segments ``rule`` chooses and their ARI once finished, as the
    segmenter finishes them (``finishing``'s "finished" column, set by set)."""
    rows = []
    for name, t in tables.items():
        t = t.reset_index(drop=True)
        i = choose(t, RULES[rule])
        labels = np.asarray(t.labels[i]).astype(int)
        if t.family[i] == "kmeans":
            labels = _finished(t.attrs["Z"].astype(float), labels, [], name)
        rows.append({"set": name, "k": int(t.k[i]), "ari": planted_ari(t.attrs["truth"], labels)})
    return pd.DataFrame(rows).set_index("set")


def versus(after: dict[str, pd.DataFrame], before: dict[str, pd.DataFrame], rule: str) -> str:
    """Markdown: the sets of both caches (collected from the same companies by two versions),
    each with its segments and finished ARI before and after, then the mean per group."""
    a, b = finished_per_set(before, rule), finished_per_set(after, rule)
    both = a.join(b, lsuffix=" before", rsuffix=" after", how="inner")
    if both.empty:
        return "no set is in both caches"
    both["change"] = both["ari after"] - both["ari before"]
    lines = [
        "| set | k before | ARI before | k after | ARI after | change |",
        "|---|---|---|---|---|---|",
    ]
    for name, row in both.iterrows():
        lines.append(
            f"| {name} | {int(row['k before'])} | {row['ari before']:.3f} | {int(row['k after'])} | "
            f"{row['ari after']:.3f} | {row['change']:+.3f} |"
        )
    means = both.groupby([group(n) for n in both.index])[["ari before", "ari after"]].mean()
    lines += ["", "| group | sets | ARI before | ARI after |", "|---|---|---|---|"]
    for g, row in means.iterrows():
        count = sum(group(n) == g for n in both.index)
        lines.append(f"| {g} | {count} | {row['ari before']:.3f} | {row['ari after']:.3f} |")
    return "\n".join(lines)


def _finished(Z: np.ndarray, labels: np.ndarray, discarded: list[str], name: str) -> np.ndarray:
    """The refined labels, or ``labels`` where the segmenter would keep them (no refinement, or
    one it discards: ``models.segmenter.keeps_segments``); ``name`` is then noted in
    ``discarded``."""
    refined = discriminant_refinement(Z, labels)
    if refined is None:
        return labels
    if not keeps_segments(labels, refined[0], CustomerSegmenter().min_segment_share):
        discarded.append(name)
        return labels
    return refined[0]


def changes(tables: dict[str, pd.DataFrame], before: str, after: str) -> str:
    """Markdown: mean ARI per group under two rules, and every set whose ARI moved by > 0.02."""
    played = replay(tables, {before: RULES[before], after: RULES[after]})
    wide = played.pivot_table(index=["group", "set"], columns="rule", values=["ari", "k"])
    groups = played.pivot_table(index="group", columns="rule", values="ari", aggfunc="mean")
    counts = played[played.rule == before].groupby("group").size()
    lines = [f"| group | sets | {before} | {after} |", "|---|---|---|---|"]
    for g, row in groups.iterrows():
        lines.append(f"| {g} | {counts[g]} | {row[before]:.3f} | {row[after]:.3f} |")
    lines += ["", f"| set | k {before} | k {after} | ARI {before} | ARI {after} |"]
    lines.append("|---|---|---|---|---|")
    for (_, name), row in wide.iterrows():
        if abs(row[("ari", after)] - row[("ari", before)]) > 0.02:
            lines.append(
                f"| {name} | {row[('k', before)]:.0f} | {row[('k', after)]:.0f} "
                f"| {row[('ari', before)]:.3f} | {row[('ari', after)]:.3f} |"
            )
    return "\n".join(lines)
