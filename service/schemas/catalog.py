"""What ``GET /v1/segments``, ``GET /v1/model`` and the health routes answer."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from models.business import LAST_ACTIVE_STEP_DAYS


class _Public(BaseModel):
    model_config = ConfigDict(frozen=True)


class DistinctionPublic(_Public):
    feature: str
    effect: float = Field(description="Segment mean minus the rest, in pooled standard deviations.")
    segment_mean: float = Field(description="On the model's preprocessed scale (see `text`).")
    rest_mean: float = Field(description="On the model's preprocessed scale (see `text`).")
    label: str | None = Field(
        default=None, description="What the feature measures, in words (the feature registry's)."
    )
    text: str | None = Field(
        default=None,
        description="The difference in the feature's unit against every customer: "
        "'median 64 seats vs 6 overall'; where the medians read the same, the share with any "
        "('4% have any vs 13% overall') or the mean.",
    )
    segment_median: float | None = Field(default=None, description="In the feature's unit.")
    overall_median: float | None = Field(
        default=None, description="Over every training customer, in the feature's unit."
    )
    direction: Literal["more", "less", "same"] | None = Field(
        default=None, description="The segment against the average customer."
    )


class DriverPublic(_Public):
    feature: str
    mean_abs_contribution: float = Field(description="Mean |SHAP| over the segment's customers.")


class TransitionPublic(_Public):
    """What happened to a segment when one model version replaced another (``docs/lifecycle.md``)."""

    version: str = Field(description="The version the transition led to.")
    previous: str | None = Field(description="The version it was traced against; null: first.")
    id: int = Field(ge=0, description="Public id of the segment the transition is about.")
    transition: Literal["survived", "split", "merged", "new", "retired"]
    name: str
    since: str = Field(description="Version in which this id first appeared.")
    parents: list[int] = Field(description="Ids it came from (split, merged, survived).")
    children: list[int] = Field(description="Ids a retired segment's customers went to.")
    jaccard: float | None = Field(description="Member overlap with its predecessor (survived).")
    customers: int = Field(
        ge=0,
        description="Training customers in the segment when the transition was traced, outliers "
        "left out (the segment's `size` counts them).",
    )
    renamed_from: str | None = Field(
        default=None,
        description="A survived segment, or one whose id came back, whose name changed: the "
        "name it had.",
    )
    returned_from: str | None = Field(
        default=None,
        description="A segment whose id a version served before a roll-back went past it: that "
        "version (the same customers again, so the id a CRM holds keeps its meaning).",
    )
    text: str = Field(
        default="",
        description="The transition in one sentence naming the versions and ids, e.g. "
        "'version 3 retired segment 2: its customers went to 7 and 8'.",
    )
    relation: Literal["itself", "parent", "child"] | None = Field(
        default=None,
        description="In a segment's `history` only: whether the transition is about the "
        "segment itself, a `parent` (a segment whose customers it took: the parent's "
        "retirement names it among its children) or a `child` (a segment made of its "
        "customers). Null in the model's lineage.",
    )


class RatePublic(_Public):
    count: int = Field(ge=0)
    total: int = Field(ge=0)
    rate: float = Field(ge=0, le=1)
    low: float = Field(ge=0, le=1, description="90% Wilson interval, lower end.")
    high: float = Field(ge=0, le=1, description="90% Wilson interval, upper end.")


class MembersThenPublic(_Public):
    """Where a segment's customers of today were at the backtest window's start."""

    by_segment: dict[int, int] = Field(
        description="Customers placed in each segment (public id) then, largest first."
    )
    not_paying_then: int = Field(ge=0, description="Customers not paying then.")


class BacktestPublic(_Public):
    """What happened over the window to the customers the segment held at its start."""

    cohort: int = Field(
        ge=0,
        description="Customers the model placed in the segment at the window's start: paying "
        "subscribers, or for `cohort_kind` `buyers` customers who had paid an invoice by then.",
    )
    window_days: int
    churn: RatePublic | None = Field(description="Null when the cohort is too small to say.")
    contraction: RatePublic | None
    expansion: RatePublic | None
    net_mrr_retention: float | None = Field(description="MRR at the end over MRR at the start.")
    net_mrr_retention_interval: list[float] | None = Field(
        description="90% bootstrap interval over customers."
    )
    members_then: MembersThenPublic | None = Field(
        default=None,
        description="Extension: where the segment's customers of today were at the window's "
        "start. The cohort above is who the segment would have held then; a segment of recent "
        "changes (downgrades, failed payments) held few, and its customers' losses count under "
        "the segment they were in, which this names. Null for models trained before it.",
    )
    cohort_kind: Literal["paying", "buyers"] = Field(
        default="paying",
        description="Extension (since 2026-12-07): whom `cohort` counts. `paying`: subscribers "
        "paying at the window's start. `buyers`: in a business of invoices alone (no "
        "subscription anywhere), customers who had paid an invoice before the window's start; "
        "churn, contraction, expansion and net MRR retention are then null and `repurchase` "
        "holds the figure.",
    )
    repurchase: RatePublic | None = Field(
        default=None,
        description="Extension (since 2026-12-07): for `buyers`, the share who paid again "
        "within the window (lifetime revenue grown by more than half a cent), with its 90% "
        "interval; null for `paying` cohorts and when the cohort is too small to say.",
    )


class ChurnedPublic(_Public):
    """Customers cancelled as of training: reported beside the segments, never a segment."""

    count: int = Field(
        ge=0,
        description="Customers cancelled as of training; for a discovery, those its filters "
        "selected at the window's start who cancelled since.",
    )
    lost_mrr: float = Field(
        description="MRR at the window's start of the customers who cancelled during the window."
    )
    last_segment: dict[str, int] = Field(
        description="Cancelled customers by the segment they were in when last active: those "
        "who cancelled during the window at its start, those who cancelled before it at the "
        f"last {LAST_ACTIVE_STEP_DAYS}-day step before they left (where they were paying then)."
    )
    last_segment_unknown: int = Field(
        ge=0, description="Cancelled customers no segment is known for (never placed)."
    )
    before_window: int | None = Field(
        default=None,
        ge=0,
        description="Of `count`, those who cancelled before the window; null when not measured "
        "(models trained before 2026-12-04, discoveries): they are then in "
        "`last_segment_unknown`.",
    )
    before_window_lost_mrr: float | None = Field(
        default=None,
        description="The MRR those who cancelled before the window paid when last active; null "
        "when not measured.",
    )
    selection: str | None = Field(
        default=None,
        description="A discovery's filters; then `count` is of the customers they selected at "
        "the window's start who cancelled since. Null for a trained version: everyone.",
    )
    window_days: int
    backtest_unmeasured: str | None = Field(
        default=None,
        description="Why no segment got a backtested churn rate (every churn_rate is then null): "
        "for example the usage events begin less than 90 days before the window's start, and "
        "more than a week after billing, so the customers of then cannot be placed, or no "
        "customer holds a subscription (a business of invoices alone: its segments' "
        "`backtest.repurchase` then holds the share who bought again); null when measured.",
    )


class SegmentPublic(_Public):
    """A segment's profile in business terms (``docs/segmentation.md``)."""

    id: int = Field(
        ge=0,
        description="Public id: kept across model versions while the segment is the same group "
        "of customers, never reused for another (docs/lifecycle.md).",
    )
    since: str | None = Field(
        default=None, description="The model version in which this id first appeared."
    )
    name: str
    size: int = Field(ge=0, description="Training customers in the segment.")
    share: float
    mrr_total: float
    mrr_mean: float
    mrr_share: float = Field(description="Share of all MRR.")
    ltv_share: float | None = Field(
        None,
        description="Share of all customers' lifetime value (revenue to date); what the pages show "
        "in place of `mrr_share` when no segment holds MRR (a business of invoices alone). Null "
        "for models profiled before it.",
    )
    ltv_median: float
    tenure_median_days: float
    churn_rate: float | None = Field(
        description="Backtested: of the customers paying 90 days before training whom the model "
        "places in this segment by their features then (not today's members), the share who "
        "cancelled by then; null when not measured (too few such customers, or too little "
        "history: `churned.backtest_unmeasured` says why)."
    )
    backtest: BacktestPublic | None = Field(
        default=None, description="Churn, contraction, expansion and net MRR retention."
    )
    mrr_lost_90d: float = Field(
        description="MRR today's members lost to downgrades over the last 90 days (their MRR 90 "
        "days ago minus now, where it fell). Churn is not in it: cancelled customers are not "
        "members; the backtest's contraction and net MRR retention count both."
    )
    outlier_share: float
    distinguishing: list[DistinctionPublic]
    drivers: list[DriverPublic] = Field(default_factory=list)
    typical_ranges: dict[str, list[float]] = Field(description="25th-75th percentile per feature.")
    medians: dict[str, float]
    example_customers: list[str]
    history: list[TransitionPublic] = Field(
        default_factory=list,
        description="Every recorded transition involving this id, oldest first (as itself, as "
        "a parent of a split or merge, or as where a retired segment's customers went).",
    )


