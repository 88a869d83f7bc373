"""Preprocessing that suits customer features: heavy-tailed money and counts, ratios, flags.

``FeaturePreprocessor`` is a scikit-learn transformer. Per column it learns:

- whether to compress the tail with a signed ``log1p``: when the column is non-negative and
  strongly right-skewed (MRR, lifetime value, event counts), whatever its unit;
- clipping bounds at the 0.5% and 99.5% quantiles, so a handful of extreme accounts cannot pull
  a segment's centre; a count of three to ``LOW_CARDINALITY`` evenly spaced values is not clipped
  (it has no tail of extreme accounts, and clipping its rarest value only turned it into a flag whose
  next-to-rarest step spans the whole range: ``_few_valued``);
- centring, and scaling by the width of that clipped range (``scaling="range"``, the default) or
  by the standard deviation (``scaling="std"``);
- and it drops constant columns, which carry no information and break scaling.

Why range scaling: dividing by the standard deviation lets a column's shape decide its weight in
every distance. A peaked column with a long tail (usage trend, refund rate: most customers near
one value, a few far out) has a small standard deviation, so its few tail customers end up many
units away from everyone and pull segments apart along a feature that says little about them.
Dividing by the range gives every feature the same span instead; Milligan and Cooper (1988, "A
study of standardization of variables in cluster analysis", J. Classification 5) found range
scaling the most reliable for recovering clusters; on our generated companies, k-means told the
right k recovered the planted personas at ARI 0.94-1.00 after range scaling against 0.66-0.98
after standardisation (``docs/segmentation.md``). The range is divided by ``NORMAL_SPAN`` so that
a bell-shaped feature keeps about unit variance, as under standardisation.

Why agreement weights (``weighting="agreement"``, the default): range scaling gives a 0/1 column
(an annual-plan flag, a country dummy) or a column that is one value for nearly everyone the whole
unit span, so its two groups sit further apart than any continuous feature's customers, and a flag
that has nothing to do with behaviour splits every segment in two. Segments are groups of customers
that differ in *several* features at once, so a column that marks a real segment can be told from
the other columns: a customer's nearest neighbours in the other features share its value. A column
that no other feature predicts (an independent flag) marks no segment. For each such sparse column
(at most ``LOW_CARDINALITY`` distinct values, or one value held by ``DOMINANT_VALUE_SHARE`` of the
customers) the preprocessor measures how well the mean of its ``AGREEMENT_NEIGHBOURS`` nearest
neighbours in the other columns tells its values apart (Somers' D), against how well they tell a
typical continuous column's apart, and weighs the column 0 within the noise of an independent
column's D, 1 within the noise of the typical column's, and linearly in between
(``agreement_weights``, ``agreement_weight``): an independent flag weighs 0, a flag the other
features back as much as a typical feature keeps its weight. Continuous columns keep weight 1: their spread is what range scaling already
equalises. The measured effect is in ``docs/segmentation.md``.

Judging a flag across sources (``sources="registry"``: ``CustomerSegmenter``'s default since
2026-12-03, while this preprocessor's own default stays None; measured in ``docs/segmentation.md``,
"Judging a flag across sources"): columns computed from the same events
as a flag share its mechanics, so they agree with it whatever the segments are. An annual plan is
invoiced once a year, so its customers have coarser per-payment rates (one charge a year:
refunded or not) and a year paid up front in lifetime value; billing columns "predict" a random
annual flag (weights 0.16-0.91 on 27 generated companies where the plan is drawn at random, with
the weights of before 2026-12-03's sixth session: ``bench/eval_cadence.py``). With ``sources``, a 0/1 column with a known source (the registry's
family: billing "value" or "behavioural" usage) is judged on the columns of the *other* sources
only: a flag that marks a segment still agrees there (its customers also use the product
differently), a flag that only says how a customer is billed does not, and a random annual flag
weighs next to nothing. Other sparse columns (small counts, mostly-zero rates) and columns with no
known source are judged on all the other columns, as is any flag when no other source is
present; the standard they are all held to, the typical dense column, is measured on all the
other columns. On the agent companies the flag's leftover weight masks another defect, personas
cut along a reproducible sub-group, so they lose some persona ARI with it; without it, once money
is in one currency, a random annual flag made segments of its own on journey companies.

Why reliability (``fit(X, reliability=...)``, given by training since 2026-12-06, sixth
session): a segment is what a customer *is* (a team size, a price, a way of using the product),
not a state it passes through. The same customers' features a month earlier say which columns
hold lasting traits: ``column_reliability`` is each column's test-retest correlation (Spearman,
over the customers in both tables). Tenure, MRR and seats are near 1; the MRR change over 90 days,
the activity trend, the days since the last activity and overdue days are 0-0.7 on generated and
demo companies: a customer with a downgrade or a quiet fortnight this month is not one next month.
In classical test theory the reliability is the share of a column's variance that is the lasting
part, so each column's weight is multiplied by its square root: its contribution to squared
distances shrinks by the share that is passing noise. Without a second table (a caller that has
one date only) every column keeps its weight. The measured effect is in ``docs/segmentation.md``,
"Lasting traits, not passing states".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Literal

import numpy as np
import pandas as pd
from scipy.stats import kendalltau
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.neighbors import NearestNeighbors
from sklearn.utils.validation import check_array, check_is_fitted

from feature_store.registry import find
from models.columns import ordered_values

# Skewness above which a non-negative column is log-compressed: a long right tail, as money and
# activity counts usually have.
_SKEW_FOR_LOG = 2.0
# Width, in standard deviations, of the central 99% of a normal distribution (2 x 2.576).
NORMAL_SPAN = 5.15
# Sparse columns: few distinct values (flags, small counts) or one value for nearly everyone.
LOW_CARDINALITY = 5
DOMINANT_VALUE_SHARE = 0.9
# Neighbours that vote on a sparse column's value, and the customers sampled to measure it: 15
# neighbours average out a single mislabelled neighbour; 2,000 customers keep the k-NN search to
# tens of milliseconds per column at any company size.
AGREEMENT_NEIGHBOURS = 15
AGREEMENT_SAMPLE = 2000
AGREEMENT_ROUNDS = 2
# How far before the as-of the second feature table is taken: a month, the window of the 30-day
# columns, so those windows do not overlap and a passing state shows as one. The 90- and 365-day
# windows overlap by two thirds and eleven twelfths, so those columns read as more lasting than a
# quarter or a year apart would show: their passing part is judged only in part.
RELIABILITY_LAG_DAYS = 30
# The customers both feature tables must share for a column's reliability to be judged: below
# it a correlation's standard error (about 1 / sqrt(n)) is above 0.14, and every column keeps its
# weight.
MIN_RELIABILITY_CUSTOMERS = 50
# A sparse column whose agreement falls short of the typical dense column's by less than this many
# standard errors (two: the usual 95% level) is not told apart from a typical feature.
AGREEMENT_NOISE_Z = 2.0


class NothingToSegmentError(ValueError):
    """Every column has one value for all the rows: no segmentation can tell them apart."""


def signed_log1p(values: np.ndarray) -> np.ndarray:
    return np.sign(values) * np.log1p(np.abs(values))


def _wants_log(column: np.ndarray) -> bool:
    """Compress a column's tail when it has one: non-negative and strongly right-skewed.

    The data decides, not the unit: a log spreads the small values apart, which helps a
    heavy-tailed column (MRR from 10 to 10,000) but turns a bounded, evenly spread one (active
    days in 30, tenure in days) into a column whose few near-zero customers sit far from the rest.
    """
    if column.min() < 0:
        return False
    spread = column.std()
    if spread == 0:
        return False
    skew = float(np.mean(((column - column.mean()) / spread) ** 3))
    return skew > _SKEW_FOR_LOG


class FeaturePreprocessor(TransformerMixin, BaseEstimator):
    """Log-compress heavy tails, clip extremes, standardise, drop constant columns.

    Parameters
    ----------
    log_transform : "auto" or bool
        "auto" decides per column (see module docstring); True or False applies to every column.
    clip_quantile : float
        Clip each column to ``[q, 1 - q]`` quantiles learned at fit; 0 disables clipping.
    scaling : "range" or "std"
        Divide each centred column by its clipped range over ``NORMAL_SPAN`` ("range") or by its
        standard deviation ("std").
    weighting : "agreement" or "none"
        "agreement" weighs each sparse column by how far the other columns predict it (see the
        module docstring); "none" leaves every column at weight 1.
    sources : None, "registry" or a mapping
        Where each column comes from, so that a flag's agreement is judged across sources
        (module docstring). None (the default) judges every column on all the others;
        "registry" takes a registry feature's family and leaves other columns without one; a
        mapping names them (column -> source).
    random_state : int
        Seeds the sample on which agreement is measured.
    """

    def __init__(
        self,
        log_transform: str | bool = "auto",
        clip_quantile: float = 0.005,
        scaling: Literal["range", "std"] = "range",
        weighting: Literal["agreement", "none"] = "agreement",
        sources: Literal["registry"] | Mapping[str, str] | None = None,
        random_state: int = 0,
    ) -> None:
        self.log_transform = log_transform
        self.clip_quantile = clip_quantile
        self.scaling = scaling
        self.weighting = weighting
        self.sources = sources
        self.random_state = random_state

    def fit(
        self,
        X: pd.DataFrame | np.ndarray,
        y: object = None,
        reliability: Mapping[str, float] | None = None,
    ) -> FeaturePreprocessor:
        """``reliability``: each column's test-retest reliability (``column_reliability``); a
        column's weight is multiplied by its square root (module docstring). Columns it does not
        name keep their weight."""
        frame = _as_frame(X)
        self.feature_names_in_ = np.array(frame.columns, dtype=object)
        self.n_features_in_ = frame.shape[1]
        sources = self._sources_of(self.feature_names_in_)
        # A spread needs two rows; sklearn's message names the number of samples.
        values = _finite(
            check_array(frame.to_numpy(dtype=float), ensure_min_samples=2, ensure_all_finite=False)
        )
        self.log_columns_ = np.array(
            [
                self.log_transform if isinstance(self.log_transform, bool) else _wants_log(c)
                for c in values.T
            ]
        )
        logged = self._log(values)
        q = self.clip_quantile
        self.lower_ = np.quantile(logged, q, axis=0) if q else logged.min(axis=0)
        self.upper_ = np.quantile(logged, 1 - q, axis=0) if q else logged.max(axis=0)
        # A count of a few values (downgrades in a year: 0, 1, 2) has no tail to clip. Clipped, its
        # rare 2s became 1s, and one downgrade spanned the whole range: more than the tenure that
        # told two personas apart, so k-means cut personas by it on the independent stand-ins
        # (``docs/segmentation.md``, "Few-valued counts are not clipped").
        # judged on the values as counted: a log would make even steps of a count look uneven
        few = _few_valued(values)
        self.lower_[few] = logged.min(axis=0)[few]
        self.upper_[few] = logged.max(axis=0)[few]
        self.mean_, self.scale_ = self._centre_and_scale(logged)
        self.kept_ = self.scale_ > 1e-12
        if not self.kept_.any():
            # Clipping can flatten a sparse column; fall back to the unclipped spread.
            self.lower_, self.upper_ = logged.min(axis=0), logged.max(axis=0)
            self.mean_, self.scale_ = self._centre_and_scale(logged)
            self.kept_ = self.scale_ > 1e-12
        if not self.kept_.any():
            raise NothingToSegmentError("every feature is constant; there is nothing to segment on")
        self.weights_ = np.ones(self.n_features_in_)
        if self.weighting == "agreement":
            # 0/1 columns as the data has them, before clipping can make a small count look so;
            # only needed (and only paid for) when some column has a known source
            flags = np.array(
                [
                    source is not None and set(np.unique(column)) == {0.0, 1.0}
                    for column, source in zip(values.T, sources, strict=True)
                ]
            )
            self.weights_[self.kept_] = agreement_weights(
                self._scaled(logged)[:, self.kept_],
                self.random_state,
                sources=sources[self.kept_],
                flags=flags[self.kept_],
            )
        elif self.weighting != "none":
            raise ValueError(f"weighting must be 'agreement' or 'none', got {self.weighting!r}")
        # NaN where a column was not judged (no second table, too few customers in both,
        # constant then, or a value that is no number): it keeps its weight
        given = reliability or {}
        judged = np.array([float(given.get(str(name), np.nan)) for name in self.feature_names_in_])
        judged = np.where(np.isfinite(judged), np.clip(judged, 0.0, 1.0), np.nan)
        lasting = self.weights_ * np.sqrt(np.nan_to_num(judged, nan=1.0))
        if (lasting[self.kept_] > 0).any():
            self.weights_ = lasting
        else:  # every column a passing state: nothing to weigh by, and none was applied
            judged = np.full(self.n_features_in_, np.nan)
        self.reliability_ = judged
        return self

    def _sources_of(self, columns: Iterable[object]) -> np.ndarray:
        """Each column's source, None where it is not known; refuses a ``sources`` that is not
        None, "registry" or a mapping, and a mapping naming columns the data does not have (a
        misspelt name would quietly turn the option off)."""
        names = [str(name) for name in columns]
        if self.sources is None:
            return np.array([None] * len(names), dtype=object)
        if isinstance(self.sources, str) and self.sources == "registry":
            definitions = [find(name) for name in names]
            return np.array([d.family if d else None for d in definitions], dtype=object)
        if not isinstance(self.sources, Mapping):
            raise ValueError(f"sources must be None, 'registry' or a mapping, got {self.sources!r}")
        unknown = sorted(str(name) for name in self.sources if str(name) not in names)
        if unknown:
            raise ValueError(f"sources names columns the data does not have: {unknown}")
        by_name = {str(name): source for name, source in self.sources.items()}
        return np.array([by_name.get(name) for name in names], dtype=object)

    def __setstate__(self, state: dict[str, object]) -> None:
        state.setdefault("sources", None)  # pickled before the parameter existed
        super().__setstate__(state)

    def _centre_and_scale(self, logged: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        clipped = np.clip(logged, self.lower_, self.upper_)
        if self.scaling == "std":
            return clipped.mean(axis=0), clipped.std(axis=0)
        if self.scaling == "range":
            return clipped.mean(axis=0), (self.upper_ - self.lower_) / NORMAL_SPAN
        raise ValueError(f"scaling must be 'range' or 'std', got {self.scaling!r}")

    def _log(self, values: np.ndarray) -> np.ndarray:
        out = values.copy()
        out[:, self.log_columns_] = signed_log1p(values[:, self.log_columns_])
        return out

    def _scaled(self, logged: np.ndarray) -> np.ndarray:
        """Clipped, centred and scaled, every column, before agreement weights."""
        clipped = np.clip(logged, self.lower_, self.upper_)
        return (clipped - self.mean_) / np.where(self.kept_, self.scale_, 1.0)

    def transform(self, X: pd.DataFrame | np.ndarray) -> np.ndarray:
        check_is_fitted(self, "kept_")
        values = _finite(ordered_values(self._checked(X), self.feature_names_in_))
        # Models fitted before agreement weights existed have none: every column weighs 1.
        weights = getattr(self, "weights_", np.ones(self.n_features_in_))
        return (self._scaled(self._log(values)) * weights)[:, self.kept_]

    def _checked(self, X: pd.DataFrame | np.ndarray) -> pd.DataFrame | np.ndarray:
        """Frames pass as they are (columns are taken by name); other input must be a 2-D dense
        array of the fitted width, with scikit-learn's messages when it is not."""
        if isinstance(X, pd.DataFrame):
            return X
        values = check_array(X, dtype=float, ensure_all_finite=False)
        if values.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {values.shape[1]} features, but {type(self).__name__} is expecting "
                f"{self.n_features_in_} features as input ({', '.join(self.feature_names_in_)})"
            )
        return values

    def get_feature_names_out(self, input_features: object = None) -> np.ndarray:
        check_is_fitted(self, "kept_")
        return self.feature_names_in_[self.kept_]


