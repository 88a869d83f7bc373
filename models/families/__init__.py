"""The clustering families the segmenter compares; the selection iterates over ``FAMILIES``.

Adding a family: one module with a ``ClusteringFamily`` subclass (see ``base``), one entry here.
"""

from __future__ import annotations

from models.families.base import ClusteringFamily
from models.families.density import HDBSCANFamily
from models.families.gaussian_mixture import GaussianMixtureFamily
from models.families.kmeans import KMeansFamily

# Order matters: candidates are listed, fitted and (on exact ties) preferred in this order.
FAMILIES: tuple[ClusteringFamily, ...] = (KMeansFamily(), GaussianMixtureFamily(), HDBSCANFamily())

__all__ = [
    "FAMILIES",
    "ClusteringFamily",
    "GaussianMixtureFamily",
    "HDBSCANFamily",
    "KMeansFamily",
]
