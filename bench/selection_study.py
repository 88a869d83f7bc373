"""Every candidate's criteria and its ARI against the truth, so selection rules can be compared
offline (``docs/evaluation.md``, "Choosing k").

    python bench/selection_study.py collect --source generators --seeds 0 1 [--cache DIR]
        [--generators latent agent journey] [--customers 3000 --personas 6 --variants clean]
        [--sources all]   # flags judged on all columns (before 2026-12-03); default: registry
    python bench/selection_study.py collect --source suite
    python bench/selection_study.py collect --source personas
    python bench/selection_study.py rules [--cache DIR]      # every rule, mean ARI per group
    python bench/selection_study.py changes [--cache DIR]    # the adopted rule against the one before
    python bench/selection_study.py separation [--cache DIR] # features separating neighbours
    python bench/selection_study.py overlap [--cache DIR]    # how far apart the personas are
    python bench/selection_study.py finish [--cache DIR]     # the chosen k-means, refined
    python bench/selection_study.py versus --cache DIR --against OLD   # set by set, two versions

``collect`` runs what ``CustomerSegmenter.fit`` runs up to the choice (preprocessing, the
selection sample, every family's grid, the admissibility limits, every family's criteria) on each
data set, and additionally measures stability of *every* admissible candidate and prediction
strength of every admissible k-means candidate, and each candidate's ARI against the planted labels on
the selection sample. One pickle per data set in the cache. ``rules`` replays selection rules on
the cached tables: no refitting, so a rule is judged in seconds, and the split between the data
a rule was tuned on (``--tune``) and the data it is checked on is explicit. A cache holds one
preprocessing: ``collect`` refuses a folder whose tables were collected with another ``--sources``.
"""

from __future__ import annotations

import argparse
import pickle
import re
import sys
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import adjusted_rand_score, silhouette_samples
from threadpoolctl import threadpool_limits

from models.criteria import prediction_strength_scores, shared_distances, stability
from models.preprocessing import FeaturePreprocessor
from models.segmenter import CustomerSegmenter, _sample
from models.selection import SelectionLimits, candidate_grid, score

# Where ``collect`` writes and ``rules`` reads; ``--cache`` replaces the folder.
CACHE = [Path(tempfile.gettempdir()) / "selection_study"]
# The preprocessor's ``sources`` for ``collect``: the segmenter's default (flags judged across
# sources), or None with ``--sources all`` (judged on every other column, before 2026-12-03;
# ``models.preprocessing``).
SOURCES: list[str | None] = ["registry"]


def candidate_table(X: pd.DataFrame, truth: list[np.ndarray], seed: int = 0) -> pd.DataFrame:
    """One row per candidate: its criteria and ARI against each reference (best kept)."""
    defaults = CustomerSegmenter(random_state=seed)
    preprocessor = FeaturePreprocessor(random_state=seed, sources=SOURCES[0]).fit(X)
    Z = preprocessor.transform(X)
    rows = _sample(np.random.default_rng(seed), len(Z), defaults.selection_sample)
    Zs = Z[rows]
    limits = SelectionLimits(
        defaults.max_segments, defaults.min_segment_share, defaults.max_outlier_share
    )
    records, fits = [], []
    shared = shared_distances(Zs, seed)
    for candidate in candidate_grid(len(rows), defaults.max_segments, Z.shape[1]):
        fitted = candidate.fit(Zs, seed)
        s = score(fitted, Zs, seed, shared)
        fits.append(fitted)
        records.append(
            {
                "family": candidate.family.name,
                "setting": candidate.setting,
                "k": s.n_segments,
                "admissible": limits.admit(s),
                "smallest": s.smallest_share,
                "outliers": s.outlier_share,
                "silhouette": s.silhouette,
                "ch": s.calinski_harabasz,
                **dict(fitted.criteria.items()),
                "ari": max(planted_ari(t[rows], fitted.labels) for t in truth),
                "inertia": _inertia(Zs, fitted.labels),
                # per-customer silhouettes on the shared rows, for rules that need their spread
                "silhouette_points": _silhouette_points(fitted.labels, shared),
                "n": len(rows),
                "d": Z.shape[1],
                # the candidate's segments on the selection sample, for rules that look inside
                "labels": np.asarray(fitted.labels, dtype=np.int16),
            }
        )
    table = pd.DataFrame(records)
    # the selection sample as the families saw it, and its column names
    table.attrs["Z"] = Zs.astype(np.float32)
    table.attrs["columns"] = list(preprocessor.get_feature_names_out())
    table.attrs["truth"] = truth[0][rows]
    table.attrs["sources"] = SOURCES[0]
    table["ps_scores"] = None
    # Stability where a rule may need it: any admissible k-means candidate, and the other
    # families' favourites by their own criteria (which the rules compared here keep).
    admissible = table[table.admissible]
    needed = set(admissible[admissible.family == "kmeans"].index)
    if "bic" in admissible and admissible.bic.notna().any():
        needed.add(admissible.bic.idxmin())
    if "relative_validity" in admissible and admissible.relative_validity.notna().any():
        needed.add(admissible.relative_validity.idxmax())
    for i in sorted(needed):
        table.loc[i, "stability"] = stability(fits[i], Zs, defaults.n_resamples, seed)
        k = int(table.setting[i])
        if table.family[i] == "kmeans" and table.k[i] >= 3 and 2 * k <= len(Zs):
            split_scores = prediction_strength_scores(fits[i].candidate, Zs, 4, seed)
            table.loc[i, "ps"] = float(np.mean(split_scores))
            table.at[i, "ps_scores"] = split_scores
    return table