def column_reliability(now: pd.DataFrame, earlier: pd.DataFrame) -> dict[str, float]:
    """Each column's test-retest reliability: Spearman's correlation between its values in
    ``now`` and in ``earlier`` (the same customers' features a month before; both indexed by
    customer), over the customers in both, 0 where negative. A column constant in either table
    (usage that starts within the month) is not judged, nor is any column when fewer than
    ``MIN_RELIABILITY_CUSTOMERS`` customers are in both: those keep their weight."""
    # a customer listed twice in either table has no one pair of values to compare
    now = now[~now.index.duplicated(keep=False)]
    earlier = earlier[~earlier.index.duplicated(keep=False)]
    shared = now.index.intersection(earlier.index)
    columns = [c for c in now.columns if c in earlier.columns]
    if len(shared) < MIN_RELIABILITY_CUSTOMERS or not columns:
        return {}
    a = now.loc[shared, columns].astype(float)
    b = earlier.loc[shared, columns].astype(float)
    out: dict[str, float] = {}
    for column in columns:
        x, z = a[column].to_numpy(), b[column].to_numpy()
        finite = np.isfinite(x) & np.isfinite(z)
        x, z = x[finite], z[finite]
        if len(x) < MIN_RELIABILITY_CUSTOMERS or np.ptp(x) == 0 or np.ptp(z) == 0:
            continue
        rho = pd.Series(x).corr(pd.Series(z), method="spearman")
        if np.isfinite(rho):
            out[str(column)] = max(float(rho), 0.0)
    return out


