"""A re-sent event is a duplicate; a different event under a taken id is quarantined, never lost."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_ingest import assert_identity, write_rows

from feature_store import quarantine
from feature_store.engine import connect
from feature_store.ingest import ingest_files
from feature_store.layout import StoreLayout
from feature_store.memory import RejectedEvent, validate_events
from feature_store.offline_store import OfflineStore

CONFLICT = "conflicting_duplicate"

PAID = {
    "event_id": "e1",
    "customer_id": "c1",
    "occurred_at": "2026-01-02T10:00:00+02:00",
    "type": "invoice_paid",
    "amount": "300",
    "currency": "USD",
}
# The same event written another way: same instant in UTC, same amount, same canonical enums.
PAID_AGAIN = {
    **PAID,
    "occurred_at": "2026-01-02 08:00:00",
    "type": " Invoice_Paid ",
    "amount": "300.0",
    "currency": "usd",
}
OTHER = {**PAID, "event_id": "e2", "occurred_at": "2026-01-03"}
CHANGES = {
    "customer": {"customer_id": "c2"},
    "amount": {"amount": "301"},
    "occurred_at": {"occurred_at": "2026-01-02T08:00:01Z"},
}


def stored_billing(layout: StoreLayout) -> list[tuple]:
    con = connect()
    OfflineStore(layout).register_views(con)
    return con.execute(
        "SELECT event_id, customer_id, occurred_at::VARCHAR, amount FROM billing_events "
        "ORDER BY event_id"
    ).fetchall()


def open_conflicts(layout: StoreLayout) -> list[quarantine.QuarantinedRow]:
    con = connect()
    quarantine.attach_catalog(con, layout)
    return quarantine.list_rows(con, reason=CONFLICT)


def ingest_billing(layout: StoreLayout, path: Path, rows: list[dict]):
    report = ingest_files(layout, {"billing": write_rows(path, rows)})["billing"]
    assert_identity(report)
    return report


def counts(report) -> tuple[int, int, int, dict[str, int]]:
    return report.accepted, report.duplicates, report.quarantined, report.reasons


@pytest.mark.parametrize("name", ["b.csv", "b.parquet", "b.jsonl"])
def test_an_exact_resend_within_a_file_is_a_duplicate(layout, tmp_path, name):
    report = ingest_billing(layout, tmp_path / name, [PAID, OTHER, PAID_AGAIN, PAID])
    assert counts(report) == (2, 2, 0, {})
    assert open_conflicts(layout) == []


def test_an_exact_resend_across_runs_is_a_duplicate(layout, tmp_path):
    ingest_billing(layout, tmp_path / "first.csv", [PAID])
    report = ingest_billing(layout, tmp_path / "again.jsonl", [PAID_AGAIN, OTHER])
    assert counts(report) == (1, 1, 0, {})
    assert open_conflicts(layout) == []


@pytest.mark.parametrize("change", CHANGES.values(), ids=CHANGES.keys())
def test_a_reused_id_within_a_file_is_quarantined_as_a_conflict(layout, tmp_path, change):
    conflicting = {**PAID, **change}
    report = ingest_billing(layout, tmp_path / "b.csv", [PAID, OTHER, conflicting, PAID_AGAIN])
    assert counts(report) == (2, 1, 1, {CONFLICT: 1})
    [row] = open_conflicts(layout)
    assert (row.event_id, row.source_row, row.reasons) == ("e1", 3, [CONFLICT])
    assert row.raw == conflicting  # as it arrived, for the user to fix
    assert stored_billing(layout)[0] == ("e1", "c1", "2026-01-02 08:00:00", 300.0)  # first wins


@pytest.mark.parametrize("change", CHANGES.values(), ids=CHANGES.keys())
def test_a_reused_id_across_runs_is_quarantined_as_a_conflict(layout, tmp_path, change):
    ingest_billing(layout, tmp_path / "first.csv", [PAID])
    conflicting = {**PAID, **change}
    # The stored event wins, even over an earlier copy in the new file.
    report = ingest_billing(layout, tmp_path / "second.csv", [conflicting, PAID_AGAIN, OTHER])
    assert counts(report) == (1, 1, 1, {CONFLICT: 1})
    [row] = open_conflicts(layout)
    assert (row.event_id, row.source_row, row.raw) == ("e1", 1, conflicting)
    assert [event[:2] for event in stored_billing(layout)] == [("e1", "c1"), ("e2", "c1")]
    assert stored_billing(layout)[0] == ("e1", "c1", "2026-01-02 08:00:00", 300.0)


def test_usage_reusing_an_id_for_another_customer_is_quarantined(layout, tmp_path):
    path = tmp_path / "c.csv"
    path.write_text(
        "event_id,customer_id,occurred_at,event,quantity\n"
        "U-1,A,2026-01-01,login,1\n"
        "U-1,B,2026-01-01,login,1\n"
        "U-1,A,2026-01-01T00:00:00Z,login,\n"  # a re-send: quantity defaults to 1
    )
    report = ingest_files(layout, {"usage": path})["usage"]
    assert_identity(report)
    assert counts(report) == (1, 1, 1, {CONFLICT: 1})


def test_reingesting_a_file_adds_nothing(layout, tmp_path):
    clean = write_rows(tmp_path / "clean.parquet", [PAID, OTHER])
    ingest_files(layout, {"billing": clean})
    again = ingest_files(layout, {"billing": clean})["billing"]
    assert counts(again) == (0, 2, 0, {})  # all duplicates, no conflict
    with_conflict = write_rows(tmp_path / "conflict.csv", [PAID, {**PAID, "amount": "5"}])
    for _ in range(2):
        report = ingest_files(layout, {"billing": with_conflict})["billing"]
        assert counts(report) == (0, 1, 1, {CONFLICT: 1})
    [row] = open_conflicts(layout)
    assert row.times_seen == 2
    assert len(stored_billing(layout)) == 2


def test_a_conflict_given_a_new_id_is_accepted_and_resolved(layout, tmp_path):
    conflicting = {**PAID, "customer_id": "c2"}
    ingest_billing(layout, tmp_path / "b.csv", [PAID, conflicting])
    [row] = open_conflicts(layout)  # the accepted winner did not resolve it
    exported = {"quarantine_id": row.quarantine_id, "_reasons": CONFLICT, **row.raw}
    fixed = {**exported, "event_id": "e1-c2"}  # the fix a user would make by hand
    report = ingest_billing(layout, tmp_path / "fixed.csv", [fixed])
    assert (report.accepted, report.resolved_from_quarantine) == (1, 1)
    assert open_conflicts(layout) == []
    assert [event[:2] for event in stored_billing(layout)] == [("e1", "c1"), ("e1-c2", "c2")]


def test_a_conflict_corrected_into_a_resend_is_resolved(layout, tmp_path):
    ingest_billing(layout, tmp_path / "b.csv", [PAID, {**PAID, "amount": "30"}])
    [row] = open_conflicts(layout)
    corrected = {"quarantine_id": row.quarantine_id, **row.raw, "amount": "300"}
    report = ingest_billing(layout, tmp_path / "fixed.csv", [corrected])
    assert counts(report) == (0, 1, 0, {})
    assert report.resolved_from_quarantine == 1
    assert open_conflicts(layout) == []


def test_in_memory_validation_drops_a_resend_and_rejects_a_reused_id():
    usage = [
        {"event_id": "u1", "customer_id": "c1", "occurred_at": "2026-01-01", "event": "login"},
        {
            "event_id": "u1",
            "customer_id": "c1",
            "occurred_at": "2026-01-01T00:00:00Z",
            "event": "login",
            "quantity": 1.0,
        },
        {"event_id": "u1", "customer_id": "c1", "occurred_at": "2026-01-01", "event": "logout"},
        {"event_id": "u2", "customer_id": "c1", "occurred_at": "2026-01-02", "event": "login"},
    ]
    validated = validate_events(
        {"billing": [PAID, PAID_AGAIN, {**PAID, "amount": "1"}], "usage": usage}
    )
    assert validated.rejected == [
        RejectedEvent("billing", 2, [CONFLICT]),
        RejectedEvent("usage", 2, [CONFLICT]),
    ]
    assert validated.duplicates == 2
    assert validated.events["usage"]["event_id"].tolist() == ["u1", "u2"]
    assert validated.events["usage"]["event"].tolist() == ["login", "login"]
    assert validated.events["billing"]["amount"].tolist() == [300.0]


def open_rows(layout: StoreLayout) -> list[quarantine.QuarantinedRow]:
    con = connect()
    quarantine.attach_catalog(con, layout)
    return quarantine.list_rows(con)


def exported(row: quarantine.QuarantinedRow) -> dict:
    """A row as `segments quarantine export` writes it."""
    return quarantine.export_row(row)


def test_an_exported_row_sent_back_unfixed_or_half_fixed_keeps_one_open_entry(layout, tmp_path):
    """Sent back unchanged, an exported row opened a second entry (its bookkeeping columns made
    its content new) that every later export tied to the first, already resolved id: it could
    never be closed. Found by a hostile probe of the round trip."""
    ingest_billing(layout, tmp_path / "b.csv", [{**PAID, "event_id": ""}])
    [row] = open_rows(layout)
    # sent back unchanged twice in one file: still the one entry, which stays open
    ingest_billing(layout, tmp_path / "same.csv", [exported(row), exported(row)])
    [again] = open_rows(layout)
    assert (again.quarantine_id, again.times_seen) == (row.quarantine_id, 3)
    # half fixed: still invalid, a new entry stands for it and the one it corrects is closed
    ingest_billing(layout, tmp_path / "half.csv", [{**exported(row), "amount": "-1"}])
    [half] = open_rows(layout)
    assert half.quarantine_id != row.quarantine_id
    report = ingest_billing(
        layout, tmp_path / "fixed.csv", [{**exported(half), "event_id": "e9", "amount": "300"}]
    )
    assert (report.accepted, report.resolved_from_quarantine) == (1, 1)
    assert open_rows(layout) == []


def test_a_correction_quarantined_as_another_open_entry_keeps_that_entry_open(layout, tmp_path):
    """Entry A's row edited into entry B's content (still invalid) and B's row edited further:
    B was quarantined again by this batch and then closed as corrected, losing the row that
    holds its content now. Found by a review."""
    ingest_billing(
        layout, tmp_path / "b.csv", [{**PAID, "amount": "-5"}, {**OTHER, "amount": "-6"}]
    )
    by_amount = {row.raw["amount"]: row for row in open_rows(layout)}
    first, second = by_amount["-5"], by_amount["-6"]
    moved = {**exported(first), **{k: v for k, v in second.raw.items()}}
    further = {**exported(second), "amount": "-7"}
    report = ingest_billing(layout, tmp_path / "fix.csv", [moved, further])
    assert report.quarantined == 2
    assert sorted(row.raw["amount"] for row in open_rows(layout)) == ["-6", "-7"]
