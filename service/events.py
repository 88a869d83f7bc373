"""Raw events of customers the store may never have seen -> feature vectors, with the batch code.

Events are validated by ``feature_store.memory.validate_events`` (the contract file ingestion
applies) and turned into features by ``feature_store.features.compute_customer_features`` (the SQL
of the batch pipeline), so a vector computed here equals the offline one. Several customers (a
batch) are validated in one pass and computed in one query per as-of instant; each keeps its own
errors.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import duckdb
import pandas as pd

from feature_store.currency import CurrencyLevels
from feature_store.engine import SessionFactory
from feature_store.features import compute_customer_features
from feature_store.memory import validate_events
from feature_store.schema import STREAMS, Reason, Stream
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


def _foreign_money(job: EventsJob, currencies: frozenset[str] | None) -> list[FieldError]:
    """An error for every billing event whose money is in a currency outside ``currencies``."""
    if currencies is None:
        return []
    known = ", ".join(sorted(currencies))
    return [
        FieldError(
            field=f"events.billing[{index}].currency",
            message=f"{event.currency!r} is not a currency this model's money is in ({known}): "
            "its amounts would be "
            f"{'read as ' + known if len(currencies) == 1 else 'left unconverted'}; "
            "send them converted, or have the data home measure or be given a price level for "
            "it (`segments currency`) and retrain",
        )
        for index, event in enumerate(job.events.billing)
        if isinstance(event.currency, str) and event.currency and event.currency not in currencies
    ]


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


def model_currencies(levels: CurrencyLevels | None, money: str | None) -> frozenset[str] | None:
    """The currencies a model's money can be in: those its price ``levels`` convert (``levels``
    with the data home's kept ones), else the one currency its customers paid in (``money``);
    None when it records neither (a model trained before either), which takes any."""
    if levels is not None and levels.levels:
        return frozenset(levels.levels)
    return None if money is None else frozenset({money})


def vectors_from_events(
    jobs: Sequence[EventsJob],
    feature_names: Sequence[str],
    sessions: SessionFactory,
    levels: CurrencyLevels | None = None,
    currencies: frozenset[str] | None = None,
) -> list[CustomerVector | ProblemError]:
    """One vector (or the 422 saying why not) per job, in order; money converted by ``levels``,
    the price levels of the model the vectors are for (``feature_store.currency``). An event in
    a currency outside ``currencies`` (``model_currencies``) is refused: its amounts would be
    read as the model's currency (30,000 JPY of MRR read "30,000.00 USD a month", and the lead
    an unusual customer: a hostile client's review).

    Every job's events are validated in one pass; the feature SQL then runs once per distinct
    as-of instant (``SEGMENTS_MAX_BATCH_AS_OF`` bounds how many a batch may name), so the cost
    of a call grows with its events, not with its items.
    """
    results: list[CustomerVector | ProblemError | None] = [None] * len(jobs)
    customers: dict[int, str | None] = {}
    for position, job in enumerate(jobs):
        customer, errors = _customer_of(job)
        errors += _foreign_money(job, currencies)
        if not job.events.billing and not job.events.usage:
            errors.append(FieldError(field="events", message="give at least one event"))
        if errors:
            results[position] = invalid(errors)
        else:
            customers[position] = customer
    if customers:
        computed = _compute(jobs, list(customers), feature_names, sessions, levels)
        for position, outcome in computed.items():
            results[position] = (
                outcome
                if isinstance(outcome, ProblemError)
                else CustomerVector(customers[position], outcome, jobs[position].as_of)
            )
    return [r for r in results if r is not None]


def _item_key(position: int) -> str:
    # Every record's customer_id is replaced by its item's key, so no two items can collide.
    return f"item-{position}"


def _compute(
    jobs: Sequence[EventsJob],
    positions: list[int],
    names: Sequence[str],
    sessions: SessionFactory,
    levels: CurrencyLevels | None,
) -> dict[int, dict[str, float] | ProblemError]:
    records: dict[str, list[dict[str, Any]]] = {stream: [] for stream in STREAMS}
    origin: dict[tuple[str, int], tuple[int, int]] = {}
    for position in positions:
        for stream, rows in _records(jobs[position], _item_key(position)).items():
            for local, row in enumerate(rows):
                origin[(stream, len(records[stream]))] = (position, local)
                records[stream].append(row)
    by_instant: dict[datetime, list[int]] = defaultdict(list)
    for position in positions:
        by_instant[jobs[position].as_of].append(position)
    session = sessions.session()
    try:
        validated = validate_events(records, session)  # type: ignore[arg-type]
        rows = {
            key: vector
            for instant, group in by_instant.items()
            for key, vector in _features_at(
                validated.events, group, instant, names, session, levels
            )
        }
    finally:
        session.close()
    errors: dict[int, list[FieldError]] = defaultdict(list)
    for rejected in validated.rejected:
        position, local = origin[(rejected.stream, rejected.index)]
        errors[position] += [reason_error(rejected.stream, local, r) for r in rejected.reasons]
    return {position: _outcome(position, jobs, rows, errors) for position in positions}


def _features_at(
    events: Mapping[Stream, pd.DataFrame],
    positions: list[int],
    instant: datetime,
    names: Sequence[str],
    session: duckdb.DuckDBPyConnection,
    levels: CurrencyLevels | None,
) -> Iterator[tuple[str, dict[str, float]]]:
    """The vectors of the items at ``positions``, all computed as of ``instant`` in one query."""
    keys = [_item_key(position) for position in positions]
    mine = {stream: frame[frame["customer_id"].isin(keys)] for stream, frame in events.items()}
    table = compute_customer_features(mine, instant, session, levels)
    for key, values in zip(
        table["customer_id"], table[list(names)].to_dict("records"), strict=True
    ):
        yield str(key), {name: float(value) for name, value in values.items()}


def _outcome(
    position: int,
    jobs: Sequence[EventsJob],
    rows: Mapping[str, dict[str, float]],
    errors: Mapping[int, list[FieldError]],
) -> dict[str, float] | ProblemError:
    if errors.get(position):
        return invalid(errors[position])
    if _item_key(position) in rows:
        return rows[_item_key(position)]
    instant = jobs[position].as_of
    detail = f"no event before as-of {instant.isoformat()}Z; nothing to compute features from"
    return invalid([FieldError(field="events", message=detail)], detail)
