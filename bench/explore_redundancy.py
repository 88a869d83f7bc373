"""Exploration, not adopted: columns that measure the same thing count once.

    PYTHONPATH=$PWD:$PWD/bench python bench/explore_redundancy.py --generator both --sizes 3000 \
        --personas 6 --variants clean,nuisance --seed S --segmenter-seed 0 --jobs 1 --out FILE

``bench/eval_generators.py`` with one change to the segmenter's preprocessing: after the
agreement weights, each column's weight is divided by the square root of its multiplicity, the
sum of its squared Spearman correlations with the columns that weigh anything (itself included),
and the weights rescaled so the largest is 1. Six activity columns (days active over 30 and 90
days, events over 30 and 90 days, logins, events per user) then weigh about as much together as
one column does alone, the family balancing the issue names. The question it answers: is the
agent over-split and mis-cut (personas cut by activity while tenure and price tell them apart)
the activity columns outvoting the rest by their number? ``docs/evaluation.md``, "Counting
correlated columns once". Arguments are ``eval_generators.py``'s.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping

import numpy as np
from scipy.stats import spearmanr

import models.preprocessing as preprocessing

_fit = preprocessing.FeaturePreprocessor.fit


def _fit_counting_correlated_columns_once(
    self: preprocessing.FeaturePreprocessor,
    X: object,
    y: object = None,
    reliability: Mapping[str, float] | None = None,
) -> preprocessing.FeaturePreprocessor:
    _fit(self, X, y, reliability=reliability)
    values = preprocessing._finite(preprocessing._as_frame(X).to_numpy(dtype=float))
    scaled = self._scaled(self._log(values))[:, self.kept_]
    weights = self.weights_[self.kept_]
    rho = np.ones((1, 1)) if scaled.shape[1] < 2 else np.atleast_2d(spearmanr(scaled).correlation)
    rho = np.nan_to_num(rho)  # a constant column correlates with nothing
    np.fill_diagonal(rho, 1.0)
    multiplicity = (rho**2 * (weights > 0)[None, :]).sum(axis=1)
    factor = 1 / np.sqrt(np.maximum(multiplicity, 1.0))
    self.weights_[self.kept_] = weights * factor / factor.max()
    return self


def main() -> None:
    # The companies are evaluated in child processes forked from this one, so they inherit it.
    preprocessing.FeaturePreprocessor.fit = _fit_counting_correlated_columns_once
    import eval_generators

    sys.argv = ["eval_generators.py", *sys.argv[1:]]
    eval_generators.main()


if __name__ == "__main__":
    main()
