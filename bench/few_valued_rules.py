"""Which columns the few-valued clipping rule judges differently before and after its refinement.

    PYTHONPATH=$PWD:$PWD/bench python bench/few_valued_rules.py BENCH_SCRIPT [ITS ARGUMENTS...]

Runs another bench in this process (``--jobs 1``: its workers fork from it) with
``models.preprocessing._few_valued`` wrapped: every fit's columns are judged by the rule as it
is (three to five evenly spaced values go unclipped) and by the rule before (any three to five
values), and each fit where they differ is printed with the columns' distinct values. A fit where
they agree is the same fit under both rules, so only the fits listed can move. Used for
``docs/segmentation.md``, "Refined: evenly spaced values only".
"""

from __future__ import annotations

import runpy
import sys

import numpy as np

import models.preprocessing as preprocessing

_evenly_spaced = preprocessing._few_valued


def _any_few(values: np.ndarray) -> np.ndarray:
    """The rule before the refinement: any three to ``LOW_CARDINALITY`` distinct values."""
    return np.array(
        [2 < len(np.unique(column)) <= preprocessing.LOW_CARDINALITY for column in values.T]
    )


def _judged_both_ways(values: np.ndarray) -> np.ndarray:
    now, before = _evenly_spaced(values), _any_few(values)
    differ = np.flatnonzero(now != before)
    if len(differ):
        held = [np.unique(values[:, j]).round(6).tolist() for j in differ]
        print(f"few-valued rules differ: columns {differ.tolist()} holding {held}", flush=True)
    else:
        print(f"few-valued rules agree ({int(now.sum())} unclipped columns)", flush=True)
    return now


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit("usage: few_valued_rules.py BENCH_SCRIPT [ITS ARGUMENTS...]")
    preprocessing._few_valued = _judged_both_ways
    script, sys.argv = sys.argv[1], sys.argv[1:]
    runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main()
