"""Training: features as of a date -> segmenter -> profiles -> an MLflow run and a registered version.

Promotion gates (``models.gates``; the very first version becomes champion when its explanations
pass the fidelity gate, any later one becomes ``challenger`` and waits for ``segments compare`` /
``promote`` / ``retrain``, ``pipelines.lifecycle``):

- the segmentation is reproducible: stability (bootstrap ARI) at least ``MIN_STABILITY``;
- it is readable: between 2 and the segment cap, outlier share at most ``MAX_OUTLIER_SHARE``;
- it is not worse than the champion it replaces: silhouette no more than ``MAX_SILHOUETTE_DROP``
  below the champion's at the same setting (same family and number of segments), and never below
  ``MIN_SILHOUETTE`` (``models.gates.silhouette_gate``);
- its explanations can be trusted: the surrogate reproduces the segmentation on held-out customers
  at least ``MIN_FIDELITY`` of the time. This gate holds for the first version too: a model whose
  explanations are wrong must not reach the CRM; so does the freshness gate (``data_lag_days``).

Every new version gets the ``challenger`` alias and public segment ids traced against the champion
(``pipelines.identity``).
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
from hdbscan.validity import validity_index

from feature_store.coverage import (
    data_lag_days,
    event_kinds_before,
    stream_ends,
    stream_starts,
)
from feature_store.currency import (
    CurrencyLevels,
    estimate_levels,
    extended,
    levels_of,
    priced,
    single_currency,
)
from feature_store.errors import SegmentsError
from feature_store.features import USAGE_LOOKBACK_DAYS
from feature_store.layout import StoreLayout
from feature_store.registry import (
    SEGMENTED_FEATURE_NAMES,
    find,
    lacking_events,
    with_other_features,
)
from feature_store.timeutil import as_of_text, naive_utc, now_utc, rfc3339
from models.bundle import SegmentModel
from models.business import (
    BACKTEST_WINDOW_DAYS,
    CANCELED,
    NO_COHORT,
    NO_SUBSCRIPTIONS,
    REPURCHASE_MARGIN,
    SegmentBacktest,
    backtest_repurchases,
    backtest_segments,
    billing_end_shortfall,
    churned_summary,
    last_active_dates,
    members_then,
    usage_history_shortfall,
    with_earlier_churn,
)
from models.comparison import candidate_metric
from models.explainer import SegmentExplainer, mean_abs_contributions
from models.gates import challenger_gates, first_version_gates
from models.gates import failures as gates_failures
from models.lineage import THIS_VERSION
from models.population import PopulationQuantiles
from models.preprocessing import RELIABILITY_LAG_DAYS, NothingToSegmentError, column_reliability
from models.profiles import (
    SegmentProfile,
    attach_backtest,
    attach_drivers,
    build_profiles,
    held_phrases,
    segment_effects,
)
from models.registry import (
    CHALLENGER,
    CHAMPION,
    MODEL_DIR,
    UNFINISHED_TAG,
    ModelRegistry,
    save_model,
)
from models.segmenter import (
    MIN_CUSTOMERS,
    CustomerSegmenter,
    SegmentCountError,
    check_segment_count,
)
from models.summaries import reporting_currency
from pipelines.feature_pipeline import (
    build_features,
    build_local_features,
    build_local_features_at,
    cancellations,
    converted,
)
from pipelines.identity import (
    LINEAGE_FOLDER,
    NEXT_ID_TAG,
    Identified,
    identify,
    lineage_tags,
    membership,
    next_free_id,
    predecessor,
    write_lineage,
)
from pipelines.plots import business_panels
from pipelines.tracking import launcher_run, registry_config

DBCV_SAMPLE = 1500


@dataclass
class TrainResult:
    run_id: str
    model_version: str
    n_segments: int
    metrics: dict[str, float]
    promoted: bool
    champion_version: str | None
    gate_failures: list[str]
    segments: list[dict[str, object]]
    seconds: float
    churned: dict[str, object] | None = None  # models.business.ChurnedCustomers, beside segments
    lineage: dict[str, int] = field(default_factory=dict)  # transitions by kind
    same_id_share: float | None = None  # of customers in both versions' training sets
    # how money in several currencies was made one (``feature_store.currency``); None: one
    # currency
    currency_levels: dict[str, object] | None = None
    # the champion its segment ids were traced against (None: none, the first version)
    traced_against: str | None = None
    # features not segmented on, by the kind of event the data home has none of before the date
    # (``segmented_features``)
    left_out: dict[str, list[str]] = field(default_factory=dict)
    # of the survived segments, how many changed name (``SegmentTransition.renamed_from``)
    renamed: int = 0
    # segments that took back an id a rolled-back version served (``returned_from``)
    returned: int = 0
    # the currency its money is in (``models.summaries.reporting_currency``; None: not known)
    money_currency: str | None = None

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def _dbcv(Z: np.ndarray, labels: np.ndarray, seed: int) -> float:
    rows = np.random.default_rng(seed).choice(len(Z), min(len(Z), DBCV_SAMPLE), replace=False)
    sampled = labels[rows].copy()
    # A segment with one sampled customer has no density of its own (hdbscan's validity index
    # fails on it: a spanning tree with no edge); it counts as noise, as a lone outlier would.
    values, counts = np.unique(sampled, return_counts=True)
    sampled[np.isin(sampled, values[counts < 2])] = -1
    if len(np.unique(sampled[sampled >= 0])) < 2:
        return -1.0
    return float(validity_index(Z[rows].astype(np.float64), sampled))


@dataclass(frozen=True)
class FittedSegmentation:
    """The model, plus what the pictures and artifacts need from fitting it."""

    model: SegmentModel
    Z: np.ndarray  # the preprocessed matrix
    drivers: dict[int, dict[str, float]]  # per segment, per feature: mean |SHAP|
    customer_ids: list[str] = field(default_factory=list)  # the rows of Z
    # Per segment position, the phrases its data supports (``models.profiles.held_phrases``);
    # None: not measured, so a kept name is not checked against it
    held_phrases: list[frozenset[str]] | None = None


def fit_model(
    features: pd.DataFrame,
    segmenter: CustomerSegmenter,
    explainer: SegmentExplainer | None = None,
    feature_names: Sequence[str] = SEGMENTED_FEATURE_NAMES,
    on_step: Callable[[str], object] | None = None,
    earlier: pd.DataFrame | None = None,
) -> FittedSegmentation:
    """Fit the segmenter and its explainer on the active customers, then profile the segments.

    ``earlier``: the feature table a month before (``earlier_features``); the columns whose
    values change most between the two (passing states rather than lasting traits) weigh less
    (``models.preprocessing.column_reliability``). None: no column is judged so.

    Customers whose subscription is cancelled are not segmented: "churned" would be a segment by
    construction and every other segment would show no churn. They are reported beside the
    segments, and churn is measured by backtest (``measure_business``).

    ``feature_names``: the features segmented on (a discovery may choose families); the profiles
    describe every registry feature of ``features`` besides (a segment's median failed payments are
    in its profile though the per-attempt rate is what it was found on); ``on_step``
    hears "candidates" then "explainer" as fitting reaches them (a discovery job's progress).
    """
    report = on_step or (lambda step: None)
    currency = levels_of(features)  # read before any step that may drop attrs
    money_currency = single_currency(features)
    everyone = len(features)
    features = active_customers(features)
    if len(features) < MIN_CUSTOMERS:  # cancelled customers are not segmented (above)
        why = " (the others' subscriptions are cancelled)" if everyone > len(features) else ""
        raise SegmentsError(
            f"only {len(features):,} of the {everyone:,} customers are active as of the "
            f"date{why}; segments need at least {MIN_CUSTOMERS}"
        )
    if segmenter.n_segments is not None:
        try:  # a refusal the user can act on, before any fitting
            check_segment_count(segmenter.n_segments, segmenter.max_segments, len(features))
        except SegmentCountError as error:
            raise SegmentsError(f"{error} (active customers as of the date)") from None
    names = [n for n in feature_names if n in features.columns]
    X = features[names]
    reliability = reliability_of(features, earlier, names)
    report("candidates")
    try:
        segmenter.fit(X, reliability=reliability)
    except SegmentCountError as error:  # told a number the customers cannot make
        raise SegmentsError(str(error)) from None
    except NothingToSegmentError:  # a company whose customers all look alike, or a bare export
        raise SegmentsError(
            f"the {len(X):,} active customers have the same value of every feature segmented on "
            f"({len(names)} features): there is nothing to tell them apart by"
        ) from None
    if segmenter.n_segments_ < 2:  # nothing admissible, and the fallback could not split them
        raise SegmentsError(
            f"the {len(X):,} active customers form no segments: the best division found puts "
            "them all in one (they are nearly all alike on every feature segmented on)"
        )
    Z = segmenter.transform(X)
    proba, _, typicality = segmenter.placement_and_typicality_from_matrix(Z)
    report("explainer")
    explainer = (explainer or SegmentExplainer(random_state=segmenter.random_state)).fit(
        X, segmenter.labels_
    )
    kept = list(segmenter.preprocessor_.get_feature_names_out())
    # once, for the profiles and their names and for what a name kept at a retrain may say
    effects = segment_effects(Z, kept, segmenter.labels_, segmenter.n_segments_)
    profiles = build_profiles(
        features,
        features["customer_id"],
        segmenter.labels_,
        segmenter.is_outlier_,
        proba.max(axis=1) if typicality is None else typicality,
        Z,
        kept,
        segmenter.n_segments_,
        described_features=with_other_features(names, features.columns),
        effects=effects,
    )
    drivers = mean_abs_contributions(explainer, X, segmenter.labels_)
    attach_drivers(profiles, drivers)
    chosen = next(s for s in segmenter.candidate_scores_ if s.chosen)
    metrics = {
        "n_segments": float(segmenter.n_segments_),
        "outlier_share": float(segmenter.is_outlier_.mean()),
        "silhouette": chosen.silhouette,
        "stability": float(chosen.stability or 0.0),
        "dbcv": _dbcv(Z, segmenter.labels_, segmenter.random_state),
        "customers": float(len(features)),
        "surrogate_fidelity": explainer.fidelity_,
        "finish_moved_share": segmenter.finish_moved_share_,
        "finish_discarded": float(segmenter.finish_discarded_),
    }
    # written as every other instant of the API is (RFC 3339 with Z): /v1/model gave "+00:00"
    # beside loaded_at's and features_as_of's "Z"
    trained_at = rfc3339(datetime.now(UTC).replace(microsecond=0))
    model = SegmentModel(
        segmenter,
        names,
        profiles,
        metrics,
        explainer,
        trained_at,
        PopulationQuantiles.of(X),
        currency=currency,
        money_currency=money_currency,
    )
    held = held_phrases(features, effects, profiles)
    return FittedSegmentation(model, Z, drivers, features["customer_id"].astype(str).tolist(), held)


def segmented_features(
    layout: StoreLayout,
    as_of: datetime,
    names: Sequence[str] = SEGMENTED_FEATURE_NAMES,
    customers: Collection[str] | None = None,
) -> tuple[list[str], dict[str, list[str]]]:
    """``names`` but those whose kind of event the data home (``customers``' events, when given:
    a discovery's cohort) has none of before ``as_of``, and those left out by that kind
    (``registry.lacking_events``): with no usage event at all, the days since a customer's last
    activity are their tenure, and segmenting on them would name a segment "Dormant" for being
    old."""
    lacking = lacking_events(names, event_kinds_before(layout, as_of, customers))
    left_out = {name for kind in lacking.values() for name in kind}
    return [name for name in names if name not in left_out], lacking


def active_customers(features: pd.DataFrame) -> pd.DataFrame:
    """The customers whose subscription is not cancelled (everyone, for data without one)."""
    if CANCELED not in features:
        return features
    return features[features[CANCELED] == 0].reset_index(drop=True)


def measure_business(
    model: SegmentModel,
    start: pd.DataFrame,
    end: pd.DataFrame,
    unmeasured: str | None = None,
    unobserved: str | None = None,
) -> None:
    """Backtest the model's segments over the window from ``start`` to ``end`` (feature tables
    as of the window's two ends) and record the churned customers; updates ``model`` in place.

    The cohort is the customers paying at the window's start, placed by the model from their
    features then; their features at the end say who cancelled, contracted or expanded. With no
    paying customer at the start (too little history, or data without subscriptions), or when
    ``unmeasured`` says why the start's features cannot place them (``backtest_shortfall``), no
    segment is measured and the profiles say so (``churn_rate`` None) rather than 0%; the
    cohort's overall churn (``backtest_churn_rate``) and lost MRR need billing only and are
    still recorded. When ``unobserved`` says why the window's end is not in the data (billing that
    ends before the features' date, ``window_end_shortfall``), not even those are: the cohort is
    not counted, as with nobody paying at the start.
    """
    canceled_end = end[CANCELED] == 1 if CANCELED in end else pd.Series(False, end.index)
    churned_ids = end.loc[canceled_end, "customer_id"].astype(str).tolist()
    paying = (start[CANCELED] == 0) & (start["mrr"] > 0) if len(start) else []
    cohort = start[paying].reset_index(drop=True) if len(start) else start
    unplaced = np.array([], dtype=int)
    if len(cohort) == 0 or unobserved is not None:
        # nobody to place (too little history, whatever the usage says), or no end to see them
        # at; said, so that an API client does not read the 0.0 of MRR as "nothing lost"
        why = unobserved
        if len(cohort) == 0:
            subscribed = any(len(t) and "mrr" in t and (t["mrr"] > 0).any() for t in (start, end))
            why = NO_COHORT if subscribed else NO_SUBSCRIPTIONS
            if not subscribed and unobserved is None and unmeasured is None:
                measure_repurchases(model, start, end)
        model.churned = replace(
            churned_summary(churned_ids, 0.0, [], unplaced), backtest_unmeasured=why
        )
        return
    later = end.set_index("customer_id").reindex(cohort["customer_id"])
    canceled = later[CANCELED].fillna(0).to_numpy() == 1
    mrr_start = cohort["mrr"].to_numpy(float)
    model.metrics["backtest_cohort"] = float(len(cohort))
    model.metrics["backtest_churn_rate"] = float(canceled.mean())
    if unmeasured is not None:
        # Who cancelled and the MRR they took come from billing alone; only placing the cohort in
        # segments needs the usage the data lacks.
        model.churned = replace(
            churned_summary(churned_ids, float(mrr_start[canceled].sum()), [], unplaced),
            backtest_unmeasured=unmeasured,
        )
        return
    segments = model.place(model.values(cohort)).segment
    model.last_active_segment = {
        customer: int(segment)
        for customer, segment, gone in zip(
            cohort["customer_id"].astype(str), segments.tolist(), canceled, strict=True
        )
        if gone
    }
    backtest = backtest_segments(
        segments, mrr_start, later["mrr"].fillna(0).to_numpy(float), canceled, len(model.profiles)
    )
    # where today's members were then: a segment of recent downgrades held nobody then, and
    # its customers' losses are counted where they were placed
    _attach_with_members_then(model, backtest, cohort["customer_id"], segments, end)
    model.churned = churned_summary(
        churned_ids, float(mrr_start[canceled].sum()), cohort["customer_id"].astype(str), segments
    )


def measure_repurchases(model: SegmentModel, start: pd.DataFrame, end: pd.DataFrame) -> None:
    """For a business of invoices alone: place the customers who had paid before the window's
    start by their features then, and record per segment the share who paid again within it
    (``models.business.backtest_repurchases``); updates ``model`` in place. Nothing when nobody
    had paid then."""
    if not len(start) or "ltv" not in start or "ltv" not in end:
        return
    buyers = start[start["ltv"] > 0].reset_index(drop=True)
    if not len(buyers):
        return
    later = end.set_index("customer_id").reindex(buyers["customer_id"])
    ltv_start = buyers["ltv"].to_numpy(float)
    ltv_end = later["ltv"].fillna(0).to_numpy(float)
    segments = model.place(model.values(buyers)).segment
    backtest = backtest_repurchases(segments, ltv_start, ltv_end, len(model.profiles))
    model.metrics["backtest_buyers"] = float(len(buyers))
    model.metrics["backtest_repurchase_rate"] = float(
        (ltv_end > ltv_start + REPURCHASE_MARGIN).mean()
    )
    # where today's members were then: a segment of lapsed buyers today held few of its
    # customers' earlier selves, and its figure is of whom it held (a retailer's review)
    _attach_with_members_then(model, backtest, buyers["customer_id"], segments, end)


def _attach_with_members_then(
    model: SegmentModel,
    backtest: list[SegmentBacktest],
    cohort_ids: pd.Series,
    segments_then: np.ndarray,
    end: pd.DataFrame,
) -> None:
    """Store ``backtest`` on the model and its profiles, each segment with where its customers
    of today (the active ones of ``end``) were at the window's start: the segment the backtest
    placed them in (``cohort_ids`` placed in ``segments_then``), or in none."""
    today = active_customers(end)
    placed_then = dict(zip(cohort_ids.astype(str), segments_then.tolist(), strict=True))
    then = np.array([placed_then.get(c, -1) for c in today["customer_id"].astype(str)], dtype=int)
    now = model.place(model.values(today)).segment if len(today) else np.array([], dtype=int)
    where = members_then(np.asarray(now), then, model.segment_ids, len(model.profiles))
    model.backtest = [
        replace(item, members_then=counts) for item, counts in zip(backtest, where, strict=True)
    ]
    attach_backtest(model.profiles, model.backtest)


def reliability_of(
    features: pd.DataFrame, earlier: pd.DataFrame | None, names: Sequence[str]
) -> dict[str, float] | None:
    """Each of ``names``' reliability between ``features`` and ``earlier`` (both with a
    ``customer_id`` column), over the customers in both; None without ``earlier``."""
    if earlier is None:
        return None
    return column_reliability(
        features.set_index("customer_id")[list(names)], earlier.set_index("customer_id")
    )


def earlier_features(
    layout: StoreLayout, as_of: datetime, levels: CurrencyLevels | None
) -> pd.DataFrame | None:
    """The feature table ``RELIABILITY_LAG_DAYS`` before ``as_of``, money converted as the
    model's (``window_start_features``), for judging which columns hold lasting traits
    (``fit_model``); None when the stored events begin after that date. Usage columns are left
    out of it when the usage events do not cover the month before that date while billing goes
    further back (``models.business.usage_history_shortfall``, as the backtest judges its
    cohort): their values then would be undercounts or fallbacks, and a column judged on them
    would weigh by the export's start, not by what it measures."""
    then = naive_utc(as_of) - timedelta(days=RELIABILITY_LAG_DAYS)
    starts = stream_starts(layout)
    first = [moment for moment in starts.values() if moment is not None]
    if not first or min(first) >= then:
        return None
    table = window_start_features(layout, then, levels)
    if usage_history_shortfall(starts["usage"], starts["billing"], then, RELIABILITY_LAG_DAYS):
        usage = [
            n for n in table.columns if (d := find(n)) is not None and d.family == "behavioural"
        ]
        table = table.drop(columns=usage)
    return table


def window_start_features(
    layout: StoreLayout, window_start: datetime, levels: CurrencyLevels | None
) -> pd.DataFrame:
    """The feature table at the window's start, money converted as the model's customers' was:
    by ``levels`` (the model's), extended by what this table measures for a currency they lack.
    A currency whose customers had all cancelled by the features' date has no level there, yet
    its customers paying at the window's start are the cohort, and their MRR, left in their own
    currency, would be counted as if it were the reporting one. A currency neither prices (fewer
    paying customers than a level needs) leaves its customers out, as ``place_earlier_churn``
    does: two customers paying 15,000 JPY were counted as 15,000 USD of lost MRR (training says
    that currency is not converted). Reads the data home's kept levels only through ``levels``;
    writes nothing."""
    local = build_local_features(layout, window_start)
    levels = extended(levels, estimate_levels(local))
    if levels is not None and levels.levels:
        # with no level at all (no currency has enough paying customers) nothing is converted
        # anywhere, the model included, and training says so; leaving everyone out would read as
        # "nobody was paying then"
        local = local[priced(local, levels)].reset_index(drop=True)
    return converted(local, levels)


def place_earlier_churn(
    model: SegmentModel,
    layout: StoreLayout,
    as_of: datetime,
    window_start: datetime,
    levels: CurrencyLevels | None = None,
) -> None:
    """Add to ``model.churned`` the customers cancelled as of ``as_of`` who cancelled before the
    window (``measure_business`` places only those paying at its start): each placed from its
    features at the last step before it cancelled (``models.business.last_active_dates``),
    money converted as the model's customers' was. A step whose usage history is too short to
    read them then (``usage_history_shortfall``) leaves its customers unplaced, as the
    backtest's cohort would be; what they paid then is still counted. A customer in a currency
    no level prices is neither placed nor counted in what they paid. ``levels``: those the
    window's start was converted by (``window_start_features``; default the model's). Updates
    ``model``."""
    if model.churned is None:
        return
    dates = last_active_dates(cancellations(layout, as_of), naive_utc(window_start))
    if not dates:
        model.churned = replace(model.churned, before_window=0, before_window_lost_mrr=0.0)
        return
    starts = stream_starts(layout)
    levels = levels if levels is not None else model.currency
    local = build_local_features_at(layout, dates)
    # A currency no level prices (its customers had all left before the window's start too)
    # is left out, unplaced and uncounted, rather than read in its own units as the reporting
    # currency's.
    earlier = converted(local[priced(local, levels)], levels)
    paying = earlier[(earlier[CANCELED] == 0) & (earlier["mrr"] > 0)]
    readable = {
        customer
        for moment, customers in dates.items()
        if usage_history_shortfall(starts["usage"], starts["billing"], moment, USAGE_LOOKBACK_DAYS)
        is None
        for customer in customers
    }
    placed = paying[paying["customer_id"].astype(str).isin(readable)]
    segments = model.place(model.values(placed)).segment if len(placed) else np.array([], int)
    model.last_active_segment = {
        **dict(zip(placed["customer_id"].astype(str), map(int, segments), strict=True)),
        **(model.last_active_segment or {}),  # the window's placing, where a customer has both
    }
    model.churned = with_earlier_churn(
        model.churned, sum(map(len, dates.values())), float(paying["mrr"].sum()), segments
    )


def window_end_shortfall(layout: StoreLayout, as_of: datetime) -> str | None:
    """Why the stored billing events do not reach the window's end, ``as_of`` (they end more than
    a week before it), or None (``models.business.billing_end_shortfall``)."""
    # events up to now: those after the as-of show the export reaches it; one dated 9999 does
    # not show it reaches today
    ends = stream_ends(layout, before=now_utc())
    return billing_end_shortfall(ends["billing"], naive_utc(as_of))


def backtest_shortfall(layout: StoreLayout, window_start: datetime) -> str | None:
    """Why the stored events cannot place the backtest's cohort (usage that begins too late), or
    None (``models.business.usage_history_shortfall``)."""
    starts = stream_starts(layout)
    return usage_history_shortfall(  # the store's times are naive UTC
        starts["usage"], starts["billing"], naive_utc(window_start), USAGE_LOOKBACK_DAYS
    )


def gate_failures(
    metrics: dict[str, float], champion: dict[str, float] | None, cap: int
) -> list[str]:
    """Every gate a version fails: a first version (no champion) answers to the fidelity and
    freshness gates only (``models.gates.first_version_gates``), since there is nothing to
    compare it with and a service needs some champion; against a champion, the gates of
    ``models.gates`` without the comparisons only ``pipelines.lifecycle.compare`` can make
    (moves; the champion's silhouette at the setting; whom each was segmented on)."""
    if champion is None:
        return gates_failures(first_version_gates(metrics))
    return gates_failures(challenger_gates(metrics, cap, None))


@dataclass(frozen=True)
class Registration:
    run_id: str
    version: str


@dataclass(frozen=True)
class Promotion:
    promoted: bool
    champion_version: str | None
    gate_failures: list[str]


# What a run records for a segmenter setting left to the segmenter (``run_params``).
AUTO_PARAM = "auto"


def run_params(segmenter: CustomerSegmenter, model: SegmentModel, as_of: datetime) -> dict:
    """What the run records as parameters: the segmenter's settings and what it chose. A
    setting left unset is "auto", what the segmenter then does (``n_segments`` "auto": it chose
    how many, the metric of the same name says what): MLflow kept it as the text "None", which an
    ML engineer read as a missing value (a review, 2026-12-07)."""
    return {
        **{
            name: AUTO_PARAM if value is None else value
            for name, value in segmenter.get_params().items()
        },
        # the CLI's and the MLproject's name for ``random_state``: an ML engineer filtering runs
        # by `params.seed` found only those `mlflow run` had started
        "seed": segmenter.random_state,
        "as_of": as_of.isoformat(),
        # the instant in every run, however it was started: `mlflow run` keeps `as_of` as typed
        # ("2026-06-30"), `segments train` the instant, so a filter on `as_of` found only one
        # kind (an ML engineer's walkthrough, 2026-12-06)
        "as_of.resolved": as_of.isoformat(),
        "features": ",".join(model.feature_names),
        "chosen_candidate": segmenter.chosen_candidate_.name,
    }


def candidate_metrics(segmenter: CustomerSegmenter) -> dict[str, float]:
    """One metric per candidate and selection criterion it was scored on, and each column's
    weight in the distances and its reliability (``weight.mrr``, ``reliability.mrr``)."""
    preprocessor = segmenter.preprocessor_
    columns = {
        f"{kind}.{name}": float(value)
        for kind, values in (
            ("weight", preprocessor.weights_),
            ("reliability", preprocessor.reliability_),
        )
        for name, value in zip(preprocessor.feature_names_in_, values, strict=True)
        if np.isfinite(value)  # a column not judged logs no reliability, rather than 1.0
    }
    return columns | {
        candidate_metric(score.candidate, criterion): value
        for score in segmenter.candidate_scores_
        for criterion, value in score.measured().items()
    }


def signature_example(features: pd.DataFrame, names: Sequence[str]) -> pd.DataFrame:
    """The rows MLflow infers a version's input signature from, typed as the feature table
    ``segments features`` writes them: a whole-number registry feature is an integer column,
    every other a float. All floats, the registered model refused the project's own table
    (``mlflow.pyfunc.load_model(...).predict``: "Can not safely convert int64 to float64"; an ML
    engineer's walkthrough, 2026-12-06)."""
    example = features[list(names)].head(5)

    def whole(name: str) -> bool:
        definition = find(name)
        return definition is not None and definition.dtype == "int"

    return example.astype({name: "int64" if whole(name) else "float64" for name in names})


def register(
    registry: ModelRegistry,
    fitted: FittedSegmentation,
    segmenter: CustomerSegmenter,
    as_of: datetime,
    example: pd.DataFrame,
    into_run: str | None = None,
    identified: Identified | None = None,
) -> Registration:
    """One run (a new one, or ``into_run``): params, metrics, pictures and tables, the model as
    a new registered version (tagged with its lineage), then what names the version by its number:
    the lineage and the report.

    The model files say ``THIS_VERSION`` where a segment first appeared in this version; MLflow
    numbers the version only when it is created, and loading binds the number
    (``SegmentModel.bound_to``), so ``since`` is exact even when another version was registered
    (or deleted) in between."""
    model = fitted.model
    # named for what it is, not MLflow's random "treasured-conch-653" (an ML engineer's
    # walkthrough): "train as of 2026-06-30 (end of day, UTC)"
    name = f"train as of {as_of_text(rfc3339(as_of))}"
    with tempfile.TemporaryDirectory() as tmp, registry.run(into_run, name) as run_id:
        reports, model_dir = Path(tmp) / "reports", Path(tmp) / MODEL_DIR
        registry.log_values(
            run_id,
            run_params(segmenter, model, as_of),
            {**model.metrics, **candidate_metrics(segmenter)},
        )
        if model.reference is not None:
            registry.log_training_input(run_id, model.reference, f"features as of {rfc3339(as_of)}")
        write_reports(model, segmenter, fitted.drivers, fitted.Z, reports)
        registry.log_artifacts(run_id, reports)
        hashes = save_model(model, model_dir)
        tags = lineage_tags(model.lineage) if model.lineage else {}
        unfinished = {UNFINISHED_TAG: f"run {run_id} stopped before its lineage and report"}
        version = registry.register_version(
            run_id, model, model_dir, hashes, example, {**tags, **unfinished}
        )
        if model.lineage:  # ids are never reused, whether or not this version is ever promoted
            next_id = max(model.lineage.next_id, int(registry.model_tags().get(NEXT_ID_TAG, 0)))
            registry.set_model_tags({NEXT_ID_TAG: next_id})
        numbered = Path(tmp) / "numbered"
        bound = replace(fitted, model=model.bound_to(version))
        if identified is not None:
            write_lineage(replace(identified, model=bound.model), numbered / LINEAGE_FOLDER)
        write_business_picture(model, version, as_of, numbered)
        registry.log_artifacts(run_id, write_report(bound, version, numbered))
        registry.delete_version_tag(version, UNFINISHED_TAG)
    return Registration(run_id, version)


def write_business_picture(
    model: SegmentModel, version: str, as_of: datetime, folder: Path
) -> None:
    """``segment_business.png``, saying which version, as of when and of whom: passed on alone,
    it named none of them (a product manager's review)."""
    folder.mkdir(parents=True, exist_ok=True)
    active = sum(p.size for p in model.profiles)
    subtitle = (
        f"model version {version} · features as of {as_of_text(rfc3339(as_of))} · "
        f"{active:,} active customers (cancelled ones are beside the segments)"
    )
    business_panels(
        model.profiles, folder / "segment_business.png", reporting_currency(model), subtitle
    )


def write_report(fitted: FittedSegmentation, version: str, folder: Path) -> Path:
    """``report.html``: the segment cards and charts in plain words, one self-contained file
    (the same as ``segments report``), with the map of the training customers."""
    from models.charts import project_2d  # plotly and jinja2 load only where a report is made
    from models.report import render_report

    folder.mkdir(parents=True, exist_ok=True)
    labels = fitted.model.segmenter.labels_
    points = project_2d(fitted.Z, labels, fitted.customer_ids) if fitted.customer_ids else None
    html = render_report(fitted.model, version, map_points=points)
    (folder / "report.html").write_text(html, encoding="utf-8")
    return folder


def promote(
    registry: ModelRegistry, version: str, metrics: dict[str, float], cap: int
) -> Promotion:
    """Make ``version`` the challenger; the very first version also becomes champion when its
    explanations pass the fidelity gate. With a champion in place a new version never replaces it
    by itself: ``segments compare`` / ``promote`` / ``retrain`` decide (``pipelines.lifecycle``)."""
    with registry.promotion_lock():  # two first trainings must not both become champion
        champion = registry.alias_version(CHAMPION)
        registry.set_alias(CHALLENGER, version)
        if champion is not None:
            return Promotion(False, champion, [])
        failures = gate_failures(metrics, None, cap)
        if not failures:
            registry.make_champion(version, "first version")
    return Promotion(not failures, None if failures else version, failures)


def identified_version(
    layout: StoreLayout,
    registry: ModelRegistry,
    fitted: FittedSegmentation,
    segmenter: CustomerSegmenter,
    features: pd.DataFrame,
    as_of: datetime,
) -> tuple[FittedSegmentation, Identified]:
    """What every version registered carries beside its fit (training and discoveries alike):
    the as-of of its features, how far the data lags behind it (a promotion gate), and public
    ids traced against the champion with the lineage and the training sample that `segments
    compare` and `promote` place both versions' customers from (``pipelines.identity``)."""
    fitted.model.metrics["data_lag_days"] = data_lag_days(layout, as_of)
    fitted.model.features_as_of = rfc3339(as_of)
    before = predecessor(registry)
    identified = identify(
        fitted.model,
        membership(fitted.customer_ids, segmenter.labels_, segmenter.is_outlier_),
        THIS_VERSION,
        before,
        next_free_id(
            registry.model_tags(),
            before.model if before else None,
            registry.version_tag_values(NEXT_ID_TAG),
        ),
        active_customers(features),  # the customers segmented, for the drift reference
        fitted.held_phrases,
    )
    return replace(fitted, model=identified.model), identified


def train(
    layout: StoreLayout,
    as_of: datetime,
    segmenter: CustomerSegmenter | None = None,
    registry: ModelRegistry | None = None,
    features: pd.DataFrame | None = None,
    explainer: SegmentExplainer | None = None,
) -> TrainResult:
    """Features as of ``as_of`` (or ``features``, computed as of it) -> fitted model -> public ids
    and lineage against the champion -> registered version -> challenger (or first champion)."""
    started = time.perf_counter()
    segmenter = segmenter or CustomerSegmenter()
    registry = registry or ModelRegistry(registry_config(layout))
    features = build_features(layout, as_of) if features is None else features
    feature_names, left_out = segmented_features(layout, as_of)
    earlier = earlier_features(layout, as_of, levels_of(features))
    fitted = fit_model(features, segmenter, explainer, feature_names, earlier=earlier)
    # from reading the next free segment id to registering the version that takes ids from it
    with registry.identity_lock():
        fitted, identified = identified_version(
            layout, registry, fitted, segmenter, features, as_of
        )
        model = fitted.model
        window_start = as_of - timedelta(days=BACKTEST_WINDOW_DAYS)
        start = window_start_features(layout, window_start, model.currency)
        measure_business(
            model,
            start,
            features,
            backtest_shortfall(layout, window_start),
            window_end_shortfall(layout, as_of),
        )
        place_earlier_churn(model, layout, as_of, window_start, levels_of(start))
        example = signature_example(features, model.feature_names)
        registration = register(
            registry, fitted, segmenter, as_of, example, launcher_run(), identified
        )
    model = model.bound_to(registration.version)
    promotion = promote(registry, registration.version, model.metrics, segmenter.max_segments)
    return TrainResult(
        registration.run_id,
        registration.version,
        int(model.metrics["n_segments"]),
        model.metrics,
        promotion.promoted,
        promotion.champion_version,
        promotion.gate_failures,
        [segment_summary(p) for p in model.profiles],
        time.perf_counter() - started,
        public_churned(model),
        model.lineage.counts() if model.lineage else {},
        identified.same_id_share,
        model.currency.as_dict() if model.currency else None,
        model.lineage.previous if model.lineage else None,
        left_out,
        *_renamed_and_returned(model),
        reporting_currency(model),
    )


def _renamed_and_returned(model: SegmentModel) -> tuple[int, int]:
    transitions = model.lineage.transitions if model.lineage else ()
    return (
        sum(t.transition == "survived" and t.renamed_from is not None for t in transitions),
        sum(t.returned_from is not None for t in transitions),
    )


def public_churned(model: SegmentModel) -> dict[str, object] | None:
    """The churned customers, counted by the public id of the segment they were in."""
    if model.churned is None:
        return None
    document = model.churned.as_dict()
    ids = model.segment_ids
    document["last_segment"] = {
        ids[int(position)]: count for position, count in document["last_segment"].items()
    }
    return document


def segment_summary(profile: SegmentProfile) -> dict[str, object]:
    return {
        "id": profile.segment_id,
        "since": profile.since,
        "name": profile.name,
        "size": profile.size,
        "mrr_share": profile.mrr_share,
        "ltv_share": profile.ltv_share,
        "churn_rate": profile.churn_rate,
        "backtest": profile.backtest,
    }


def write_reports(
    model: SegmentModel,
    segmenter: CustomerSegmenter,
    drivers: dict[int, dict[str, float]],
    Z: np.ndarray,
    folder: Path,
) -> None:
    """The run's tables and pictures, written into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    names = model.segment_names
    (folder / "profiles.json").write_text(
        json.dumps([p.as_dict() for p in model.profiles], indent=2)
    )
    (folder / "segment_drivers.json").write_text(
        json.dumps({names[s]: values for s, values in drivers.items()}, indent=2)
    )
    table = pd.DataFrame([s.as_dict() for s in segmenter.candidate_scores_])
    table.to_csv(folder / "candidates.csv", index=False)
