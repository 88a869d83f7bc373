"""HDBSCAN: segments as regions of high density, customers in none left unassigned; proposes its
minimum cluster size by relative validity, and only where a density can be estimated."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import hdbscan
import numpy as np

from models.assigners import NeighbourAssigner
from models.candidates import CandidateScore, FittedCandidate, relabel, size_order
from models.families.base import ClusteringFamily

# Silverman (1986, "Density Estimation for Statistics and Data Analysis", table 4.2): the sample
# size a kernel density estimate needs in d dimensions to reach, at the mode of a normal, the
# accuracy (relative mean squared error 0.1) it has in one dimension with 4 points.
SILVERMAN_SAMPLE_SIZE = {1: 4, 2: 19, 3: 67, 4: 223, 5: 768, 6: 2790, 7: 10700, 8: 43700, 9: 187000}
# Minimum cluster sizes tried, as shares of the sample (at least 5 customers).
CLUSTER_SIZE_SHARES = (0.005, 0.01, 0.02, 0.05)


def density_is_estimable(n_rows: int, n_columns: int) -> bool:
    """Whether ``n_rows`` points suffice to estimate a density in ``n_columns`` dimensions.

    HDBSCAN's segments are regions of high density. With tens of customer features the sample is
    orders of magnitude too small to estimate one (the curse of dimensionality): the "dense
    regions" it finds are clumps of near-identical customers (everyone with no usage and no
    refund), stable but not segments. Below Silverman's sample size, density candidates are not
    proposed.
    """
    return n_rows >= SILVERMAN_SAMPLE_SIZE.get(n_columns, np.inf)


@dataclass(frozen=True)
class HDBSCANFamily(ClusteringFamily):
    name: ClassVar[str] = "hdbscan"
    words: ClassVar[str] = "HDBSCAN"
    setting_name: ClassVar[str] = "min_cluster_size"
    criteria: ClassVar[tuple[str, ...]] = ("relative_validity",)
    # Where the density has no valleys HDBSCAN finds little it can reproduce.
    partitions_any_cloud: ClassVar[bool] = False
    # Minimum cluster sizes are absolute numbers of customers tuned on the selection sample: on
    # more rows the same size means a finer segmentation, so the chosen fit is kept as it is.
    refits_on_more_rows: ClassVar[bool] = False

    def settings(self, n_rows: int, max_segments: int, n_columns: int) -> list[int]:
        if not density_is_estimable(n_rows, n_columns):
            return []
        return sorted({max(5, int(n_rows * share)) for share in CLUSTER_SIZE_SHARES})

    def fit(self, setting: int, Z: np.ndarray, random_state: int) -> FittedCandidate:
        model = hdbscan.HDBSCAN(
            min_cluster_size=setting,
            min_samples=min(setting, 10),
            gen_min_span_tree=True,
            core_dist_n_jobs=1,
        ).fit(Z)
        raw = model.labels_
        found = bool((raw >= 0).any())
        if not found:
            raw = np.zeros(
                len(Z), dtype=int
            )  # everything is noise: one segment is the honest answer
        labels = relabel(raw, size_order(raw))
        validity = float(model.relative_validity_) if found else -1.0
        return FittedCandidate(
            self.candidate(setting),
            labels,
            NeighbourAssigner(Z, labels),
            {"relative_validity": validity},
        )

    def favourite(self, members: list[int], scores: list[CandidateScore]) -> int:
        """The highest relative validity (a fast DBCV)."""

        def validity(i: int) -> float:
            value = scores[i].criterion("relative_validity")
            return -np.inf if value is None else value

        return max(members, key=validity)