def planted_ari(truth: np.ndarray, labels: np.ndarray) -> float:
    """ARI on the customers with a planted label (0 marks none in the persona companies)."""
    keep = truth != 0 if truth.dtype.kind in "iu" else np.ones(len(truth), bool)
    return float(adjusted_rand_score(truth[keep], labels[keep]))


def _silhouette_points(labels: np.ndarray, shared: tuple[np.ndarray, np.ndarray]) -> object:
    rows, distances = shared
    if (labels < 0).any() or len(np.unique(labels[rows])) < 2:
        return None
    return silhouette_samples(distances, labels[rows], metric="precomputed")


def _inertia(Z: np.ndarray, labels: np.ndarray) -> float:
    members = labels >= 0
    total = 0.0
    for segment in np.unique(labels[members]):
        block = Z[labels == segment]
        total += float(((block - block.mean(axis=0)) ** 2).sum())
    return total


# ---------------------------------------------------------------- data sources


def collect_generators(
    seeds: list[int],
    grid: list[tuple[int, int, str]] | None = None,
    generators: Sequence[str] = ("latent", "agent"),
) -> None:
    """The quick grid's companies (``eval_generators.QUICK``), or ``grid``'s (customers,
    personas, variant), for each seed and each of ``generators``."""
    sys.path.insert(0, str(Path(__file__).parent))
    from eval_generators import GENERATORS, QUICK, Setting, feature_table

    from feature_store.registry import SEGMENTED_FEATURE_NAMES
    from pipelines.train import active_customers

    for seed in seeds:
        for generator in generators:
            for n, k, variant in grid or QUICK:
                setting = Setting(generator, n, k, variant)
                name = f"gen/{setting.name}/s{seed}"
                if _cached(name):
                    continue
                company = GENERATORS[generator](setting.spec(seed))
                features = active_customers(feature_table(company))
                truth = features["persona"].to_numpy(object)
                collect(name, features[list(SEGMENTED_FEATURE_NAMES)], [truth])


def _cached(name: str) -> bool:
    """Whether ``name`` is in the cache, collected with this run's ``--sources`` (else exit)."""
    path = CACHE[0] / (name.replace("/", "__") + ".pkl")
    if not path.exists():
        return False
    collected_with = pickle.loads(path.read_bytes()).attrs.get("sources")
    if collected_with != SOURCES[0]:

        def option(sources: str | None) -> str:
            return "all" if sources is None else sources

        sys.exit(
            f"{path} was collected with --sources {option(collected_with)}, not "
            f"{option(SOURCES[0])}: use another --cache"
        )
    return True


def collect(name: str, X: pd.DataFrame, truth: list[np.ndarray]) -> None:
    path = CACHE[0] / (name.replace("/", "__") + ".pkl")
    if _cached(name):
        return
    with threadpool_limits(limits=1):
        table = candidate_table(X, truth)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(table))
    print(f"{name}: {len(table)} candidates", flush=True)


def suite_sets(root: Path) -> list[tuple[str, Path]]:
    manifest = pd.read_csv(root / "MANIFEST.csv")
    return [
        (f"suite/{b}/{n}", root / b)
        for b, n in zip(manifest.battery, manifest.dataset, strict=True)
    ]


def collect_suite(root: Path) -> None:
    for name, folder in suite_sets(root):
        if _cached(name):
            continue
        stem = name.split("/")[-1]
        X = np.loadtxt(folder / f"{stem}.data.gz", ndmin=2)
        refs = [np.loadtxt(p, dtype=int) for p in sorted(folder.glob(f"{stem}.labels*.gz"))]
        collect(name, pd.DataFrame(X), refs)


