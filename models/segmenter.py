"""``CustomerSegmenter``: discovers segments with no number of segments given, assigns new rows.

A scikit-learn estimator: hyperparameters in ``__init__``, learned state in ``*_`` attributes,
``fit`` / ``predict`` / ``predict_proba``, and column checks on predict.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment
from sklearn.base import BaseEstimator, ClusterMixin, TransformerMixin
from sklearn.utils.validation import check_array, check_is_fitted
from threadpoolctl import threadpool_limits

from models.assigners import Assigner
from models.candidates import Candidate, CandidateScore, FittedCandidate
from models.preprocessing import FeaturePreprocessor
from models.selection import SelectionLimits, candidate_grid, select, told_count_grid

MIN_CUSTOMERS = 10
# A discovered segment holds at least this many customers, whatever ``min_segment_share`` allows
# on few customers: below it its median is one or two customers' values and its typical range
# their spread. A discovery of 12 customers made six segments of 4, 3, 2, 1, 1 and 1, each named
# as a group ("Long-tenured · Large teams · Heavy usage" for two; a product manager's
# walkthrough). From 500 customers on the 1% share is the larger bar; below 60 customers it also
# caps how many segments are tried.
MIN_SEGMENT_CUSTOMERS = 5

# Quantile levels of the training customers' outlier scores a fitted segmenter keeps
# (``outlier_score_grid_``): typicality to half a percent.
TYPICALITY_LEVELS = 201


class SegmentCountError(ValueError):
    """A number of segments that was asked for and cannot be made on this data."""


def check_segment_count(n_segments: int, max_segments: int, n_rows: int) -> None:
    """Refuse a number of segments that cannot be made: below 2, above the cap, or more than half
    the rows (each segment needs customers, and prediction strength fits halves of them)."""
    if n_segments < 2:
        raise SegmentCountError(f"a segmentation needs at least 2 segments, got {n_segments}")
    if n_segments > max_segments:
        raise SegmentCountError(f"{n_segments} segments asked for, above the cap of {max_segments}")
    if 2 * n_segments > n_rows:
        raise SegmentCountError(
            f"{n_segments} segments need at least {2 * n_segments} customers, got {n_rows}"
        )


def segmenter_for(segments: int | None, max_segments: int = 12, **params: Any) -> CustomerSegmenter:
    """Told ``segments`` when given, else discovering at most ``max_segments``. When told, the
    cap rises to the number: the run records the cap, and the promotion gate holds a version to
    the cap it was trained with."""
    cap = max(max_segments, segments or 0)
    return CustomerSegmenter(max_segments=cap, n_segments=segments, **params)


class CustomerSegmenter(TransformerMixin, ClusterMixin, BaseEstimator):
    """Automatic customer segmentation.

    Parameters
    ----------
    max_segments : int
        Cap on the number of segments, so the result stays readable.
    min_segment_share : float
        Smallest share of customers a segment may hold.
    max_outlier_share : float
        Largest share of customers a density method may leave unassigned.
    n_resamples : int
        Bootstrap refits per finalist for the stability score.
    selection_sample : int
        Rows used to compare candidates (drawn at random); the chosen candidate is refitted on
        ``fit_sample`` rows.
    fit_sample : int
        Rows the final model is fitted on; every row is then assigned by the fitted model.
    n_segments : int or None
        The number of segments, when the user knows it (their personas, a plan to act on six
        groups): only candidates with exactly that many are compared (``told_count_grid``), and
        the selection chooses between families. None: the number is discovered. At most
        ``max_segments``, and the data needs twice as many rows.
    candidates : list of Candidate or None
        The configurations to compare, e.g. ``[KMeansFamily().candidate(4)]``; None means every
        family's grid (``models.families.FAMILIES``), or ``n_segments``'s.
    log_transform : "auto" or bool
        Passed to ``FeaturePreprocessor``.
    weighting : "agreement" or "none"
        Passed to ``FeaturePreprocessor``: whether sparse columns (flags, small counts) weigh as
        much as the other features agree with them.
    sources : "registry", None or a mapping
        Passed to ``FeaturePreprocessor``: where each column comes from, so that a 0/1 column
        is judged on the columns of other sources (billing flags on usage, and the reverse).
        The default, "registry", takes each registry feature's family; None judges a flag on
        all the other columns (the rule before 2026-12-03, which columns computed from the same
        billing events as the flag outvote: ``docs/segmentation.md``, "Judging a flag across
        sources").
    random_state : int
        Same data and seed give the same segments.
    """

    def __init__(
        self,
        max_segments: int = 12,
        n_segments: int | None = None,
        min_segment_share: float = 0.01,
        max_outlier_share: float = 0.35,
        n_resamples: int = 3,
        selection_sample: int = 4000,
        fit_sample: int = 20000,
        candidates: list[Candidate] | None = None,
        log_transform: str | bool = "auto",
        weighting: str = "agreement",
        sources: Literal["registry"] | Mapping[str, str] | None = "registry",
        random_state: int = 0,
    ) -> None:
        self.max_segments = max_segments
        self.n_segments = n_segments
        self.min_segment_share = min_segment_share
        self.max_outlier_share = max_outlier_share
        self.n_resamples = n_resamples
        self.selection_sample = selection_sample
        self.fit_sample = fit_sample
        self.candidates = candidates
        self.log_transform = log_transform
        self.weighting = weighting
        self.sources = sources
        self.random_state = random_state

    def __setstate__(self, state: dict[str, Any]) -> None:
        # pickled before the parameter existed: fitted judging flags on all columns
        state.setdefault("sources", None)
        super().__setstate__(state)

    def fit(
        self,
        X: pd.DataFrame | np.ndarray,
        y: object = None,
        reliability: Mapping[str, float] | None = None,
    ) -> CustomerSegmenter:
        """``reliability``: each column's test-retest reliability, from the same customers'
        features a month earlier (``models.preprocessing.column_reliability``): what is a passing
        state weighs less (``FeaturePreprocessor``). None: every column as the data alone says."""
        if not isinstance(X, pd.DataFrame):
            # Sparse, complex, 1-D or empty input: scikit-learn's messages.
            X = check_array(X, dtype=float, ensure_all_finite=False)
        if len(X) < MIN_CUSTOMERS:
            raise ValueError(
                f"need at least {MIN_CUSTOMERS} customers to find segments, "
                f"got {len(X)} sample{'' if len(X) == 1 else 's'}"
            )
        if self.n_segments is not None:
            check_segment_count(self.n_segments, self.max_segments, len(X))
            wrong = [c for c in self.candidates or () if not _makes(c, self.n_segments)]
            if wrong:
                raise ValueError(
                    f"candidates {', '.join(c.name for c in wrong)} cannot make exactly "
                    f"{self.n_segments} segments"
                )
        # One thread for BLAS and OpenMP: the matrices are narrow (tens of columns), so threads
        # gain little, and on a busy machine their spin-waiting made one fit 50x slower. The
        # limit holds for the whole process while fit runs, then the previous limits return.
        with threadpool_limits(limits=1):
            return self._fit(X, reliability)

    def _fit(
        self, X: pd.DataFrame | np.ndarray, reliability: Mapping[str, float] | None
    ) -> CustomerSegmenter:
        self.preprocessor_ = FeaturePreprocessor(
            log_transform=self.log_transform,
            weighting=self.weighting,
            sources=self.sources,
            random_state=self.random_state,
        ).fit(X, reliability=reliability)
        self.feature_names_in_ = self.preprocessor_.feature_names_in_
        self.n_features_in_ = self.preprocessor_.n_features_in_
        Z = self.preprocessor_.transform(X)
        rng = np.random.default_rng(self.random_state)
        selection_rows = _sample(rng, len(Z), self.selection_sample)
        if self.candidates:
            grid = self.candidates
        elif self.n_segments is not None:
            grid = told_count_grid(self.n_segments)
        else:
            # no more segments than the customers can fill with MIN_SEGMENT_CUSTOMERS each
            most = max(2, min(self.max_segments, len(selection_rows) // MIN_SEGMENT_CUSTOMERS))
            grid = candidate_grid(len(selection_rows), most, Z.shape[1])
        fitted = [c.fit(Z[selection_rows], self.random_state) for c in grid]
        limits = SelectionLimits(
            self.max_segments,
            self._smallest_share(len(selection_rows)),
            self.max_outlier_share,
            self.n_segments,
        )
        chosen, self.candidate_scores_ = select(
            fitted, Z[selection_rows], limits, self.n_resamples, self.random_state
        )
        made = self.candidate_scores_[chosen].n_segments
        if self.n_segments is not None and made != self.n_segments:
            # k-means and mixtures return fewer clusters than asked when the customers take
            # fewer distinct values; the user asked for a number, so say so rather than
            # register a model with another one.
            raise SegmentCountError(
                f"{self.n_segments} segments cannot be made of these customers: they form at "
                f"most {made} distinct groups"
            )
        self.chosen_candidate_ = fitted[chosen].candidate
        self.assigner_ = self._final_assigner(Z, rng, fitted[chosen], selection_rows)
        proba, scores = self.assigner_.proba_and_outlier_score(Z)
        self.is_outlier_ = scores > self.assigner_.threshold_
        # where each training customer's outlier score stands: what ``typicality`` reads
        self.outlier_score_grid_ = np.quantile(scores, np.linspace(0, 1, TYPICALITY_LEVELS))
        self.labels_ = proba.argmax(axis=1)
        self.n_segments_ = int(proba.shape[1])
        return self

    def _final_assigner(
        self,
        Z: np.ndarray,
        rng: np.random.Generator,
        selected: FittedCandidate,
        selection_rows: np.ndarray,
    ) -> Assigner:
        """Refit the chosen candidate on more rows when that keeps the same segmentation, then let
        its family finish it (``ClusteringFamily.finish``: k-means is refined by discriminant
        analysis).

        A family whose settings only hold at the selection sample's size (HDBSCAN's absolute
        cluster sizes) is kept as fitted; a refit that changes the number of segments is
        discarded too, and so is a finish that changes it or leaves a segment below
        ``min_segment_share`` (or under two customers).
        """
        final, rows = selected, selection_rows
        fit_rows = _sample(rng, len(Z), self.fit_sample)
        family = self.chosen_candidate_.family
        if family.refits_on_more_rows and len(fit_rows) > len(selected.labels):
            refit = family.refit(self.chosen_candidate_, Z[fit_rows], self.random_state)
            if refit.n_segments == selected.n_segments:
                final, rows = refit, fit_rows
        finished = family.finish(final, Z[rows], self.random_state)
        # Run metrics: whether a finish was discarded, and how far a kept one moved the chosen
        # candidate's segments (the share of the customers it was fitted on that changed
        # segment; 0 for a family without a finish).
        self.finish_discarded_ = False
        self.finish_moved_share_ = 0.0
        if finished is final:
            return final.assigner
        self.finish_discarded_ = not keeps_segments(
            final.labels, finished.labels, self._smallest_share(len(final.labels))
        )
        if self.finish_discarded_:
            return final.assigner
        self.finish_moved_share_ = _moved_share(final.labels, finished.labels)
        return finished.assigner

    def _smallest_share(self, n_rows: int) -> float:
        """The smallest share of ``n_rows`` a segment may hold: ``min_segment_share``, and at
        least ``MIN_SEGMENT_CUSTOMERS`` customers unless the user told the number of segments
        (they asked for that many, and a group of three is theirs to have)."""
        if self.n_segments is not None:
            return self.min_segment_share
        return max(self.min_segment_share, MIN_SEGMENT_CUSTOMERS / n_rows)

    def _matrix(self, X: pd.DataFrame | np.ndarray) -> np.ndarray:
        check_is_fitted(self, "assigner_")
        return self.preprocessor_.transform(X)

    def predict(self, X: pd.DataFrame | np.ndarray) -> np.ndarray:
        """Segment index (0..n_segments_-1) of each row; outliers get their nearest segment."""
        Z = self._matrix(X)
        return self.assigner_.predict(Z)

    def predict_proba_from_matrix(self, Z: np.ndarray) -> np.ndarray:
        return self.assigner_.predict_proba(Z)

    def predict_proba(self, X: pd.DataFrame | np.ndarray) -> np.ndarray:
        """Membership probability of each row in each segment (rows sum to 1)."""
        return self.predict_proba_from_matrix(self._matrix(X))

    def placement_and_typicality_from_matrix(
        self, Z: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Membership probabilities and outlier flags of preprocessed rows, computed together,
        and each row's typicality: the share of the training
        customers that fit their segment less well (a larger outlier score: farther from its
        centre, for k-means), 1 at a centre, 0 beyond every training customer. Membership
        probabilities say which segment; on well separated segments they are near 1 for almost
        everyone, outliers included, and typicality says how typical a member the row is. None
        for a model fitted before it was recorded."""
        proba, scores = self.assigner_.proba_and_outlier_score(Z)
        is_outlier = scores > self.assigner_.threshold_
        grid = getattr(self, "outlier_score_grid_", None)
        if grid is None:
            return proba, is_outlier, None
        below = np.searchsorted(grid, scores, side="right") / len(grid)
        return proba, is_outlier, np.clip(1.0 - below, 0.0, 1.0)

    def outlier_flags(self, X: pd.DataFrame | np.ndarray) -> np.ndarray:
        """True where a row lies farther from its segment than 99% of the training members."""
        Z = self._matrix(X)
        return self.assigner_.outlier_score(Z) > self.assigner_.threshold_

    def transform(self, X: pd.DataFrame | np.ndarray) -> np.ndarray:
        """The preprocessed matrix the segments live in (what ``*_from_matrix`` methods take)."""
        return self._matrix(X)

    def segment_order_from_matrix(self, Z: np.ndarray, proba: np.ndarray) -> np.ndarray:
        """Each row's segments from most to least probable (``proba``: ``predict_proba`` of
        ``Z``). Where the probabilities of all but one segment are exactly 0 (far from every
        centre they underflow), their order is taken from the assigner's log-probabilities when
        it has them: the runner-up a stable sort of the zeros named was the lowest-numbered
        segment, not the second-nearest (18 of 1,500 demo customers; a reviewer of the exact
        contrast)."""
        order = np.argsort(-proba, axis=1, kind="stable")
        if proba.shape[1] < 2:
            return order
        saturated = np.flatnonzero(proba[np.arange(len(proba)), order[:, 1]] == 0)
        if len(saturated):
            log_proba = self.assigner_.log_proba(Z[saturated])
            if log_proba is not None:
                order[saturated] = np.argsort(-log_proba, axis=1, kind="stable")
        return order

    def outlier_terms(
        self, X: pd.DataFrame | np.ndarray, segments: np.ndarray
    ) -> np.ndarray | None:
        """Each input feature's part of each row's outlier score (squared differences from the
        centre of its segment in ``segments``, adding up to the squared score); None for a model
        whose outlier score is no such sum (``Assigner.outlier_terms``). Dropped features: 0."""
        Z = self._matrix(X)
        return self._by_input_feature(self.assigner_.outlier_terms(Z, np.asarray(segments, int)))

    def contrast_terms(
        self, X: pd.DataFrame | np.ndarray, segments: np.ndarray, rivals: np.ndarray
    ) -> np.ndarray | None:
        """Each row's log-odds of ``segments`` over ``rivals`` under ``predict_proba``, split
        exactly into one term per input feature (the terms add up to it); None for a model whose
        assigner has no such split (``Assigner.contrast_terms``).

        Preprocessing works column by column (log, clip, centre, scale, weigh), so a term of the
        preprocessed matrix is a term of the feature it came from; a constant feature, dropped
        by preprocessing, has none (0)."""
        Z = self._matrix(X)
        return self._by_input_feature(
            self.assigner_.contrast_terms(
                Z, np.asarray(segments, dtype=int), np.asarray(rivals, dtype=int)
            )
        )

    def _by_input_feature(self, terms: np.ndarray | None) -> np.ndarray | None:
        """Terms of the preprocessed matrix's columns as terms of the input features: a dropped
        (constant) feature has none, 0."""
        if terms is None:
            return None
        out = np.zeros((len(terms), self.n_features_in_))
        out[:, self.preprocessor_.kept_] = terms
        return out

    @property
    def selection_table_(self) -> list[CandidateScore]:
        return self.candidate_scores_


def _sample(rng: np.random.Generator, n_rows: int, size: int) -> np.ndarray:
    if n_rows <= size:
        return np.arange(n_rows)
    return np.sort(rng.choice(n_rows, size, replace=False))


def keeps_segments(before: np.ndarray, after: np.ndarray, min_segment_share: float) -> bool:
    """Whether a finish may replace ``before`` by ``after``: the same number of segments, none
    under ``min_segment_share`` of the rows or under two customers."""
    n_segments = int(before.max()) + 1
    if int(after.max()) + 1 != n_segments:
        return False
    sizes = np.bincount(after[after >= 0], minlength=n_segments)
    return bool(sizes.min() >= max(2, min_segment_share * len(after)))


def _moved_share(before: np.ndarray, after: np.ndarray) -> float:
    """Share of rows whose segment changed, each ``before`` segment matched one-to-one to the
    ``after`` segment it shares most rows with (the two number their segments independently)."""
    overlap = pd.crosstab(before, after).to_numpy()
    rows, columns = linear_sum_assignment(-overlap)
    return float(1 - overlap[rows, columns].sum() / len(before))


def _makes(candidate: Candidate, n_segments: int) -> bool:
    return candidate.family.sets_segment_count and candidate.setting == n_segments
