"""Why a customer landed in its segment: exact TreeSHAP on a surrogate of the segmentation.

The segmenter may be a mixture, k-means or a density model; none of them has a fast exact SHAP
method of its own. ``SegmentExplainer`` learns to reproduce the segmentation with one small
gradient-boosted tree model per segment (one-vs-rest, on the raw feature values a salesperson
recognises) and explains that segment's model with ``shap.TreeExplainer``. TreeSHAP is exact for
trees, so ``base_value + sum(contributions)`` equals the explained log-odds to floating-point
precision, and explaining one customer walks one small ensemble (tens of microseconds).

Why shallow trees with feature subsampling: a segment is usually defined by several features at
once (annual plan, many seats, heavy API use). Deep trees that may use every feature put all the
credit on the first feature that separates the segment, and the explanation names one feature.
Trees of a few leaves, each split choosing among a random 30% of the features, must use every
feature that separates the segment, so the credit is shared among them as it should be. The
surrogate grows richer trees (``leaf_ladder``) only when the shallow ones cannot reproduce the
segmentation.

Fidelity, the share of held-out customers whose surrogate segment equals the segmenter's, says how
far the explanations can be trusted; training refuses to promote a model below 0.97
(``docs/explanations.md``). It is measured on customers each surrogate never saw (cross-fitted on
small data); the surrogate that is kept then learns from every customer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import shap
from sklearn.base import BaseEstimator
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.model_selection import StratifiedKFold, train_test_split
from sklearn.utils.validation import check_is_fitted
from threadpoolctl import threadpool_limits

from models.columns import ordered_values


@dataclass(frozen=True)
class Attribution:
    """SHAP values of each row for one segment's log-odds: ``base + contributions.sum(1) == output``."""

    contributions: np.ndarray  # (rows, features)
    base_values: np.ndarray  # (rows,)
    outputs: np.ndarray  # (rows,)


