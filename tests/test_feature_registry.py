"""Every registry entry is complete, and its declared type is the type its SQL computes."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from datetime import datetime

import duckdb
import pytest

from feature_store.engine import connect
from feature_store.features import feature_query, feature_sql, use_events
from feature_store.memory import validate_events
from feature_store.registry import FEATURES, FeatureDefinition, incomplete
from models.naming import phrase
from models.wording import format_value

AS_OF = datetime(2026, 6, 1)
# A tiny company touching every aggregate: a subscription with changes, payments, a failure, a
# refund, a cancellation, and usage of every kind inside and outside the windows.
BILLING = [
    {"event_id": "b1", "customer_id": "A", "occurred_at": "2026-01-01T00:00:00Z",
     "type": "subscription_started", "plan": "pro", "interval": "year", "seats": 4, "mrr": 100, "currency": "USD"},
    {"event_id": "b2", "customer_id": "A", "occurred_at": "2026-01-01T00:00:00Z",
     "type": "invoice_paid", "amount": 1200, "currency": "USD"},
    {"event_id": "b3", "customer_id": "A", "occurred_at": "2026-04-01T00:00:00Z",
     "type": "subscription_changed", "plan": "pro", "interval": "year", "seats": 6, "mrr": 150, "currency": "USD"},
    {"event_id": "b4", "customer_id": "A", "occurred_at": "2026-05-01T00:00:00Z",
     "type": "payment_failed", "amount": 150, "currency": "USD"},
    {"event_id": "b5", "customer_id": "A", "occurred_at": "2026-05-02T00:00:00Z",
     "type": "refund_issued", "amount": 20, "currency": "USD"},
    {"event_id": "b6", "customer_id": "B", "occurred_at": "2026-02-01T00:00:00Z",
     "type": "subscription_started", "plan": "solo", "interval": "month", "seats": 1, "mrr": 10, "currency": "USD"},
    {"event_id": "b7", "customer_id": "B", "occurred_at": "2026-03-01T00:00:00Z",
     "type": "subscription_canceled"},
]  # fmt: skip
USAGE = [
    {"event_id": "u1", "customer_id": "A", "occurred_at": "2026-05-20T10:00:00Z",
     "event": "login", "user_id": "u1"},
    {"event_id": "u2", "customer_id": "A", "occurred_at": "2026-05-21T10:00:00Z",
     "event": "api_call", "user_id": "u2", "quantity": 5},
    {"event_id": "u3", "customer_id": "A", "occurred_at": "2026-04-01T10:00:00Z",
     "event": "feature_used", "user_id": "u1", "feature": "reports"},
    {"event_id": "u4", "customer_id": "C", "occurred_at": "2026-05-30T10:00:00Z",
     "event": "login"},
]  # fmt: skip
_INTEGER_TYPES = {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT"}
_FLOAT_TYPES = {"FLOAT", "DOUBLE"}


def _kind(sql_type: str) -> str:
    """'int' or 'float' for a DuckDB column type; anything else is named as it is."""
    base = sql_type.split("(")[0]
    if base in _INTEGER_TYPES or base.lstrip("U") in _INTEGER_TYPES:
        return "int"
    return "float" if base in _FLOAT_TYPES or base == "DECIMAL" else sql_type


def _column_types(sql: str) -> dict[str, str]:
    con = connect(threads=1)
    try:
        validated = validate_events({"billing": BILLING, "usage": USAGE}, session=con)
        assert not validated.rejected
        use_events(con, validated.events)
        relation = con.sql(sql)
        return {
            name: str(kind) for name, kind in zip(relation.columns, relation.types, strict=True)
        }
    finally:
        con.close()


def type_mismatches(
    definitions: Iterable[FeatureDefinition], computed: Mapping[str, str]
) -> list[str]:
    return [
        f"{d.name}: declared {d.dtype}, computed {computed[d.name]}"
        for d in definitions
        if _kind(computed[d.name]) != d.dtype
    ]


@pytest.mark.parametrize("definition", FEATURES, ids=lambda d: d.name)
def test_every_entry_is_complete(definition):
    assert incomplete(definition) == []
    assert phrase(definition.name, 1.0) or phrase(definition.name, -1.0)
    assert format_value(definition.name, definition.example)


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"expression": " "}, "no SQL expression"),
        ({"description": ""}, "no description"),
        ({"above": None, "below": None}, "no naming phrase (above or below)"),
        ({"unit": "furlongs"}, "unknown unit 'furlongs'"),
        ({"reading": "loudly"}, "unknown reading 'loudly'"),
        ({"example": -3.0}, "example outside [minimum, maximum]"),
        ({"example": 2.5}, "a whole-number feature with a fractional example"),
    ],
)
def test_an_incomplete_entry_is_named(change, problem):
    seats = next(d for d in FEATURES if d.name == "seats")
    assert problem in incomplete(dataclasses.replace(seats, **change))


def test_names_are_unique_and_plain_sql_identifiers():
    names = [d.name for d in FEATURES]
    assert len(set(names)) == len(names)
    assert all(name.isidentifier() and name.islower() for name in names)


def test_each_declared_dtype_is_what_its_expression_computes():
    computed = _column_types(feature_query(AS_OF, typed=False))
    # the customer's currency travels beside its id, to convert money by (feature_store.currency)
    assert list(computed) == ["customer_id", "currency", *(d.name for d in FEATURES)]
    assert computed["currency"] == "VARCHAR"
    assert type_mismatches(FEATURES, computed) == []


def test_a_wrongly_declared_dtype_is_caught():
    computed = _column_types(feature_query(AS_OF, typed=False))
    mrr = next(d for d in FEATURES if d.name == "mrr")
    seats = next(d for d in FEATURES if d.name == "seats")
    wrong = [dataclasses.replace(mrr, dtype="int"), dataclasses.replace(seats, dtype="float")]
    assert [m.split(":")[0] for m in type_mismatches(wrong, computed)] == ["mrr", "seats"]


def test_the_query_returns_exactly_the_declared_column_types():
    computed = _column_types(feature_sql(AS_OF))
    expected = {"int": "BIGINT", "float": "DOUBLE"}
    assert {d.name: computed[d.name] for d in FEATURES} == {
        d.name: expected[d.dtype] for d in FEATURES
    }


def test_the_query_is_one_duckdb_statement():
    statements = duckdb.extract_statements(feature_sql(AS_OF))
    assert len(statements) == 1


def test_a_feature_lacks_its_events_only_when_its_kind_is_absent():
    from feature_store.registry import lacking_events

    names = ["mrr", "events_30d", "days_since_last_activity", "payment_overdue_days"]
    assert lacking_events(names, {"usage", "invoice_paid"}) == {}
    assert lacking_events(names, {"invoice_paid", "subscription_started"}) == {
        "usage": ["events_30d", "days_since_last_activity"]
    }
    assert lacking_events(names, set()) == {
        "usage": ["events_30d", "days_since_last_activity"],
        "invoice_paid": ["payment_overdue_days"],
    }