class LineagePublic(_Public):
    """The last transition: what the served version did to every segment of the one before."""

    version: str
    previous: str | None
    next_id: int = Field(
        description="The first public id no version had used when this version was registered "
        "(a version served again after a roll-back keeps the figure of its registration; later "
        "versions may have used ids above it)."
    )
    overlap_customers: int = Field(description="Customers both versions were trained on.")
    transitions: list[TransitionPublic]
    migration: dict[str, dict[str, int]] = Field(
        description="Training customers moving from each previous id to each new id."
    )


class RepurchasePublic(_Public):
    """A business of invoices alone: the buyers' backtest across all segments, with its dates."""

    buyers: RatePublic = Field(
        description="Of the customers who had paid before the window's start (`total`), those "
        "who paid again within it (`count`), with the share and its 90% interval: the figure "
        "each segment's `backtest.repurchase` is read against."
    )
    window_start: str = Field(
        description="First day of the window (UTC): customers had bought by the day before."
    )
    window_end: str = Field(description="Last day of the window (UTC), the features' date.")
    window_days: int


class SegmentList(_Public):
    model: ModelRefPublic
    segments: list[SegmentPublic]
    churned: ChurnedPublic | None = Field(
        default=None, description="Cancelled customers, beside the segments; null for old models."
    )
    repurchase: RepurchasePublic | None = Field(
        default=None,
        description="Extension (since 2026-12-07): for a business of invoices alone, who "
        "bought again across all segments and the window's dates (what the pages set beside each "
        "segment's figure); null for a subscription business, a model trained before it, or one "
        "whose backtest measured nobody.",
    )


