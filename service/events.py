"""Raw events of customers the store may never have seen -> feature vectors, with the batch code.

Events are validated by ``feature_store.memory.validate_events`` (the contract file ingestion
applies) and turned into features by ``feature_store.features.compute_customer_features`` (the SQL
of the batch pipeline), so a vector computed here equals the offline one. Several customers (a
batch) go through in one pass per as-of instant; each keeps its own errors.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from feature_store.engine import SessionFactory
from feature_store.features import compute_customer_features
from feature_store.memory import validate_events
from feature_store.schema import STREAMS, Reason
from service.problems import FieldError, ProblemError, invalid
from service.schemas.events import CustomerEvents

_PHRASES = (
    ("missing_", "is required for this event"),
    ("invalid_", "is not valid"),
    ("negative_", "must not be negative"),
    ("non_positive_", "must be greater than 0"),
    ("unknown_", "is not a known value"),
)


@dataclass(frozen=True)
class EventsJob:
    """One customer's events to turn into a vector."""

    customer_id: str | None
    events: CustomerEvents
    as_of: datetime


@dataclass(frozen=True)
class CustomerVector:
    customer_id: str | None
    vector: dict[str, float]
    as_of: datetime | None = None  # when the vector was computed from events; None: sent as is


def reason_error(stream: str, index: int, reason: str) -> FieldError:
    """A quarantine reason code as a field error: ``missing_mrr`` -> ``events.billing[2].mrr``."""
    for prefix, phrase in _PHRASES:
        if reason.startswith(prefix):
            column = reason.removeprefix(prefix)
            return FieldError(
                field=f"events.{stream}[{index}].{column}", message=f"{column} {phrase} ({reason})"
            )
    if reason == Reason.CONFLICTING_DUPLICATE:
        return FieldError(
            field=f"events.{stream}[{index}].event_id",
            message=f"event_id already used by another event of this request ({reason})",
        )
    return FieldError(field=f"events.{stream}[{index}]", message=f"event refused ({reason})")


def _customer_of(job: EventsJob) -> tuple[str | None, list[FieldError]]:
    """The customer the events belong to, and an error for every event naming another one."""
    named = job.customer_id
    errors = []
    for stream in STREAMS:
        for index, event in enumerate(getattr(job.events, stream)):
            if event.customer_id is None:
                continue
            if named is None:
                named = event.customer_id
            elif event.customer_id != named:
                errors.append(
                    FieldError(
                        field=f"events.{stream}[{index}].customer_id",
                        message=f"every event must belong to customer {named!r}",
                    )
                )
    return named, errors


def _records(job: EventsJob, key: str) -> dict[str, list[dict[str, Any]]]:
    """The job's events as canonical records of customer ``key``.

    Several jobs are validated together, and an event id is unique across a whole stream: two
    leads may both send an event ``e1``. So each id becomes ``<key>.<rank>``, its rank among the
    job's own ids: unique across jobs, the same for a repeated id (a duplicate stays a duplicate)
    and in the same order (the features break ties by event id).
    """
    records = {}
    for stream in STREAMS:
        events = [event.model_dump(exclude_none=True) for event in getattr(job.events, stream)]
        ranks = {event_id: n for n, event_id in enumerate(sorted({e["event_id"] for e in events}))}
        records[stream] = [
            {**event, "customer_id": key, "event_id": f"{key}.{ranks[event['event_id']]:09d}"}
            for event in events
        ]
    return records


def vectors_from_events(
    jobs: Sequence[EventsJob], feature_names: Sequence[str], sessions: SessionFactory
) -> list[CustomerVector | ProblemError]:
    """One vector (or the 422 saying why not) per job, in order."""
    results: list[CustomerVector | ProblemError | None] = [None] * len(jobs)
    customers: dict[int, str | None] = {}
    by_instant: dict[datetime, list[int]] = defaultdict(list)
    for position, job in enumerate(jobs):
        customer, errors = _customer_of(job)
        if not job.events.billing and not job.events.usage:
            errors.append(FieldError(field="events", message="give at least one event"))
        if errors:
            results[position] = invalid(errors)
        else:
            customers[position] = customer
            by_instant[job.as_of].append(position)
    for instant, positions in by_instant.items():
        computed = _compute(jobs, positions, instant, feature_names, sessions)
        for position, outcome in computed.items():
            results[position] = (
                outcome
                if isinstance(outcome, ProblemError)
                else CustomerVector(customers[position], outcome, instant)
            )
    return [r for r in results if r is not None]


def _compute(
    jobs: Sequence[EventsJob],
    positions: list[int],
    instant: datetime,
    names: Sequence[str],
    sessions: SessionFactory,
) -> dict[int, dict[str, float] | ProblemError]:
    # Every record's customer_id is replaced by its item's key, so no two items can collide.
    keys = {position: f"item-{position}" for position in positions}
    records: dict[str, list[dict[str, Any]]] = {stream: [] for stream in STREAMS}
    origin: dict[tuple[str, int], tuple[int, int]] = {}
    for position in positions:
        for stream, rows in _records(jobs[position], keys[position]).items():
            for local, row in enumerate(rows):
                origin[(stream, len(records[stream]))] = (position, local)
                records[stream].append(row)
    session = sessions.session()
    try:
        validated = validate_events(records, session)  # type: ignore[arg-type]
        table = compute_customer_features(validated.events, instant, session)
    finally:
        session.close()
    errors: dict[int, list[FieldError]] = defaultdict(list)
    for rejected in validated.rejected:
        position, local = origin[(rejected.stream, rejected.index)]
        errors[position] += [reason_error(rejected.stream, local, r) for r in rejected.reasons]
    rows = {
        str(key): values
        for key, values in zip(
            table["customer_id"], table[list(names)].to_dict("records"), strict=True
        )
    }
    out: dict[int, dict[str, float] | ProblemError] = {}
    for position in positions:
        if errors.get(position):
            out[position] = invalid(errors[position])
        elif keys[position] in rows:
            out[position] = {k: float(v) for k, v in rows[keys[position]].items()}
        else:
            detail = (
                f"no event before as-of {instant.isoformat()}Z; nothing to compute features from"
            )
            out[position] = invalid([FieldError(field="events", message=detail)], detail)
    return out