def collect_personas(customers: int, which: list[int] | None) -> None:
    sys.path.insert(0, str(Path(__file__).parent))
    from eval_personas import COMPANIES, feature_table

    from feature_store.registry import SEGMENTED_FEATURE_NAMES

    for index, company in enumerate(COMPANIES):
        if which and index not in which:
            continue
        name = f"personas/{company.generator}/{company.name}"
        if _cached(name):
            continue
        features, _ = feature_table(company, customers)  # the caches predate reliability
        features = features[features["is_canceled"] == 0].reset_index(drop=True)
        collect(
            name, features[list(SEGMENTED_FEATURE_NAMES)], [features["persona"].to_numpy(object)]
        )


# ---------------------------------------------------------------- rules


def load_tables(cache: Path, only: str | None = None) -> dict[str, pd.DataFrame]:
    """Every cached table, or those whose name matches the regular expression ``only``."""
    names = {p.stem.replace("__", "/"): p for p in sorted(cache.glob("*.pkl"))}
    return {
        name: pickle.loads(path.read_bytes())
        for name, path in names.items()
        if only is None or re.search(only, name)
    }


def main() -> None:
    warnings.filterwarnings("ignore")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "action",
        choices=["collect", "rules", "changes", "separation", "overlap", "finish", "versus"],
    )
    parser.add_argument("--source", choices=["generators", "suite", "personas"])
    parser.add_argument("--seeds", type=int, nargs="*", default=[0])
    parser.add_argument("--customers", type=int, default=3000)
    parser.add_argument(
        "--variants",
        nargs="*",
        help="generators: these variants at --customers and --personas instead of the quick grid",
    )
    parser.add_argument("--personas", type=int, default=6, help="generators, with --variants")
    parser.add_argument(
        "--generators",
        nargs="+",
        choices=["latent", "agent", "journey"],
        default=["latent", "agent"],
        help="generators: which to collect",
    )
    parser.add_argument(
        "--companies", type=int, nargs="*", help="indices into eval_personas.COMPANIES"
    )
    parser.add_argument("--cache", type=Path, default=CACHE[0])
    parser.add_argument(
        "--sources",
        choices=["registry", "all"],
        help="collect: judge flags across sources (registry, the segmenter's default) or on all "
        "columns (FeaturePreprocessor(sources=None))",
    )
    parser.add_argument(
        "--only",
        help="rules, changes, separation, overlap, finish: the sets whose name matches this regex",
    )
    parser.add_argument(
        "--rule", default="adopted", help="rule compared with --before; the rule finish refines"
    )
    parser.add_argument("--before", default="within noise", help="the rule --rule replaced")
    parser.add_argument(
        "--suite", type=Path, default=Path("/work/shared/datasets/clustering_benchmarks")
    )
    parser.add_argument(
        "--against",
        type=Path,
        help="versus: a cache collected from the same companies by another version",
    )
    args = parser.parse_args()
    CACHE[0] = args.cache
    if args.sources and args.action != "collect":
        parser.error("--sources applies to collect only (the cache's tables record theirs)")
    SOURCES[0] = None if args.sources == "all" else "registry"
    if args.action == "collect" and args.source == "generators":
        grid = [(args.customers, args.personas, v) for v in args.variants or ()]
        collect_generators(args.seeds, grid or None, args.generators)
    elif args.action == "collect" and args.source == "suite":
        collect_suite(args.suite)
    elif args.action == "collect":
        collect_personas(args.customers, args.companies)
    else:
        from selection_rules import (
            RULES,
            changes,
            finishing,
            persona_overlap,
            report,
            separation_around_planted_k,
            versus,
        )

        for option in ("rule", "before"):
            if getattr(args, option) not in RULES:
                parser.error(f"--{option}: no rule {getattr(args, option)!r}; one of {list(RULES)}")
        try:
            tables = load_tables(args.cache, args.only)
        except re.error as error:
            parser.error(f"--only: not a regular expression: {error}")
        if not tables:
            parser.error(
                f"no candidate tables in {args.cache}"
                + (f" whose name matches {args.only!r}" if args.only else "")
                + ": run collect first"
            )
        if args.action == "separation":
            print(separation_around_planted_k(tables))
        elif args.action == "overlap":
            print(persona_overlap(tables))
        elif args.action == "rules":
            report(tables)
        elif args.action == "finish":
            print(finishing(tables, args.rule))
        elif args.action == "versus":
            if args.against is None:
                parser.error("versus needs --against DIR")
            print(versus(tables, load_tables(args.against, args.only), args.rule))
        else:
            print(changes(tables, args.before, args.rule))


if __name__ == "__main__":
    main()
