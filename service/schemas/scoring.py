"""Requests and responses of ``POST /v1/score`` and ``POST /v1/score/batch``."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from feature_store.coverage import TrainingWindowError, check_not_future
from feature_store.errors import InvalidAsOfError
from feature_store.timeutil import parse_as_of
from models.assignment import Assignment
from models.bundle import ExplanationView
from service.problems import Problem
from service.schemas.events import EXAMPLE_EVENTS, CustomerEvents, NamingId
from service.schemas.features import EXAMPLE_VECTOR, FeatureValues
from service.schemas.types import whole_number

MAX_TOP_K = 100
TopK = whole_number(ge=1, le=MAX_TOP_K)


def _without_spaces_around(value: object) -> object:
    """A customer's id as ingestion stores it: without the spaces around it ("cus_1 " is
    customer cus_1, ``feature_store.schema.TRIMMED_COLUMNS``). Scoring looked up the id as sent,
    so a CRM sending the padded id it had ingested with got 404 (a CRM integrator's review). An id
    of spaces alone stays as sent, refused as white space only."""
    if isinstance(value, str) and value.strip(" "):
        return value.strip(" ")
    return value


# as an event's: 1-255 characters, not white space only, the spaces around it not part of it
CustomerId = Annotated[NamingId, BeforeValidator(_without_spaces_around)]
# The rules of ``CustomerSpec._one_source`` in JSON Schema, so that generated clients and API
# fuzzers know them: at least one of the three, not features and events together, as_of only
# with events.
ONE_SOURCE_SCHEMA: dict[str, Any] = {
    "anyOf": [{"required": ["customer_id"]}, {"required": ["features"]}, {"required": ["events"]}],
    "not": {
        "anyOf": [
            {"required": ["features", "events"]},
            {"required": ["as_of"], "not": {"required": ["events"]}},
        ]
    },
}


OMITTABLE = ("customer_id", "features", "events", "as_of")


def _customer_spec_schema(schema: dict[str, Any]) -> None:
    """Optional fields are omitted, never null (a null is refused), and ONE_SOURCE_SCHEMA holds."""
    for name in OMITTABLE:
        field = schema["properties"][name]
        field.pop("default", None)
        choices = field.pop("anyOf", [])
        field.update(next((c for c in choices if c.get("type") != "null"), {}))
    schema.update(ONE_SOURCE_SCHEMA)


class CustomerSpec(BaseModel):
    """Who to score: ``customer_id`` alone (the online store), or ``features``, or ``events``."""

    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_extra=_customer_spec_schema)

    customer_id: CustomerId | None = Field(
        default=None,
        description="Alone: read the customer's vector from the online store. With `features` "
        "or `events`: the id to report.",
    )
    features: FeatureValues | None = Field(
        default=None,
        description="A full feature vector: every feature of the loaded model; other registry "
        "features may come along (checked, not used).",
    )
    events: CustomerEvents | None = Field(
        default=None,
        description="The customer's raw canonical events; features are computed as of `as_of`.",
    )
    as_of: (
        Annotated[
            str,
            Field(
                max_length=40,
                json_schema_extra={"anyOf": [{"format": "date"}, {"format": "date-time"}]},
            ),
        ]
        | None
    ) = Field(
        default=None,
        description="With `events` only: a date (the whole day counts) or an ISO 8601 instant. "
        "Default: now. At most the end of today, UTC (a later one is a 422, as the CLI refuses "
        "it).",
        examples=["2026-06-30"],
    )

    @field_validator(*OMITTABLE, mode="before")
    @classmethod
    def _omitted_rather_than_null(cls, value: object) -> object:
        if value is None:
            raise ValueError("omit the field rather than sending null")
        return value

    @field_validator("as_of")
    @classmethod
    def _parsable_as_of(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                # the CLI's rule: tomorrow's events do not exist yet. A mistyped year (2062)
                # was scored with 36 years of tenure, placed "unusual" with full confidence.
                check_not_future(parse_as_of(value))
            except (InvalidAsOfError, TrainingWindowError) as error:
                raise ValueError(str(error)) from None
            except OverflowError:  # e.g. 0001-01-01T00:00:00+14:00 is before year 1 in UTC
                raise ValueError(f"as-of {value!r} is out of range") from None
        return value

    @model_validator(mode="after")
    def _one_source(self) -> CustomerSpec:
        if self.features is not None and self.events is not None:
            raise ValueError("give either features or events, not both")
        if self.features is None and self.events is None and self.customer_id is None:
            raise ValueError("give customer_id, features or events")
        if self.as_of is not None and self.events is None:
            raise ValueError("as_of applies to events only")
        return self


_CUSTOMER_EXAMPLES: dict[str, dict[str, Any]] = {
    "by_customer_id": {
        "summary": "A customer of the online store",
        "value": {"customer_id": "cus_000002", "explain": True, "top_k": 5},
    },
    "by_features": {
        "summary": "A feature vector",
        "value": {"customer_id": "lead-42", "features": EXAMPLE_VECTOR, "top_k": 3},
    },
    "by_events": {
        "summary": "Raw events of a customer the store has never seen",
        "value": {"customer_id": "new-lead-9", "events": EXAMPLE_EVENTS, "as_of": "2026-06-30"},
    },
}


def _score_request_schema(schema: dict[str, Any]) -> None:
    _customer_spec_schema(schema)
    schema["examples"] = [example["value"] for example in _CUSTOMER_EXAMPLES.values()]


_EXPLAIN_VIEW = (
    "Extension: `contrast` (the default) explains why this segment rather than the runner-up; "
    "`segment` explains the segment's own log-odds (how far the customer fits it at all)."
)


class ScoreRequest(CustomerSpec):
    model_config = ConfigDict(json_schema_extra=_score_request_schema)

    explain: bool = Field(default=True, strict=True, description="Add the SHAP explanation.")
    top_k: TopK = Field(default=5, description="How many contributions the explanation lists.")
    explain_view: ExplanationView = Field(default="contrast", description=_EXPLAIN_VIEW)


class BatchItem(CustomerSpec):
    explain: bool | None = Field(default=None, strict=True, description="Default: the batch's.")
    top_k: TopK | None = Field(default=None, description="Default: the batch's.")
    explain_view: ExplanationView | None = Field(default=None, description="Default: the batch's.")


class BatchScoreRequest(BaseModel):
    """Each item is validated on its own, so one bad item fails alone (its ``status`` is 422)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    items: list[dict[str, Any]] = Field(
        min_length=1,
        description="Up to SEGMENTS_MAX_BATCH_ITEMS (default 1,000) objects, each shaped like a "
        "score request: `customer_id`, `features` or `events` (with `as_of`), and optionally "
        "`explain`, `top_k` and `explain_view`, which override the batch's. An item that is not "
        "valid gets its own 422 in `results`; the others are scored.",
    )
    explain: bool = Field(default=True, strict=True)
    top_k: TopK = 5
    explain_view: ExplanationView = Field(default="contrast", description=_EXPLAIN_VIEW)


class BatchSuccess(BaseModel):
    status: Literal[200]
    assignment: Assignment


class BatchFailure(BaseModel):
    status: int = Field(ge=400, le=599)
    problem: Problem


class BatchScoreResponse(BaseModel):
    results: list[BatchSuccess | BatchFailure] = Field(
        description="One result per item, in the order of the request."
    )


SCORE_EXAMPLES = _CUSTOMER_EXAMPLES
BATCH_EXAMPLES: dict[str, dict[str, Any]] = {
    "mixed": {
        "summary": "Three ways of naming customers in one batch",
        "value": {
            "items": [e["value"] for e in _CUSTOMER_EXAMPLES.values()],
            "explain": False,
        },
    }
}