def _few_valued(values: np.ndarray) -> np.ndarray:
    """Per column, whether it holds three to ``LOW_CARDINALITY`` distinct values spaced about
    evenly: a small count such as downgrades in a year (0, 1, 2). Not a flag (two values), whose
    range clipping leaves alone unless one value is under 0.5%: then a flag nearly no customer
    holds is dropped as constant, as before. Nor a column of a few values with one far out
    (0, 1, 400): that value is a tail, and clipping is what it is for."""
    return np.array([_evenly_spaced_few(np.unique(column)) for column in values.T])


def _evenly_spaced_few(distinct: np.ndarray) -> bool:
    if not 2 < len(distinct) <= LOW_CARDINALITY:
        return False
    steps = np.diff(distinct)
    # the widest step at most twice the narrowest: 0, 1, 3 is a count; 0, 1, 400 has a tail
    return bool(steps.max() <= 2 * steps.min())


def is_sparse(column: np.ndarray) -> bool:
    """Few distinct values (a flag, a small count) or one value for nearly every customer."""
    values, counts = np.unique(column, return_counts=True)
    return len(values) <= LOW_CARDINALITY or counts.max() >= DOMINANT_VALUE_SHARE * len(column)


def agreement_weights(
    Z: np.ndarray,
    random_state: int = 0,
    rounds: int = AGREEMENT_ROUNDS,
    sources: np.ndarray | None = None,
    flags: np.ndarray | None = None,
) -> np.ndarray:
    """Weight of each column of ``Z``: 1 for dense ones; for sparse ones how well their nearest
    neighbours in the other columns tell their values apart (Somers' D), against how well they
    tell apart the values of a typical dense column (the median of the dense columns' D), at
    most 1 (``agreement_weight``). Where the sample cannot tell the two apart, within
    ``AGREEMENT_NOISE_Z`` standard errors of D under independence, a column weighs 0 (D
    indistinguishable from an independent column's) or 1 (from the typical feature's): a rare
    flag is not marked down for the imprecision of its own measurement, and an independent one
    keeps no chance weight.

    The neighbours are searched in the other columns *as weighted*: the first round weighs every
    column 1, later rounds use the previous round's weights, so one independent flag does not
    blur the neighbourhoods on which another column's agreement is measured. The typical dense
    column is measured in the last round only (earlier rounds hold flags to D = 1).

    ``sources`` (one per column, None where unknown) and ``flags`` (which columns are 0/1): a
    flag with a known source is judged on the columns of other known sources, when there are
    any (``evidence_columns``). Without them every column is judged on all the others.
    """
    weights = np.ones(Z.shape[1])
    if Z.shape[1] < 2 or len(Z) <= AGREEMENT_NEIGHBOURS + 1:
        return weights
    rng = np.random.default_rng(random_state)
    sample = Z[rng.choice(len(Z), min(len(Z), AGREEMENT_SAMPLE), replace=False)]
    sparse = [column for column in range(Z.shape[1]) if is_sparse(sample[:, column])]
    dense = [column for column in range(Z.shape[1]) if column not in sparse]
    if not sparse:
        return weights
    evidence = evidence_columns(
        np.array([None] * Z.shape[1], dtype=object) if sources is None else sources,
        np.zeros(Z.shape[1], dtype=bool) if flags is None else flags,
    )
    for last in [False] * (rounds - 1) + [True]:
        weighted = sample * weights
        measured = sparse + dense if last and dense else sparse
        agreement = {
            column: _agreement(weighted[:, evidence[column]], sample[:, column])
            for column in measured
        }
        # The standard a flag is held to is the one the continuous features, which keep weight
        # 1 whatever their agreement, meet: the median dense column's.
        typical = float(np.median([agreement[c][0] for c in dense])) if last and dense else 1.0
        weights = weights.copy()
        for column in sparse:
            weights[column] = agreement_weight(*agreement[column], typical)
    return weights