class ModelRefPublic(_Public):
    name: str
    version: str


class FeaturePublic(_Public):
    name: str
    family: str
    dtype: str
    unit: str
    description: str
    in_spec: bool = Field(description="Part of the public feature contract (features.md).")
    signed: bool = Field(default=False, description="May be negative.")
    minimum: float
    maximum: float


class CurrencyPublic(_Public):
    reporting: str = Field(description="The currency money features and MRR figures are in.")
    levels: dict[str, float] = Field(
        description="Units of each currency per unit of `reporting`: the price level measured from "
        "the median price per seat, or given (`given`). A customer's money was divided by its "
        "currency's level."
    )
    unpriced: list[str] = Field(
        description="Currencies with too few paying customers to measure: money not converted."
    )
    customers: dict[str, int] = Field(description="Training-table customers per currency.")
    given: list[str] = Field(
        default_factory=list,
        description="Currencies whose level the user gave (`segments currency set`), not measured.",
    )


class ModelPublic(_Public):
    name: str
    version: str
    alias: str
    trained_at: str | None = Field(description="When the model was trained (ISO 8601, UTC).")
    features_as_of: str | None = Field(
        default=None,
        description="The instant its training features were computed as of (RFC 3339, UTC): the "
        "date its segments describe (`--as-of 2026-06-30` is the end of that day); null for "
        "models trained before 2026-12-04.",
    )
    loaded_at: str = Field(description="When this process loaded it (ISO 8601, UTC).")
    source: Literal["registry", "cache"] = Field(
        description="`cache` when loaded from the verified local copy (registry unreachable)."
    )
    n_segments: int
    metrics: dict[str, float] = Field(
        description="Training metrics, including `surrogate_fidelity` of the explanations."
    )
    features: list[FeaturePublic] = Field(
        description="The feature registry entries the model uses."
    )
    currency: CurrencyPublic | None = Field(
        None,
        description="How money in several currencies was made one; null when the training "
        "customers paid in one. Vectors sent as `features` give money in `reporting`.",
    )


class Liveness(_Public):
    status: Literal["ok"] = "ok"


class Readiness(_Public):
    status: Literal["ready"] = "ready"
    model: ModelRefPublic


SegmentList.model_rebuild()
