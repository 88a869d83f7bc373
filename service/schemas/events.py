"""Canonical events in a request (``docs/contracts/events.md``): one customer's billing and usage.

The schema types each column and refuses unknown ones; the contract's row rules (a subscription
event needs a plan, seats and MRR; an amount must be positive; a timestamp must parse) are applied
by ``feature_store.memory.validate_events``, the same code file ingestion uses, whose reason codes
come back as 422 field errors.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from feature_store.readers import json_value_text
from feature_store.schema import (
    MAX_ID_LENGTH,
    MAX_SEATS,
    SPACE_SEPARATORS,
    ascii_lower,
    ascii_upper,
    column_names,
    currency_codes,
    decimal_value,
    is_blank,
    names_nothing,
)
from feature_store.timeutil import MAX_YEAR, MIN_YEAR, parse_instant
from feature_store.validation import NAMED_EVENTS, OPTIONAL_IDS, TRIMMED_COLUMNS
from service.schemas.types import Money, PositiveMoney, whole_number


def _not_blank(value: str) -> str:
    """Ingestion quarantines an id or a name of white space only as missing; scoring took it (a
    CRM walkthrough, 2026-12-06: an `event_id` of "  " was scored)."""
    if is_blank(value):
        raise ValueError("white space only: an id must name something")
    return value


def _not_nothing(value: str) -> str:
    """An event's or a customer's id that is a tool's word for no value ("nan", "NULL", "None",
    "N/A": ``schema.PLACEHOLDER_IDS``) is missing, as ingestion reads it, since 2026-12-07. Not a
    name (an event's name "null" is stored as written: a hostile client's review)."""
    if names_nothing(value):
        raise ValueError(
            f"{value.strip()!r} is what tools write for no value, not an id: an id must name "
            "something"
        )
    return value


Id = Annotated[str, Field(min_length=1, max_length=MAX_ID_LENGTH)]
# An event's and a customer's id: ingestion reads one of white space only as missing. (A
# `user_id` or `subscription_id` of spaces only is stored as missing, trimmed to nothing.)
NamingId = Annotated[Id, AfterValidator(_not_blank), AfterValidator(_not_nothing)]
# A name that must name something (an event's): white space only is missing, a word is a word.
NamingText = Annotated[Id, AfterValidator(_not_blank)]
# Names (a plan, an event, a feature) are bounded as ids are (the events contract).
Text = Annotated[str, Field(min_length=1, max_length=MAX_ID_LENGTH)]


def _strict_instant(value: str) -> str:
    """The contract's one reading of ISO 8601 (``feature_store.timeutil``); the text is kept, as
    the events contract types it again when the events are validated."""
    parse_instant(value)
    return value


Timestamp = Annotated[
    str,
    Field(
        max_length=40,
        json_schema_extra={"format": "date-time"},
        description="ISO 8601 instant (a value without an offset is UTC) or date; an offset "
        f"lies within ±14:00, the instant within the years {MIN_YEAR} to {MAX_YEAR}.",
        examples=["2026-05-01T09:30:00Z"],
    ),
    AfterValidator(_strict_instant),
]
Seats = whole_number(ge=0, le=MAX_SEATS)
Interval = Literal["month", "year"]


def _iso_4217(code: str) -> str:
    if code not in currency_codes():
        raise ValueError(f"{code!r} is not an ISO 4217 currency code (USD, EUR, JPY)")
    return code


Currency = Annotated[
    str,
    Field(pattern=r"^[A-Z]{3}$", description="ISO 4217 code, current or withdrawn."),
    AfterValidator(_iso_4217),
]


class _Event(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    event_id: NamingId
    customer_id: NamingId | None = Field(
        default=None, description="Optional; when given it must be the request's customer."
    )
    occurred_at: Timestamp


class _BillingEvent(_Event):
    subscription_id: Id | None = Field(
        default=None,
        description="Which of the customer's subscriptions the event is about (a plan and an "
        "add-on are two); omitted: the customer's one subscription.",
    )


class SubscriptionEvent(_BillingEvent):
    """A subscription started or changed: what the customer has after it."""

    type: Literal["subscription_started", "subscription_changed"]
    plan: Text
    interval: Interval
    seats: Seats
    mrr: Money = Field(description="MRR after the event, per month.")
    # required with `mrr` and `amount` (the events contract): without it the money was read in
    # the reporting currency whatever it was
    currency: Currency


# What a cancelled subscription's plan may say (and, below, its interval, seats and MRR): the
# events contract lets them be empty ("" as an export leaves them; ingestion reads "" as missing),
# and scoring refused what ingestion accepts.
EmptyOrText = Annotated[str, Field(max_length=MAX_ID_LENGTH)]


class CancellationEvent(_BillingEvent):
    type: Literal["subscription_canceled"]
    currency: Currency | Literal[""] | None = None  # "" is missing, as ingestion reads it
    plan: EmptyOrText | None = None
    interval: Interval | Literal[""] | None = None
    seats: Seats | Literal[""] | None = None
    mrr: Money | Literal[""] | None = None


class PaymentEvent(_BillingEvent):
    """Money moved: an invoice paid, a failed charge, a refund."""

    type: Literal["invoice_paid", "payment_failed", "refund_issued"]
    amount: PositiveMoney
    currency: Currency
    plan: Text | None = None


BillingEvent = Annotated[
    SubscriptionEvent | CancellationEvent | PaymentEvent, Field(discriminator="type")
]


class UsageEvent(_Event):
    event: NamingText = Field(  # white space only is missing, as ingestion reads it
        description="login, feature_used, api_call or a free-form activity name."
    )
    user_id: Id | None = None
    feature: Text | None = None
    quantity: Money | None = Field(default=None, description="How many times; default 1.")


class CustomerEvents(BaseModel):
    """One customer's events; either list may be empty but not both."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    billing: list[BillingEvent] = Field(default_factory=list)
    usage: list[UsageEvent] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _read_as_ingestion_reads(cls, data: Any) -> Any:
        """A billing event's type and interval in any case, its currency in lower case, ids
        and names with spaces around them, as ingestion reads them
        (``feature_store.validation``): `"type": "INVOICE_PAID"` and `"currency": "usd"` were
        stored by `POST /v1/events` and refused here (a CRM integrator's review), and " e1" and
        "e1" counted as two events here and one there. Before validation, so the type still
        picks the event's kind."""
        if not isinstance(data, dict):
            return data
        read = dict(data)
        for stream in ("billing", "usage"):
            if isinstance(data.get(stream), list):
                read[stream] = [_as_ingestion_reads(event) for event in data[stream]]
        return read


