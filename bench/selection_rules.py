"""Selection rules replayed on the candidate tables of ``bench/selection_study.py``.

Each rule names the k-means favourite; the other families' favourites (GMM: BIC, HDBSCAN:
relative validity) and the final choice (most stable finalist, ties within 0.02 to more
segments, then silhouette) are the segmenter's, so a row differs from ``current`` only by the
k-means rule.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

Rule = Callable[[pd.DataFrame], int | None]
TOLERANCE = 0.02


def _kmeans(t: pd.DataFrame) -> pd.DataFrame:
    return t[(t.family == "kmeans") & t.admissible]


def _ch_best(pool: pd.DataFrame, tolerance: float = 0.03) -> int:
    tied = pool[pool.ch >= (1 - tolerance) * pool.ch.max()]
    return int(tied.k.idxmax())


def _silhouette_fallback(km: pd.DataFrame) -> int | None:
    return None if km.empty else int(km.silhouette.idxmax())


def current(t: pd.DataFrame) -> int | None:
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


def largest_reproducible(threshold: float) -> Rule:
    """Tibshirani and Walther's own rule: the largest k with PS >= threshold."""

    def rule(t: pd.DataFrame) -> int | None:
        km = _kmeans(t)
        pool = km[(km.k >= 3) & (km.ps >= threshold)]
        return int(pool.k.idxmax()) if len(pool) else _silhouette_fallback(km)

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


def _other_favourites(t: pd.DataFrame) -> list[int]:
    out = []
    gmm = t[(t.family == "gmm") & t.admissible]
    if len(gmm):
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
    "current": current,
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
}


def group(name: str) -> str:
    parts = name.split("/")
    if parts[0] == "gen":
        return f"gen-{parts[1].split('-')[0]}"
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


def report(tables: dict[str, pd.DataFrame]) -> None:
    played = replay(tables)
    order = list(RULES)
    means = played.pivot_table(index="group", columns="rule", values="ari", aggfunc="mean")
    print(means[order].round(3).to_string())
    suite = played[played.group.str.startswith("suite")]
    if len(suite):
        print("suite overall", suite.groupby("rule").ari.mean()[order].round(3).to_dict())
    with pd.option_context("display.width", 250, "display.max_rows", 500):
        ks = played.pivot_table(index="set", columns="rule", values="k", aggfunc="first")[order]
        print(ks.to_string())


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
