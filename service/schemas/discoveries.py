"""What ``/v1/discoveries`` accepts (``DiscoveryBody``) and examples of what it answers."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from feature_store.discovery import MAX_SEGMENTS, MIN_SEGMENTS
from feature_store.timeutil import MAX_HISTORY_DAYS
from service.schemas.types import whole_number

MAX_FILTERS = 20
MAX_FILTER_VALUES = 100
# Whole numbers: 8.0 is 8 (JSON Schema counts it an integer); "8" and true are refused.
HistoryDays = whole_number(ge=1, le=MAX_HISTORY_DAYS)
SegmentCount = whole_number(ge=MIN_SEGMENTS, le=MAX_SEGMENTS)


class DiscoveryBody(BaseModel):
    """What to discover segments of."""

    # strict: "3" or true where a number belongs is refused, as the API documents, not coerced;
    # an infinite MRR bound is refused rather than dropped (JSON has no spelling for it).
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    as_of: str = Field(
        min_length=4,
        max_length=40,
        description="Date (whole day included) or ISO instant the features are computed as of.",
        examples=["2026-06-30"],
    )
    history_days: HistoryDays | None = Field(
        default=None,
        description="Only customers with an event in this many days before `as_of`.",
    )
    filters: dict[
        Annotated[str, Field(min_length=1, max_length=200)],
        # An empty list would select nobody (a 422 `empty_selection` after the features were
        # built): refused up front; leaving the column out accepts every value.
        Annotated[
            list[Annotated[str, Field(max_length=200)]],
            Field(min_length=1, max_length=MAX_FILTER_VALUES),
        ],
    ] = Field(
        default_factory=dict,
        max_length=MAX_FILTERS,
        description="Column -> accepted values (at least one; leave a column out to accept every "
        "value): `plan`, `interval` (of the latest subscription; with "
        "several, of the live one with the most MRR) "
        "or any column of the customer attribute table, e.g. `country`.",
        examples=[{"plan": ["pro"], "country": ["DE", "AT"]}],
    )
    mrr_min: float | None = Field(
        default=None,
        ge=0,
        description="Lowest MRR included (in the reporting currency when customers pay in several).",
    )
    mrr_max: float | None = Field(
        default=None,
        ge=0,
        description="Highest MRR included (in the reporting currency when customers pay in several).",
    )
    families: list[Literal["value", "behavioural"]] = Field(
        default=["value", "behavioural"],
        min_length=1,
        json_schema_extra={"uniqueItems": True},
        description="Feature families segmented on, each once.",
    )
    max_segments: SegmentCount = 12
    segments: SegmentCount | None = Field(
        default=None,
        description="Exactly this many segments, when you know it (the cap rises to it); "
        "null: the number is discovered, at most `max_segments`.",
    )

    @field_validator("families")
    @classmethod
    def _each_family_once(cls, families: list[str]) -> list[str]:
        if len(set(families)) != len(families):  # kept as sent, the job's request said it twice
            raise ValueError("each family once")
        return families

    def values(self) -> dict[str, Any]:
        return self.model_dump()


REQUEST_EXAMPLES = {
    "selection": {
        "summary": "Pro customers in Germany or Austria paying 100 or more",
        "value": {
            "as_of": "2026-06-30",
            "filters": {"plan": ["pro"], "country": ["DE", "AT"]},
            "mrr_min": 100,
            "families": ["value", "behavioural"],
            "max_segments": 8,
        },
    },
    "everyone": {"summary": "Every active customer", "value": {"as_of": "2026-06-30"}},
}
_REQUEST = {
    "as_of": "2026-07-01T00:00:00Z",
    "filters": {"plan": ["pro"]},
    "mrr_min": 100.0,
    "mrr_max": None,
    "history_days": None,
    "families": ["value", "behavioural"],
    "max_segments": 8,
    "segments": None,
}
_STEPS = ("features", "candidates", "explainer", "registration")
QUEUED = {
    "id": "3f9c2a7d51e04b8a",
    "status": "queued",
    "request": _REQUEST,
    "created_at": "2026-07-02T09:00:00+00:00",
    "started_at": None,
    "finished_at": None,
    "step": None,
    "result": None,
    "error": None,
    "progress": [{"step": step, "state": "pending"} for step in _STEPS],
    "links": {"self": "/v1/discoveries/3f9c2a7d51e04b8a"},
}
SUCCEEDED = {
    **QUEUED,
    "status": "succeeded",
    "started_at": "2026-07-02T09:00:01+00:00",
    "finished_at": "2026-07-02T09:04:12+00:00",
    "step": "registration",
    "progress": [{"step": step, "state": "done"} for step in _STEPS],
    "result": {
        "run_id": "8c1d0e5f2a3b4c6d7e8f9a0b1c2d3e4f",
        "model_version": "7",
        "alias": "challenger",
        "champion_version": "5",
        "customers": 412,
        "n_segments": 3,
        "metrics": {"silhouette": 0.41, "stability": 0.93, "surrogate_fidelity": 0.985},
        "segments": [
            {
                "id": 0,
                "name": "Large API-heavy accounts",
                "size": 190,
                "mrr_share": 0.61,
                "churn_rate": 0.02,
                "backtest": None,
                "sets_apart": [
                    "Share of activity through the API: median 82% vs 6% overall",
                    "Seats: median 64 seats vs 6 overall",
                ],
            },
        ],
        "churned": {
            "count": 9,
            "lost_mrr": 1830.0,
            "last_segment": {"0": 2, "8": 7},
            "last_segment_unknown": 0,
            "backtest_unmeasured": None,
            "before_window": None,
            "before_window_lost_mrr": None,
            "selection": "plan in pro; MRR 100 to any",
        },
        "selection": "plan in pro; MRR 100 to any",
        "seconds": 251.3,
        # features not segmented on, by the kind of event the data has none of before the date
        "left_out": {},
        "money_currency": "EUR",
    },
}
