"""How a fitted segmentation assigns new customers: the segment, membership probabilities, outliers.

``Assigner`` is the protocol; one small class per kind of model implements it, so the segmenter
never dispatches on the clustering family after fitting. A family picks (or brings) its assigner
(``models.families``):

- ``predict(Z)``: segment index per row (0..k-1);
- ``predict_proba(Z)``: membership probability per segment (rows sum to 1);
- ``outlier_score(Z)``: larger is more unusual; ``threshold_`` (learned on the training rows)
  separates outliers (above) from members;
- ``proba_and_outlier_score(Z)``: both at once, for the scoring path; k-means shares one distance
  computation (refined k-means one in its coordinates and one in the full space) and density
  models one neighbour query (a mixture computes its two apart, as
  scikit-learn's public API offers them);
- ``log_proba(Z)``: the logarithm of ``predict_proba``, computed without underflow where the
  assigner can (nearest-centre models); None where it cannot. Far from every centre the
  probabilities of all but the nearest segment are exactly 0, and their order, which names the
  runner-up, is lost;
- ``outlier_terms(Z, segments)``: each column's share of a row's outlier score, where the score
  is a distance from its segment's centre (nearest-centre models: squared differences, which add
  up to the squared score); None where it is not (a likelihood, a neighbour's distance). What
  makes an unusual customer unusual;
- ``contrast_terms(Z, segments, rivals)``: the log-odds of each row's segment over its rival under
  the assigner's own probabilities, split exactly into one term per column; None where no such
  split exists. Nearest-centre models have one: their two segments' log-odds differ by a function
  linear in the row (the squared terms of the two distances cancel), so each column's term is its
  distance from the two centres' midpoint times the centres' difference along it, and the terms
  add up to the log-odds exactly. A mixture with a covariance per part and a neighbour vote have
  no such split.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
from scipy.special import log_softmax, softmax
from sklearn.mixture import GaussianMixture
from sklearn.neighbors import NearestNeighbors

# Training rows beyond this quantile of the outlier score are the outliers the model reports.
OUTLIER_QUANTILE = 0.99


class Assigner(Protocol):
    """Places preprocessed rows in the segments of one fitted segmentation."""

    threshold_: float  # outlier scores above it are outliers (learned on the training rows)

    def predict(self, Z: np.ndarray) -> np.ndarray: ...

    def predict_proba(self, Z: np.ndarray) -> np.ndarray: ...

    def outlier_score(self, Z: np.ndarray) -> np.ndarray: ...

    def proba_and_outlier_score(self, Z: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...

    def log_proba(self, Z: np.ndarray) -> np.ndarray | None: ...

    def outlier_terms(self, Z: np.ndarray, segments: np.ndarray) -> np.ndarray | None: ...

    def contrast_terms(
        self, Z: np.ndarray, segments: np.ndarray, rivals: np.ndarray
    ) -> np.ndarray | None: ...


class CentroidAssigner:
    """Nearest centre (k-means). Probabilities: an isotropic Gaussian per centre with the pooled
    within-segment variance, the probabilistic reading of k-means."""

    def __init__(self, centers: np.ndarray, Z: np.ndarray, labels: np.ndarray) -> None:
        self.centers_ = centers
        within = ((Z - centers[labels]) ** 2).sum(axis=1)
        self.variance_ = max(float(within.mean()) / Z.shape[1], 1e-12)
        self.threshold_ = float(np.quantile(np.sqrt(within), OUTLIER_QUANTILE))

    def _squared_distances(self, Z: np.ndarray) -> np.ndarray:
        return ((Z[:, None, :] - self.centers_[None, :, :]) ** 2).sum(axis=2)

    def predict(self, Z: np.ndarray) -> np.ndarray:
        return self._squared_distances(Z).argmin(axis=1)

    def predict_proba(self, Z: np.ndarray) -> np.ndarray:
        return self.proba_and_outlier_score(Z)[0]

    def outlier_score(self, Z: np.ndarray) -> np.ndarray:
        return np.sqrt(self._squared_distances(Z).min(axis=1))

    def proba_and_outlier_score(self, Z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        squared = self._squared_distances(Z)
        proba = softmax(-squared / (2 * self.variance_), axis=1)
        return proba, np.sqrt(squared.min(axis=1))

    def log_proba(self, Z: np.ndarray) -> np.ndarray:
        return log_softmax(-self._squared_distances(Z) / (2 * self.variance_), axis=1)

    def outlier_terms(self, Z: np.ndarray, segments: np.ndarray) -> np.ndarray:
        return (Z - self.centers_[segments]) ** 2

    def contrast_terms(self, Z: np.ndarray, segments: np.ndarray, rivals: np.ndarray) -> np.ndarray:
        # log p_a - log p_b = (|z - c_b|^2 - |z - c_a|^2) / (2 variance)
        #                   = sum_j (z_j - (c_aj + c_bj) / 2) (c_aj - c_bj) / variance
        own, rival = self.centers_[segments], self.centers_[rivals]
        return (Z - (own + rival) / 2) * (own - rival) / self.variance_


class DiscriminantAssigner:
    """Nearest centre in discriminant coordinates: k-means refined by linear discriminant analysis
    (``models.families.kmeans.discriminant_refinement``).

    ``projection`` maps preprocessed rows to the discriminant's coordinates: the segments' pooled
    within-segment covariance (as estimated, shrunk) is the identity there, and with fewer segments
    than columns only the k - 1 directions that separate segments are kept; nearness there is
    Mahalanobis distance under the covariance the segments share (LDA's model). Probabilities: an
    isotropic Gaussian per centre in those coordinates, as for k-means. Outliers are measured in
    the full preprocessed space, as for k-means, from the centre of the segment a row is placed
    in: the discriminant coordinates can drop directions along which segments do not differ, and
    a customer far out along those is unusual all the same.
    """

    def __init__(self, projection: np.ndarray, Z: np.ndarray, labels: np.ndarray) -> None:
        self.projection_ = projection
        n_segments = int(labels.max()) + 1
        coordinates = row_by_row_product(Z, projection)
        self.discriminant_ = CentroidAssigner(
            segment_means(coordinates, labels, n_segments), coordinates, labels
        )
        self.centers_ = segment_means(Z, labels, n_segments)
        self.threshold_ = float(np.quantile(self._distance(Z, labels), OUTLIER_QUANTILE))

    def _distance(self, Z: np.ndarray, segments: np.ndarray) -> np.ndarray:
        return np.sqrt(((Z - self.centers_[segments]) ** 2).sum(axis=1))

    def predict(self, Z: np.ndarray) -> np.ndarray:
        return self.discriminant_.predict(row_by_row_product(Z, self.projection_))

    def predict_proba(self, Z: np.ndarray) -> np.ndarray:
        return self.discriminant_.predict_proba(row_by_row_product(Z, self.projection_))

    def outlier_score(self, Z: np.ndarray) -> np.ndarray:
        return self._distance(Z, self.predict(Z))

    def proba_and_outlier_score(self, Z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        proba = self.predict_proba(Z)
        return proba, self._distance(Z, proba.argmax(axis=1))

    def log_proba(self, Z: np.ndarray) -> np.ndarray:
        return self.discriminant_.log_proba(row_by_row_product(Z, self.projection_))

    def outlier_terms(self, Z: np.ndarray, segments: np.ndarray) -> np.ndarray:
        return (Z - self.centers_[segments]) ** 2  # as ``_distance`` measures it

    def contrast_terms(self, Z: np.ndarray, segments: np.ndarray, rivals: np.ndarray) -> np.ndarray:
        # The nearest-centre contrast in the discriminant's coordinates u = z P is linear in u, so
        # in z: (u - m_u) . (a - b) = (z - m_z) . P (a - b), the centres there being the projected
        # means of the same segments (m: the two centres' midpoint).
        centroid = self.discriminant_
        own, rival = centroid.centers_[segments], centroid.centers_[rivals]
        midpoint = (self.centers_[segments] + self.centers_[rivals]) / 2
        along = row_by_row_product(own - rival, self.projection_.T)
        return (Z - midpoint) * along / centroid.variance_


def row_by_row_product(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """``A @ B`` computed so that each row's result does not depend on the other rows: BLAS picks
    its kernel, and so its rounding, by the matrix's shape, and a customer at a near-tie between
    two segments was placed in one scored alone and in the other inside a batch (a hostile
    client's review). The matrices are narrow (tens of columns), so einsum's plain loops cost
    little. Both in C order: einsum's loops follow the memory layout, and a batch's matrix
    (Fortran-ordered from the preprocessing) summed in another order than one row, which is both
    layouts at once (a CRM's review, 2026-12-08: 1,000 of 1,000 rows differed in the last bits,
    and a customer at a tie changed segment between a batch and its own request)."""
    return np.einsum("ij,jk->ik", np.ascontiguousarray(A), np.ascontiguousarray(B), optimize=False)


def segment_means(Z: np.ndarray, labels: np.ndarray, n_segments: int) -> np.ndarray:
    """The mean row of each segment ``0..n_segments-1``."""
    return np.array([Z[labels == segment].mean(axis=0) for segment in range(n_segments)])


class MixtureAssigner:
    """A Gaussian mixture: its own posterior; outliers have a low likelihood under every part."""

    def __init__(self, mixture: GaussianMixture, Z: np.ndarray, order: np.ndarray) -> None:
        self.mixture_ = mixture
        self.order_ = order  # segment index -> mixture component
        self.threshold_ = float(np.quantile(-mixture.score_samples(Z), OUTLIER_QUANTILE))

    def predict_proba(self, Z: np.ndarray) -> np.ndarray:
        return self.mixture_.predict_proba(Z)[:, self.order_]

    def predict(self, Z: np.ndarray) -> np.ndarray:
        return self.predict_proba(Z).argmax(axis=1)

    def outlier_score(self, Z: np.ndarray) -> np.ndarray:
        return -self.mixture_.score_samples(Z)

    def proba_and_outlier_score(self, Z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.predict_proba(Z), self.outlier_score(Z)

    def log_proba(self, Z: np.ndarray) -> None:
        return None  # scikit-learn's public API gives the probabilities only

    def outlier_terms(self, Z: np.ndarray, segments: np.ndarray) -> None:
        return None  # a likelihood under every part, with their covariances

    def contrast_terms(self, Z: np.ndarray, segments: np.ndarray, rivals: np.ndarray) -> None:
        return None  # a covariance per part: the log-odds is quadratic in the row


class NeighbourAssigner:
    """Segments found by density (HDBSCAN): a new customer joins the segment of its nearest
    members; it is an outlier when it lies farther from them than the training members do.

    One neighbour query serves both: the 10 nearest members vote for the segment, and the
    distance to the 5th of them is the outlier score.
    """

    N_NEIGHBOURS = 10
    N_OUTLIER_NEIGHBOUR = 5

    def __init__(self, Z: np.ndarray, labels: np.ndarray) -> None:
        members = labels >= 0
        self.member_labels_ = labels[members]
        self.n_segments_ = int(labels.max()) + 1
        self.neighbours_ = NearestNeighbors(
            n_neighbors=int(min(self.N_NEIGHBOURS, members.sum()))
        ).fit(Z[members])
        self.threshold_ = float(np.quantile(self.outlier_score(Z[members]), OUTLIER_QUANTILE))

    def _query(self, Z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        distances, indices = self.neighbours_.kneighbors(Z)
        return distances, self.member_labels_[indices]

    def predict(self, Z: np.ndarray) -> np.ndarray:
        return self.predict_proba(Z).argmax(axis=1)

    def predict_proba(self, Z: np.ndarray) -> np.ndarray:
        return self.proba_and_outlier_score(Z)[0]

    def outlier_score(self, Z: np.ndarray) -> np.ndarray:
        distances, _ = self._query(Z)
        return self._outlier_score(distances)

    def proba_and_outlier_score(self, Z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        distances, neighbour_labels = self._query(Z)
        votes = np.zeros((len(Z), self.n_segments_))
        np.add.at(votes, (np.arange(len(Z))[:, None], neighbour_labels), 1.0)
        return votes / neighbour_labels.shape[1], self._outlier_score(distances)

    def _outlier_score(self, distances: np.ndarray) -> np.ndarray:
        return distances[:, min(self.N_OUTLIER_NEIGHBOUR, distances.shape[1]) - 1]

    def log_proba(self, Z: np.ndarray) -> None:
        return None  # shares of a vote: a 0 is no vote, not an underflow

    def outlier_terms(self, Z: np.ndarray, segments: np.ndarray) -> None:
        return None  # the distance to one neighbour, whichever it is

    def contrast_terms(self, Z: np.ndarray, segments: np.ndarray, rivals: np.ndarray) -> None:
        return None  # a vote of neighbours: no sum over columns
