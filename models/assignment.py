"""The assignment contract (``docs/contracts/api.md``): "this customer is in this segment, and why".

One definition for every place that emits it: the Python API (``SegmentModel.assignments``), the
batch output (``segments assign --explain`` writing JSON Lines) and the HTTP API (``POST /v1/score``).
The keys of the spec are kept exactly; the fields marked "extension" are this project's additions.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from feature_store.timeutil import rfc3339

Direction = Literal["towards", "away"]


def _open_to_extensions(schema: dict[str, Any]) -> None:
    # The contract may add keys (never rename them): a published "additionalProperties: false"
    # would make a strictly generated client refuse the next extension. The model itself still
    # refuses unknown fields, so this code cannot emit one the schema does not describe.
    schema.pop("additionalProperties", None)


class _Contract(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_extra=_open_to_extensions)


class SegmentRef(_Contract):
    id: int = Field(
        ge=0,
        description="Public segment id: kept across model versions while the segment is the same "
        "group of customers, never reused for another (docs/lifecycle.md).",
    )
    name: str = Field(description="Readable name built from what sets the segment apart.")
    since: str | None = Field(
        default=None,
        description="Extension: the model version in which this segment id first appeared.",
    )


class RunnerUp(SegmentRef):
    margin: float = Field(
        ge=0, le=1, description="Confidence of the assigned segment minus the runner-up's."
    )


class Contribution(_Contract):
    feature: str = Field(description="Feature name, as in the feature registry.")
    value: float = Field(description="The customer's value of the feature.")
    contribution: float = Field(
        description="SHAP value: how much this feature moved the explained output (the assigned "
        "segment's log-odds over the runner-up's, or the segment's own log-odds; see `method`)."
    )
    typical_range: list[float] = Field(
        min_length=2,
        max_length=2,
        description="25th and 75th percentile within the segment (values members hold: the "
        "nearest at or below the 25th, at or above the 75th).",
    )
    text: str = Field(description="A sentence a salesperson can read.")
    direction: Direction = Field(
        description="Extension: whether the feature pushes towards the segment (rather than the "
        "runner-up, in the contrast view) or away from it."
    )
    description: str = Field(description="Extension: the feature registry's description.")
    percentile: float | None = Field(
        default=None,
        ge=0,
        le=100,
        description="Extension: the value's percentile rank among the customers the model was "
        "trained on (ties count half); null for a model trained without it.",
    )
    standing: str | None = Field(
        default=None,
        description="Extension: the value against all customers, in words ('higher than 93% of "
        "customers'). A contribution compares the customer with everyone, the typical range "
        "describes the segment alone: show both.",
    )
    versus_typical_range: list[float] | None = Field(
        default=None,
        min_length=2,
        max_length=2,
        description="Extension: in the contrast view, the 25th and 75th percentile within the "
        "segment the contrast is against (`explanation.versus`), so a reader sees which of the two "
        "the value is nearer; `text` says it after the segment's own range. Null in the "
        "per-segment view.",
    )
    moves_with: list[str] = Field(
        default_factory=list,
        description="Extension: features that rank the training customers almost exactly as "
        "this one does (Spearman rank correlation at least 0.9), most alike first. The model "
        "cannot tell them apart, so the contribution is theirs too; `text` names the two most "
        "alike with the customer's values ('and N more' beyond). Empty when there are none or "
        "for older models.",
    )


Method = Literal["tree_shap_contrast", "exact_contrast", "tree_shap_surrogate"]


class Explanation(_Contract):
    base_value: float = Field(
        description="The explained output for an average customer: the surrogate's log-odds of "
        "the segment over the runner-up (contrast) or of the segment alone."
    )
    output_value: float = Field(
        description="The explained output for this customer; positive in the contrast view when "
        "the surrogate prefers the assigned segment to the runner-up."
    )
    contributions: list[Contribution] = Field(
        description="The top_k features by absolute contribution, largest first."
    )
    method: Method = Field(
        default="tree_shap_surrogate",
        description="Extension: `tree_shap_contrast` explains why this segment rather than the "
        "runner-up (the default when there is one); `exact_contrast` the same, from the "
        "segmentation's own log-odds, where the surrogate preferred the runner-up; "
        "`tree_shap_surrogate` explains the segment's own log-odds (docs/explanations.md).",
    )
    versus: SegmentRef | None = Field(
        default=None,
        description="Extension: the segment the contrast is against (the runner-up); null for "
        "the per-segment view.",
    )
    supports_segment: bool | None = Field(
        default=None,
        description="Extension: in the contrast view, whether the explained output favours the "
        "assigned segment over the runner-up (`output_value` above 0). False only where the "
        "surrogate prefers the runner-up and the model has no exact contrast of its own: the "
        "reasons then lean the other way and the summary says so. In the per-segment view "
        "(since 2026-12-08; it was null), whether `output_value` is above 0: the surrogate gives "
        "the segment better than even odds; false, the summary says the reasons count against "
        "it (a cancelled customer's nearest segment, say).",
    )


class ModelRef(_Contract):
    name: str
    version: str


class Assignment(_Contract):
    customer_id: str | None = Field(description="The customer, when the request named one.")
    segment: SegmentRef
    confidence: float = Field(ge=0, le=1, description="Membership probability of the segment.")
    is_outlier: bool = Field(
        description="The customer is unlike every segment; `segment` is then the nearest one."
    )
    is_canceled: bool | None = Field(
        default=None,
        description="Extension: the customer's subscription is cancelled as of the features' "
        "date, so it is in no segment: `segment` is the nearest one by a vector with no MRR and "
        "no seats, not where the customer was when last active (`GET /v1/segments`' `churned` "
        "counts that). Null when the model does not read cancellation (older models).",
    )
    last_active_segment: SegmentRef | None = Field(
        default=None,
        description="Extension: for a cancelled customer, the segment it was in when last "
        "active, placed by this model from its features then (the backtest's: at the window's "
        "start, or at the last 30-day step before it cancelled); null for a live customer, a "
        "customer who cancelled after the model was trained, or one the backtest could not place.",
    )
    typicality: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="Extension: how typical a member of its segment the customer is, as the share "
        "of the training customers that fit their own segment less well: 1 at a segment's centre, "
        "at most 0.01 for an outlier, 0 beyond every training customer. `confidence` says which "
        "segment and is near 1 for almost everyone when segments are well apart; this says how "
        "central a member. Null for models trained before it was recorded.",
    )
    runner_up: RunnerUp | None = Field(description="Second most likely segment; null with one.")
    explanation: Explanation | None = Field(description="Null when not asked for.")
    features: dict[str, float] = Field(description="The feature values the assignment used.")
    model: ModelRef
    summary: str = Field(description="Extension: the assignment in one sentence.")
    features_as_of: str | None = Field(
        default=None,
        description="Extension: the instant (RFC 3339, UTC) as of which the features were computed, "
        "so a stale vector can be told from a fresh one; null when the caller sent the vector.",
    )


def as_of_stamp(as_of: datetime) -> str:
    """``features_as_of`` as the contract writes it: RFC 3339, UTC, ``Z``, whole seconds unless the
    as-of has a fraction (a caller's ``as_of``), which is kept so that the stamp stays exact."""
    return rfc3339(as_of)


__all__ = [
    "Assignment",
    "Contribution",
    "Direction",
    "Explanation",
    "Method",
    "ModelRef",
    "RunnerUp",
    "SegmentRef",
    "as_of_stamp",
]