def agreement_weight(d: float, noise: float, typical: float) -> float:
    """A sparse column's weight from its agreement ``d`` (Somers' D, standard error ``noise``
    under independence) and the typical dense column's: 0 within ``AGREEMENT_NOISE_Z`` standard
    errors of an independent column's D (0), 1 within as many of the typical column's, and
    linear in between.

    Linear rather than ``d / typical`` (before 2026-12-03, sixth session): that ratio jumped at
    both edges of the bands, from 0 to 2 x noise / typical at the lower and from about
    1 - 2 x noise / typical to 1 at the upper (0.91 to 1 for the Iranian data's `Complains`), so a
    change in D well within its noise could move a weight by a tenth. Where the bands meet or
    overlap (a flag so rare that its noise is a quarter of the typical D or more) there is
    nothing in between, and the weight is 0 or 1, as before."""
    low, high = AGREEMENT_NOISE_Z * noise, typical - AGREEMENT_NOISE_Z * noise
    if d <= low:
        return 0.0  # not told apart from an independent column
    if d >= high:
        return 1.0  # not told apart from a typical feature
    return (d - low) / (high - low)


def evidence_columns(sources: Sequence[object], is_flag: Sequence[bool]) -> list[np.ndarray]:
    """For each column, a mask of the columns whose neighbourhoods judge it: for a flag with a
    known source, those of the other known sources when any are present; otherwise all the
    others."""
    sources = np.asarray(sources, dtype=object)
    known = np.array([source is not None for source in sources])
    evidence = []
    for column, source in enumerate(sources):
        others = np.arange(len(sources)) != column
        if source is not None and is_flag[column]:
            elsewhere = others & known & (sources != source)
            evidence.append(elsewhere if elsewhere.any() else others)
        else:
            evidence.append(others)
    return evidence


