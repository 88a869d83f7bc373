"""The last step of the selection, replayed: which finalist wins (``docs/evaluation.md``,
"Stability beyond a reference with no segments").

    python bench/finalist_study.py --cache DIR                # adopted rule, oracle, tie bands
    python bench/finalist_study.py --cache DIR --reference    # stability beyond a reference

``DIR`` holds the candidate tables of ``bench/selection_study.py collect`` (``--source suite`` or
``--source generators``). The finalists are the adopted k-means favourite and the other
families' favourites (``bench/selection_rules.py``). Printed: the mean ARI of the adopted rule
(the most stable finalist, ties within 0.02 to more segments), of an oracle that takes each
set's best finalist (no rule can: it reads the truth), and of wider tie bands. With
``--reference``, each finalist is also fitted and resampled on points uniform in the box of the
sample's principal axes (``models.criteria.reference_stability``, seed 0), and the adopted rule
is replayed on (s - s0) / (1 - s0) and on s - s0; the reference stabilities are cached beside the
tables (``reference.pickle``), so a second run only replays.

The segmenter itself with the first of these rules is ``bench/patches/excess_stability.patch``
(``git apply`` it on a commit before 2026-12-06, then run the benches ``docs/evaluation.md``
names). Since 2026-12-06 the segmenter compares a density proposal with at least as many
segments as the most stable partition on s - s0 (the last line printed; ``models.selection``).
"""

from __future__ import annotations

import argparse
import pickle
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd
from selection_rules import RULES, _other_favourites
from selection_study import load_tables
from threadpoolctl import threadpool_limits

from models.criteria import reference_stability
from models.families import FAMILIES

TOLERANCE = 0.02
Score = Callable[[pd.DataFrame, int], float]


def finalists(table: pd.DataFrame) -> list[int]:
    chosen = RULES["adopted"](table)
    return [i for i in [chosen, *_other_favourites(table)] if i is not None]


def pick(table: pd.DataFrame, indices: list[int], score: Score, tolerance: float) -> int:
    """The best-scoring finalist; near-ties to more segments, then higher silhouette."""
    top = max(score(table, i) for i in indices)
    tied = [i for i in indices if score(table, i) >= top - tolerance]
    return max(tied, key=lambda i: (table.k[i], table.silhouette[i]))


def references(tables: dict[str, pd.DataFrame], cache: Path) -> dict[str, dict[int, float]]:
    path = cache / "reference.pickle"
    known: dict[str, dict[int, float]] = pickle.loads(path.read_bytes()) if path.exists() else {}
    families = {family.name: family for family in FAMILIES}
    with threadpool_limits(limits=1):
        for name, table in tables.items():
            if name in known:
                continue
            Z = np.asarray(table.attrs["Z"], dtype=float)
            known[name] = {
                i: reference_stability(
                    families[table.family[i]].candidate(int(table.setting[i])), Z, 3, 0
                )
                for i in finalists(table)
            }
            path.write_bytes(pickle.dumps(known))
            print(f"{name}: {known[name]}", flush=True)
    return known


def main() -> None:
    warnings.filterwarnings("ignore")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, required=True)
    parser.add_argument("--reference", action="store_true")
    args = parser.parse_args()
    tables = {name: table for name, table in load_tables(args.cache).items() if "Z" in table.attrs}
    if not tables:
        parser.error(f"no candidate tables in {args.cache}: run selection_study.py collect first")

    def mean_ari(score: Score, tolerance: float = TOLERANCE) -> float:
        return float(
            np.mean([t.ari[pick(t, finalists(t), score, tolerance)] for t in tables.values()])
        )

    def line(label: str, value: float) -> None:
        print(f"  {label:<50} {value:.4f}")

    print(f"{len(tables)} sets; mean ARI of the chosen finalist")
    line(f"most stable, ties within {TOLERANCE} (before 2026-12-06)", mean_ari(_stable))
    oracle = np.mean([max(t.ari[i] for i in finalists(t)) for t in tables.values()])
    line("oracle (best finalist by the truth)", oracle)
    for tolerance in (0.03, 0.05, 0.08):
        line(f"ties within {tolerance}", mean_ari(_stable, tolerance))
    if not args.reference:
        return
    known = references(tables, args.cache)
    by_table = {id(t): known[name] for name, t in tables.items()}

    def excess(table: pd.DataFrame, i: int) -> float:
        s0 = by_table[id(table)][i]
        return (float(table.stability[i]) - s0) / max(1.0 - s0, 1e-6)

    def difference(table: pd.DataFrame, i: int) -> float:
        return float(table.stability[i]) - by_table[id(table)][i]

    line("excess stability (s - s0) / (1 - s0)", mean_ari(excess))
    line("difference s - s0", mean_ari(difference))

    across = np.mean(
        [
            t.ari[density_against_partitions(t, finalists(t), by_table[id(t)])]
            for t in tables.values()
        ]
    )
    line("density against partitions (the segmenter's)", across)


def _stable(table: pd.DataFrame, i: int) -> float:
    return float(table.stability[i])


def density_against_partitions(
    table: pd.DataFrame, indices: list[int], reference: Mapping[int, float]
) -> int:
    """The segmenter's last step since 2026-12-06 (``models.selection._choose_finalist``) over
    the finalists ``indices``: the most stable partition against the most stable density proposal
    on s - s0 (``reference``: each finalist's s0), when the density proposal has at least as many
    segments; otherwise, or without both references, raw stability."""
    partitions_any_cloud = {family.name: family.partitions_any_cloud for family in FAMILIES}
    partitions = [i for i in indices if partitions_any_cloud[table.family[i]]]
    densities = [i for i in indices if i not in partitions]
    if not (partitions and densities):
        return pick(table, indices, _stable, TOLERANCE)
    partition = pick(table, partitions, _stable, TOLERANCE)
    density = pick(table, densities, _stable, TOLERANCE)
    if table.k[density] < table.k[partition] or not {partition, density} <= reference.keys():
        return pick(table, indices, _stable, TOLERANCE)

    def beyond(t: pd.DataFrame, i: int) -> float:
        return _stable(t, i) - reference[i]

    return pick(table, [partition, density], beyond, TOLERANCE)


if __name__ == "__main__":
    main()