# Of the text ingestion stores without the spaces around it (``TRIMMED_COLUMNS``: " e1" and "e1"
# are one event there, "c1 " customer c1), the optional columns, which spaces alone leave missing.
_OPTIONAL = frozenset({"subscription_id", "user_id", "plan", "feature"})


# The columns of the events contract that an event of each billing type carries without their
# being read: ingestion stores a row of one uniform export (an invoice with `"seats": null`, a
# plan change with an `amount`) and checks only what its type reads, where this schema refused
# them as extra inputs (a CRM's probe). Left out before validation, as ingestion leaves them
# unread.
_UNREAD_BY_TYPE: dict[str, frozenset[str]] = {
    kind: frozenset(column_names("billing")) - model.model_fields.keys()
    for model in (SubscriptionEvent, CancellationEvent, PaymentEvent)
    for kind in get_args(model.model_fields["type"].annotation)
}
# Numbers of the contract: a JSON string spelling one is read as ingestion reads it ("12", " 7 ",
# "1e3"; ``feature_store.schema.decimal_value``), where this schema took JSON numbers alone and
# refused what `POST /v1/events` had stored (a CRM's probe).
_NUMBERS = ("seats", "mrr", "amount", "quantity")


def _as_ingestion_reads(event: Any) -> Any:
    if not isinstance(event, dict):
        return event
    read = dict(event)
    for name in _NUMBERS:
        value = read.get(name)
        if isinstance(value, str) and (number := decimal_value(value)) is not None:
            read[name] = number
        elif name == "quantity" and isinstance(value, str) and not value:
            read[name] = None  # missing, as ingestion reads "": the default of 1
    for name in sorted(TRIMMED_COLUMNS):
        value = read.get(name)
        # ids and names sent as JSON numbers or booleans are stored as their JSON text (5, 5.5,
        # true: "5", "5.5", "true"; ``readers.json_value_text``), and were refused here
        if isinstance(value, bool | int | float):  # (NaN and the infinities: refused as no JSON)
            value = read[name] = json_value_text(value)
        if isinstance(value, str) and name in OPTIONAL_IDS and names_nothing(value):
            read[name] = None  # "nan", "NULL": no subscription or user, as ingestion reads it
        elif isinstance(value, str):
            trimmed = value.strip(" ")
            if trimmed:
                read[name] = trimmed
            elif name in _OPTIONAL:  # spaces alone: missing, as ingestion stores it
                read[name] = None
            # a required id of spaces alone stays as sent, refused as "white space only"
    # the space separators around them alone, and ASCII case alone, as DuckDB's trim() and
    # ``validation._ascii_lower`` read them: " invoice_paid\t" and "İNVOICE_PAID" were scored
    # here and quarantined there, or the other way round
    for name, fold in (("type", ascii_lower), ("interval", ascii_lower), ("currency", ascii_upper)):
        if isinstance(read.get(name), str) and (bare := read[name].strip(SPACE_SEPARATORS)):
            read[name] = fold(bare)
        # spaces alone stay as sent: ingestion reads "" as missing but "  " as given, and
        # refuses it (an interval of spaces on a cancellation was scored here)
    if isinstance(read.get("event"), str) and ascii_lower(read["event"]) in NAMED_EVENTS:
        read["event"] = ascii_lower(read["event"])
    kind = read.get("type")
    if kind in ("", None):  # no type, as ingestion reads "" (missing_type, not unknown_type)
        read.pop("type", None)
    # a type that is no text (a list, an object) is refused by the schema, not looked up here
    for name in _UNREAD_BY_TYPE.get(kind, ()) if isinstance(kind, str) else ():
        read.pop(name, None)
    return read


EXAMPLE_EVENTS = {
    "billing": [
        {
            "event_id": "b-1",
            "occurred_at": "2026-01-10T08:00:00Z",
            "type": "subscription_started",
            "plan": "team",
            "interval": "month",
            "seats": 5,
            "mrr": 250.0,
            "currency": "USD",
        },
        {
            "event_id": "b-2",
            "occurred_at": "2026-06-10T08:00:00Z",
            "type": "invoice_paid",
            "amount": 250.0,
            "currency": "USD",
        },
    ],
    "usage": [
        {
            "event_id": "u-1",
            "occurred_at": "2026-06-20T10:00:00Z",
            "event": "login",
            "user_id": "u1",
        },
        {
            "event_id": "u-2",
            "occurred_at": "2026-06-21T10:00:00Z",
            "event": "api_call",
            "quantity": 40,
        },
    ],
}