def _agreement(others: np.ndarray, target: np.ndarray) -> tuple[float, float]:
    """Somers' D of the mean of each customer's neighbours (in ``others``, the evidence columns)
    given the column's own value (for a 0/1 column, 2 x AUC - 1 of the neighbours' vote), and its
    standard error under independence."""
    if np.ptp(target) == 0:
        return 0.0, 0.0
    search = NearestNeighbors(n_neighbors=AGREEMENT_NEIGHBOURS + 1).fit(others)
    neighbours = search.kneighbors(others, return_distance=False)[:, 1:]  # not the customer itself
    return somers_d(target, target[neighbours].mean(axis=1))


def somers_d(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Somers' D(y | x), (concordant - discordant pairs) / pairs not tied on x, and its standard
    error when x and y are independent, in O(n log n): the difference is Kendall's tau-b times
    sqrt(untied on x * untied on y); its null variance is Kendall's, with ties (Kendall 1970,
    Rank Correlation Methods, eq. 4.4)."""
    n = len(x)
    tx, ty = (np.unique(v, return_counts=True)[1].astype(float) for v in (x, y))
    pairs = n * (n - 1) / 2
    untied_x = pairs - np.sum(tx * (tx - 1) / 2)
    untied_y = pairs - np.sum(ty * (ty - 1) / 2)
    if untied_x == 0 or untied_y == 0:
        return 0.0, 0.0  # one side is constant: nothing is told apart
    tau = kendalltau(x, y).statistic
    difference = tau * np.sqrt(untied_x * untied_y)
    variance = (
        (
            n * (n - 1) * (2 * n + 5)
            - np.sum(tx * (tx - 1) * (2 * tx + 5))
            - np.sum(ty * (ty - 1) * (2 * ty + 5))
        )
        / 18
        + np.sum(tx * (tx - 1)) * np.sum(ty * (ty - 1)) / (2 * n * (n - 1))
        + np.sum(tx * (tx - 1) * (tx - 2))
        * np.sum(ty * (ty - 1) * (ty - 2))
        / (9 * n * (n - 1) * (n - 2))
    )
    return float(difference / untied_x), float(np.sqrt(max(variance, 0.0)) / untied_x)


def _finite(values: np.ndarray) -> np.ndarray:
    """Checked here rather than by ``check_array``: this message says what to do about it."""
    if not np.isfinite(values).all():
        raise ValueError("features contain NaN or infinite values; fill or drop them first")
    return values


def _as_frame(X: pd.DataFrame | np.ndarray) -> pd.DataFrame:
    """Arrays get positional names (x0, x1, ...); sparse, complex, 1-D or empty input is refused
    with scikit-learn's messages."""
    if isinstance(X, pd.DataFrame):
        return X
    array = check_array(X, dtype=float, ensure_all_finite=False)
    return pd.DataFrame(array, columns=[f"x{i}" for i in range(array.shape[1])])