class SegmentExplainer(BaseEstimator):
    """A one-vs-rest boosted-tree surrogate of a segmentation, explained with TreeSHAP.

    Parameters
    ----------
    leaf_ladder : tuple of int
        Leaves per tree to try, simplest first; the first whose held-out fidelity reaches
        ``target_fidelity`` is kept (else the most faithful).
    target_fidelity : float
        Held-out agreement at which a simpler surrogate is good enough.
    max_iter, learning_rate, max_features, min_samples_leaf :
        Boosting rounds, shrinkage, the share of features each split may choose from, and the
        smallest leaf. 60 rounds at 0.15 rather than 150 at 0.1: held-out fidelity on the demo
        company is the same (0.994 both) at 40% of the training time (``docs/benchmarks.md``),
        and the fidelity gate still judges every surrogate on customers it never saw.
    n_folds, cross_fit_rows : int
        Up to ``cross_fit_rows`` customers, fidelity is measured by ``n_folds``-fold cross-fitting
        (every customer held out once); beyond, on one held-out share. Three folds hold every
        customer out once as five do, for 3 x 2/3 of the fitting instead of 5 x 4/5; each
        surrogate learns from a third fewer customers, so the measure errs low if anything.
    holdout_share : float
        Share of customers held out to measure fidelity on large data.
    max_train_rows : int
        Cap on the rows each surrogate learns from (a random sample beyond it).
    random_state : int
        Same data and seed give the same surrogate.
    """

    def __init__(
        self,
        leaf_ladder: tuple[int, ...] = (4, 8, 16),
        target_fidelity: float = 0.98,
        max_iter: int = 60,
        learning_rate: float = 0.15,
        max_features: float = 0.3,
        min_samples_leaf: int = 10,
        n_folds: int = 3,
        cross_fit_rows: int = 10_000,
        holdout_share: float = 0.2,
        max_train_rows: int = 50_000,
        random_state: int = 0,
    ) -> None:
        self.leaf_ladder = leaf_ladder
        self.target_fidelity = target_fidelity
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.max_features = max_features
        self.min_samples_leaf = min_samples_leaf
        self.n_folds = n_folds
        self.cross_fit_rows = cross_fit_rows
        self.holdout_share = holdout_share
        self.max_train_rows = max_train_rows
        self.random_state = random_state

    def fit(self, X: pd.DataFrame, labels: np.ndarray) -> SegmentExplainer:
        """Learn to reproduce ``labels`` (segment ids ``0..k-1``) from ``X``."""
        labels = np.asarray(labels)
        if labels.min() < 0:
            raise ValueError("labels must be segment ids 0..k-1; assign outliers first")
        self.feature_names_in_ = np.array(X.columns, dtype=object)
        self.n_features_in_ = X.shape[1]
        self.n_segments_ = int(labels.max()) + 1
        values = X.to_numpy(dtype=float)
        folds = self._folds(labels)
        self.fidelity_by_leaves_: dict[int, float] = {}
        # Training threads are capped: OpenMP on a busy machine is far slower than one thread.
        with threadpool_limits(1):
            for leaves in self.leaf_ladder:
                agreement = self._held_out_agreement(values, labels, folds, leaves)
                self.fidelity_by_leaves_[leaves] = agreement
                if agreement >= self.target_fidelity:
                    break
            self.max_leaf_nodes_ = max(
                self.fidelity_by_leaves_, key=lambda leaves: self.fidelity_by_leaves_[leaves]
            )
            rows = self._capped(np.arange(len(labels)))
            self.models_ = self._fit_models(values[rows], labels[rows], self.max_leaf_nodes_)
        self.fidelity_ = self.fidelity_by_leaves_[self.max_leaf_nodes_]
        self.n_held_out_ = int(sum(len(test) for _, test in folds))
        return self

    def _folds(self, labels: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """Where fidelity is measured: every customer held out once (3 folds) on small data, where
        a single split would leave a noisy few hundred; one held-out share on large data."""
        smallest = np.bincount(labels, minlength=self.n_segments_).min()
        if len(labels) <= self.cross_fit_rows and smallest >= self.n_folds:
            splitter = StratifiedKFold(self.n_folds, shuffle=True, random_state=self.random_state)
            return list(splitter.split(np.zeros(len(labels)), labels))
        train, test = train_test_split(
            np.arange(len(labels)),
            test_size=self.holdout_share,
            random_state=self.random_state,
            stratify=labels if smallest >= 2 else None,
        )
        return [(np.sort(train), np.sort(test))]

    def _capped(self, rows: np.ndarray) -> np.ndarray:
        if len(rows) <= self.max_train_rows:
            return rows
        rng = np.random.default_rng(self.random_state)
        return np.sort(rng.choice(rows, self.max_train_rows, replace=False))

    def _held_out_agreement(
        self,
        values: np.ndarray,
        labels: np.ndarray,
        folds: list[tuple[np.ndarray, np.ndarray]],
        leaves: int,
    ) -> float:
        """Share of held-out customers whose surrogate segment equals the segmenter's."""
        agreed = 0
        for train, test in folds:
            train = self._capped(train)
            models = self._fit_models(values[train], labels[train], leaves)
            agreed += int((_decision(models, values[test]).argmax(axis=1) == labels[test]).sum())
        return agreed / sum(len(test) for _, test in folds)

    def _fit_models(
        self, values: np.ndarray, labels: np.ndarray, leaves: int
    ) -> list[HistGradientBoostingClassifier]:
        return [
            HistGradientBoostingClassifier(
                max_iter=self.max_iter,
                max_leaf_nodes=leaves,
                learning_rate=self.learning_rate,
                max_features=self.max_features,
                min_samples_leaf=self.min_samples_leaf,
                early_stopping=False,
                random_state=self.random_state,
            ).fit(values, (labels == segment).astype(int))
            for segment in range(self.n_segments_)
        ]

    def _values(self, X: pd.DataFrame | np.ndarray) -> np.ndarray:
        check_is_fitted(self, "models_")
        return ordered_values(X, self.feature_names_in_)

    def decision_function(self, X: pd.DataFrame | np.ndarray) -> np.ndarray:
        """Surrogate log-odds of each row for each segment, shape ``(rows, segments)``."""
        with threadpool_limits(1):
            return _decision(self.models_, self._values(X))

    def predict(self, X: pd.DataFrame | np.ndarray) -> np.ndarray:
        """The surrogate's segment for each row (what fidelity compares with the segmenter)."""
        return self.decision_function(X).argmax(axis=1)

    def _tree_explainers(self) -> list[Any]:
        # Built on first use (or by ``warm_up``) and never pickled: shap's tree structures are
        # derived state, cheap to rebuild from the fitted models.
        cached = self.__dict__.get("_shap_explainers")
        if cached is None:
            cached = [shap.TreeExplainer(model) for model in self.models_]
            self.__dict__["_shap_explainers"] = cached
        return cached

    def warm_up(self) -> SegmentExplainer:
        """Build the TreeSHAP structures now, so the first request does not pay for them."""
        check_is_fitted(self, "models_")
        self._tree_explainers()
        return self

    def explain(self, X: pd.DataFrame | np.ndarray, segments: np.ndarray) -> Attribution:
        """SHAP values of each row's log-odds for the segment given for that row."""
        values = self._values(X)
        segments = np.asarray(segments, dtype=int)
        contributions = np.zeros_like(values)
        base_values, outputs = np.zeros(len(values)), np.zeros(len(values))
        explainers = self._tree_explainers()
        for segment in np.unique(segments):
            rows = np.flatnonzero(segments == segment)
            explainer = explainers[segment]
            contributions[rows] = explainer.shap_values(values[rows], check_additivity=False)
            base_values[rows] = float(np.ravel(explainer.expected_value)[0])
            # The ensemble's own output, by a tree walk separate from the attribution, so that
            # additivity is a property tests check rather than an identity by construction.
            outputs[rows] = explainer.model.predict(values[rows])
        return Attribution(contributions, base_values, outputs)

    def explain_contrast(
        self, X: pd.DataFrame | np.ndarray, segments: np.ndarray, rivals: np.ndarray
    ) -> Attribution:
        """SHAP values of "why ``segments`` rather than ``rivals``": the difference of the two
        segments' log-odds, attributed feature by feature.

        TreeSHAP is linear in the explained output, so the difference of the two attributions is
        the attribution of the difference and stays additive. Its output is positive when the
        surrogate prefers the assigned segment, and its largest contributions are the reasons for
        that preference, which the per-segment view does not promise: a customer can sit far from
        every segment (all contributions negative) and still be nearest to its own.
        """
        own = self.explain(X, segments)
        rival = self.explain(X, rivals)
        return Attribution(
            own.contributions - rival.contributions,
            own.base_values - rival.base_values,
            own.outputs - rival.outputs,
        )

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("_shap_explainers", None)
        return state


def _decision(models: list[HistGradientBoostingClassifier], values: np.ndarray) -> np.ndarray:
    return np.column_stack([model.decision_function(values) for model in models])


# Customers per segment whose |SHAP| are averaged for the segment's drivers: the mean of a few
# thousand is as good as the mean of all to the second decimal, and TreeSHAP over 100,000 customers
# would cost more than fitting the surrogate.
DRIVER_SAMPLE = 2000


def mean_abs_contributions(
    explainer: SegmentExplainer,
    X: pd.DataFrame,
    labels: np.ndarray,
    per_segment: int = DRIVER_SAMPLE,
) -> dict[int, dict[str, float]]:
    """Per segment, each feature's mean |SHAP| over the segment's customers (its drivers), from
    at most ``per_segment`` of them drawn at random."""
    labels = np.asarray(labels)
    rows = _per_segment_sample(labels, per_segment, explainer.random_state)
    attribution = explainer.explain(
        ordered_values(X, explainer.feature_names_in_)[rows], labels[rows]
    )
    names = [str(name) for name in explainer.feature_names_in_]
    drivers = {}
    for segment in range(explainer.n_segments_):
        members = labels[rows] == segment
        means = np.abs(attribution.contributions[members]).mean(axis=0) if members.any() else None
        drivers[segment] = (
            dict(zip(names, means.tolist(), strict=True)) if means is not None else {}
        )
    return drivers


def _per_segment_sample(labels: np.ndarray, per_segment: int, seed: int) -> np.ndarray:
    """Row indices: every member of a segment up to ``per_segment``, a seeded sample beyond."""
    rng = np.random.default_rng(seed)
    chosen = []
    for segment in np.unique(labels):
        members = np.flatnonzero(labels == segment)
        if len(members) > per_segment:
            members = rng.choice(members, per_segment, replace=False)
        chosen.append(members)
    return np.sort(np.concatenate(chosen)) if chosen else np.array([], dtype=int)
