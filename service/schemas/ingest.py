"""Requests and answers of HTTP ingestion: ``POST /v1/events`` and the Stripe webhook."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SkipValidation

from feature_store.records import RecordsReport
from feature_store.timeutil import parse_instant
from service.schemas.events import (
    EXAMPLE_EVENTS,
    CancellationEvent,
    NamingId,
    PaymentEvent,
    SubscriptionEvent,
    UsageEvent,
)

# The events of a batch each name their customer (an event without one is quarantined as
# `missing_customer_id`); the schema said "Optional", as it is when scoring one customer's events
# (a CRM integrator's review). Documentation only: the items are checked by ingestion.
_CUSTOMER = Field(description="The customer the event is about.")


class BatchSubscriptionEvent(SubscriptionEvent):
    customer_id: NamingId = _CUSTOMER  # type: ignore[assignment]


class BatchCancellationEvent(CancellationEvent):
    customer_id: NamingId = _CUSTOMER  # type: ignore[assignment]


class BatchPaymentEvent(PaymentEvent):
    customer_id: NamingId = _CUSTOMER  # type: ignore[assignment]


class BatchUsageEvent(UsageEvent):
    customer_id: NamingId = _CUSTOMER  # type: ignore[assignment]


BatchBillingEvent = Annotated[
    BatchSubscriptionEvent | BatchCancellationEvent | BatchPaymentEvent,
    Field(discriminator="type"),
]


class EventsBatch(BaseModel):
    """Canonical events of any customers; each event names its ``customer_id``.

    The items are documented with the canonical schema but checked by the ingestion's own
    validation, event by event: a bad event is quarantined with its reasons, never a reason to
    refuse the others.
    """

    model_config = ConfigDict(extra="forbid")

    billing: list[SkipValidation[BatchBillingEvent]] = Field(default_factory=list)
    usage: list[SkipValidation[BatchUsageEvent]] = Field(default_factory=list)

    def records(self) -> dict[Literal["billing", "usage"], list[Any]]:
        return {"billing": list(self.billing), "usage": list(self.usage)}

    def dated_after(self, now: datetime) -> int:
        """Events whose ``occurred_at`` is an instant of the contract after ``now`` (naive UTC);
        a value that is none is the quarantine's to report."""
        count = 0
        for events in (self.billing, self.usage):
            for event in events:
                stamp = event.get("occurred_at") if isinstance(event, dict) else None
                if isinstance(stamp, str):
                    try:
                        count += parse_instant(stamp) > now
                    except ValueError:
                        continue
        return count

    @property
    def size(self) -> int:
        return len(self.billing) + len(self.usage)


class Counts(BaseModel):
    received: int = Field(description="Events in the request.")
    accepted: int = Field(description="New events, stored.")
    duplicates: int = Field(description="Events already stored (same event_id and content).")
    quarantined: int = Field(description="Events refused, kept in the quarantine with reasons.")
    reasons: dict[str, int] = Field(description="Quarantined events by (first) reason code.")
    unknown_columns: list[str] = Field(
        default_factory=list,
        description="Fields no column of the events contract has: ignored, as a file's unknown "
        "columns are (`Quantity` is not `quantity`).",
    )
    resolved_from_quarantine: int = Field(
        default=0,
        description="Quarantine entries this request resolved: events carrying the "
        "`quarantine_id` of an entry (a corrected export row), accepted or found stored.",
    )


class EventsIngested(Counts):
    """``received == accepted + duplicates + quarantined``, per stream and in total."""

    batch_id: str = Field(description="The ingestion batch (see `segments quarantine`).")
    streams: dict[str, Counts]
    dated_after_now: int = Field(
        default=0,
        description="Extension: events of the request dated after the moment it was received. "
        "Stored when otherwise valid (a clock may be off), but features as of now leave them "
        "out, and a wrong year (2031 for 2021) is told no other way; `segments ingest` says the "
        "same of a file.",
    )

    refreshed: bool | None = Field(
        default=None,
        description="Extension (since 2026-12-08): with `?wait_for_refresh=true`, whether the "
        "customers' online vectors were refreshed before this answer, so that `POST /v1/score` "
        "reads these events (false: not within `SEGMENTS_REFRESH_WAIT_SECONDS`, or the refresh "
        "failed; the events are stored either way); null when not asked.",
    )

    @classmethod
    def from_report(
        cls, report: RecordsReport, dated_after_now: int = 0, refreshed: bool | None = None
    ) -> EventsIngested:
        streams = {
            stream: Counts(
                received=r.received,
                accepted=r.accepted,
                duplicates=r.duplicates,
                quarantined=r.quarantined,
                reasons=r.reasons,
                unknown_columns=r.unknown_columns,
                resolved_from_quarantine=r.resolved_from_quarantine,
            )
            for stream, r in report.streams.items()
        }
        unknown = sorted({name for counts in streams.values() for name in counts.unknown_columns})
        reasons: dict[str, int] = {}
        for counts in streams.values():
            for reason, count in counts.reasons.items():
                reasons[reason] = reasons.get(reason, 0) + count
        total = {
            name: sum(getattr(c, name) for c in streams.values())
            for name in (
                "received",
                "accepted",
                "duplicates",
                "quarantined",
                "resolved_from_quarantine",
            )
        }
        return cls(
            batch_id=report.batch_id,
            dated_after_now=dated_after_now,
            refreshed=refreshed,
            streams=streams,
            reasons=reasons,
            unknown_columns=unknown,
            **total,
        )


class StripeDelivery(BaseModel):
    """The webhook's acknowledgement of one Stripe event."""

    event_id: str
    type: str = Field(description="The Stripe event type.")
    outcome: Literal["accepted", "duplicate", "quarantined", "ignored"]
    reasons: list[str] = Field(
        default_factory=list, description="Why it was quarantined or ignored (reason codes)."
    )


EVENTS_REQUEST_EXAMPLES = {
    "two customers": {
        "summary": "Billing and usage events of two customers",
        "value": {
            "billing": [{**EXAMPLE_EVENTS["billing"][0], "customer_id": "cus_000002"}],
            "usage": [
                {**EXAMPLE_EVENTS["usage"][0], "customer_id": "cus_000002"},
                {**EXAMPLE_EVENTS["usage"][1], "customer_id": "cus_000017"},
            ],
        },
    }
}

EVENTS_INGESTED_EXAMPLE = {
    "received": 3,
    "accepted": 2,
    "duplicates": 0,
    "quarantined": 1,
    "reasons": {"missing_customer_id": 1},
    "batch_id": "20261202T101500123456Z-a1b2c3",
    "streams": {
        "billing": {
            "received": 1,
            "accepted": 1,
            "duplicates": 0,
            "quarantined": 0,
            "reasons": {},
        },
        "usage": {
            "received": 2,
            "accepted": 1,
            "duplicates": 0,
            "quarantined": 1,
            "reasons": {"missing_customer_id": 1},
        },
    },
}
