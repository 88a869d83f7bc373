"""Where a customer's feature value stands among all the customers a model was trained on.

A SHAP contribution says a feature pushed a customer towards its segment *compared with other
customers*, while the typical range describes the segment alone. The two can look contradictory:
64 seats pushes towards a segment whose members typically have 104 to 226, because 64 is still
more than nine customers in ten have. The standing ("higher than 93% of customers") is the missing
half of that sentence, so every explained feature carries it.

``PopulationQuantiles`` keeps a grid of quantiles per feature (``LEVELS`` of them, every 0.5%,
rounded to ``SIGNIFICANT_DIGITS``), about 65 KB in the model's ``profiles.json`` for 28 features,
rather than the training rows. Like the rest of a model (typical ranges, centres, the surrogate's
split points), it is derived from customer data: treat model files as such.

It also keeps which features rank the training customers alike (``alike_features``): where two
features say the same thing about a customer (seats and MRR on a per-seat price list), the
surrogate's trees split on either and TreeSHAP credits only the one split on, so an explanation
names them together.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

LEVELS = 201
# Enough for any percentile to whole percent; fewer digits keep profiles.json readable.
SIGNIFICANT_DIGITS = 6
# Two features whose rank correlation over the training customers is at least this order the
# customers almost identically, so the model cannot tell which of them it "used". Positive only:
# the explanation says the other feature "moves with" this one, which a reversed order would
# contradict (days since the last activity falls as active days rise).
ALIKE_CORRELATION = 0.9
# Rank correlations are estimated on at most this many customers: the standard error of a rank
# correlation near 0.9 is then below 0.002, and training time does not grow with the company.
ALIKE_SAMPLE = 20_000


@dataclass(frozen=True)
class Standing:
    """Shares of the training customers below, equal to and above a value (they sum to 1)."""

    below: float
    same: float
    above: float

    @property
    def percentile(self) -> float:
        """Percentile rank, ties counted half (0 to 100), to the grid's resolution of 0.5."""
        return round(100.0 * (self.below + self.same / 2), 1)


@dataclass(frozen=True)
class PopulationQuantiles:
    """Per feature name, its quantiles at ``LEVELS`` evenly spaced levels from 0 to 1."""

    quantiles: dict[str, list[float]]
    # Per feature, the features that rank the training customers alike, most alike first; only
    # features with at least one (``alike_features``). Empty for models trained before it.
    alike: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def of(cls, features: pd.DataFrame) -> PopulationQuantiles:
        """The quantile grid of every column of ``features`` (the training customers), and
        which columns rank them alike (``alike_features``).

        ``method="lower"`` keeps every grid point a value that occurs, so a value most customers
        share (no failed payment) fills a run of grid points and reads as a tie, not a spread.
        """
        grid = np.quantile(
            features.to_numpy(dtype=float), np.linspace(0, 1, LEVELS), axis=0, method="lower"
        )
        return cls(
            {
                name: [float(f"{value:.{SIGNIFICANT_DIGITS}g}") for value in grid[:, i]]
                for i, name in enumerate(features.columns)
            },
            alike_features(features),
        )

    def standing(self, name: str, value: float) -> Standing | None:
        """Shares below, at and above ``value``; None for a feature the model was not given."""
        grid = self.quantiles.get(name)
        if grid is None or not math.isfinite(value):
            return None
        # bisect on the sorted list: this runs for every explained feature of every request, and
        # building a NumPy array of 201 floats each time cost 20x the search itself.
        below = bisect.bisect_left(grid, value) / len(grid)
        above = 1 - bisect.bisect_right(grid, value) / len(grid)
        return Standing(below=float(below), same=float(1 - below - above), above=float(above))

    def as_dict(self) -> dict[str, list[float]]:
        return {name: list(grid) for name, grid in self.quantiles.items()}

    def beyond(self, names: Sequence[str], values: np.ndarray) -> np.ndarray:
        """Per row of ``values`` (columns in ``names`` order), whether some feature lies farther
        outside the training customers' range than that range is wide: below ``min - (max -
        min)`` or above ``max + (max - min)``. Preprocessing clips every value to the training
        range before placing it, so such a vector (a CRM sending MRR in cents, 20 times the
        largest account) was placed as a typical member with over 99% confidence. A feature
        every training customer shares (``is_canceled``: 0 for all of them) says nothing here."""
        return self.beyond_columns(names, values).any(axis=1)

    def beyond_columns(self, names: Sequence[str], values: np.ndarray) -> np.ndarray:
        """``beyond`` feature by feature: rows x features, True where that feature lies so far
        outside the training range."""
        return self.ranges_outside(names, values) > 1

    def ranges_outside(self, names: Sequence[str], values: np.ndarray) -> np.ndarray:
        """Rows x features: how many training ranges (max - min) each value lies outside the
        training customers' range, 0 inside it or for a feature they all share."""
        # one pass over the matrix: this runs on every request's placement
        ends = [(g[0], g[-1]) if (g := self.quantiles.get(name)) else (0.0, 0.0) for name in names]
        low, high = np.array(ends, dtype=float).reshape(-1, 2).T
        width = high - low
        with np.errstate(invalid="ignore", divide="ignore"):
            outside = np.maximum(np.maximum(low - values, values - high), 0.0) / width
        return np.where(width > 0, np.nan_to_num(outside, nan=0.0, posinf=np.inf), 0.0)


def alike_features(
    features: pd.DataFrame, threshold: float = ALIKE_CORRELATION, seed: int = 0
) -> dict[str, list[str]]:
    """Per column, the other columns whose Spearman rank correlation with it over the rows is at
    least ``threshold``, most correlated first (columns with none are left out). A constant
    column correlates with nothing."""
    if len(features) > ALIKE_SAMPLE:
        features = features.sample(ALIKE_SAMPLE, random_state=seed)
    ranks = features.rank().to_numpy(dtype=float)
    spread = ranks.std(axis=0)
    varying = np.flatnonzero(spread > 0)
    if len(varying) < 2:
        return {}
    rho = np.corrcoef(ranks[:, varying], rowvar=False)
    names = [str(features.columns[i]) for i in varying]
    out: dict[str, list[str]] = {}
    for i, name in enumerate(names):
        order = np.argsort(-rho[i], kind="stable")
        alike = [names[j] for j in order if j != i and rho[i, j] >= threshold]
        if alike:
            out[name] = alike
    return out
