"""Column-mapping files: the worked examples in ``examples/mappings`` on exports the tests write,
and the one-line errors of a mapping that cannot be used."""

from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd
import pytest

from feature_store import quarantine
from feature_store.converted import ingest_converted
from feature_store.engine import connect
from feature_store.layout import StoreLayout
from feature_store.mapping import (
    MappingError,
    apply_mapping,
    convert_export,
    load_mapping,
    parse_mapping,
)

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "mappings"


def write_csv(path: Path, rows: list[dict[str, object]]) -> Path:
    with path.open("w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def chargebee_row(event_id: str, event_type: str, occurred_at: int, **fields: object) -> dict:
    row = dict.fromkeys(
        [
            "content.subscription.id",
            "content.subscription.plan_id",
            "content.subscription.plan_quantity",
            "content.subscription.mrr",
            "content.subscription.currency_code",
            "content.subscription.billing_period_unit",
            "content.transaction.amount",
            "content.transaction.currency_code",
        ],
        "",
    )
    row.update({"id": event_id, "occurred_at": occurred_at, "event_type": event_type})
    row["content.customer.id"] = fields.pop("customer", "cb_cust_1")
    row.update({f"content.{key.replace('__', '.')}": value for key, value in fields.items()})
    return row


CHARGEBEE_EVENTS = [
    chargebee_row(
        "ev_1", "subscription_created", 1_735_689_600,
        subscription__id="cb_sub_1", subscription__plan_id="growth",
        subscription__plan_quantity=4, subscription__mrr=40_000,
        subscription__currency_code="EUR", subscription__billing_period_unit="month",
    ),
    chargebee_row("ev_2", "payment_succeeded", 1_735_689_660,
                  transaction__amount=40_000, transaction__currency_code="EUR"),
    chargebee_row(
        "ev_3", "subscription_changed", 1_738_368_000, subscription__id="cb_sub_1",
        subscription__plan_id="growth-annual", subscription__plan_quantity=5,
        subscription__mrr=45_000, subscription__currency_code="EUR",
        subscription__billing_period_unit="year",
    ),
    chargebee_row("ev_4", "subscription_renewed", 1_740_787_200),
    chargebee_row("ev_5", "payment_refunded", 1_741_000_000,
                  transaction__amount=5_000, transaction__currency_code="EUR"),
    chargebee_row("ev_6", "subscription_cancelled", 1_750_000_000, subscription__id="cb_sub_1",
                  subscription__plan_id="growth-annual", subscription__currency_code="EUR"),
    chargebee_row(
        "ev_7", "subscription_reactivated", 1_760_000_000, subscription__id="cb_sub_1",
        subscription__plan_id="growth-annual", subscription__plan_quantity=5,
        subscription__mrr=45_000, subscription__currency_code="EUR",
        subscription__billing_period_unit="year",
    ),
]  # fmt: skip


def test_chargebee_example_maps_an_event_export(tmp_path):
    mapping = load_mapping(EXAMPLES / "chargebee.toml")
    frame = pd.read_csv(write_csv(tmp_path / "cb.csv", CHARGEBEE_EVENTS), dtype=str)
    mapped = apply_mapping(frame, mapping)
    events = mapped.events.set_index("event_id")
    assert mapped.skipped == {"type=subscription_renewed": 1}
    assert list(events.index) == ["ev_1", "ev_2", "ev_3", "ev_5", "ev_6", "ev_7"]
    assert events.loc["ev_1"].to_dict() == {
        "customer_id": "cb_cust_1",
        "occurred_at": "2025-01-01T00:00:00+00:00",
        "type": "subscription_started",
        "plan": "growth",
        "interval": "month",
        "seats": "4",
        "mrr": 400.0,
        "amount": None,
        "currency": "EUR",
        "subscription_id": "cb_sub_1",
    }
    assert events.loc["ev_2", ["type", "amount", "currency"]].tolist() == [
        "invoice_paid",
        400.0,
        "EUR",
    ]
    assert events.loc["ev_3", ["interval", "mrr"]].tolist() == ["year", 450.0]
    assert events.loc["ev_5", "type"] == "refund_issued"
    assert events.loc["ev_6", "type"] == "subscription_canceled"
    assert events.loc["ev_7", ["type", "mrr"]].tolist() == ["subscription_started", 450.0]


def test_chargebee_export_ingests_like_a_file(tmp_path):
    layout = StoreLayout(tmp_path / "home")
    path = write_csv(tmp_path / "cb.csv", CHARGEBEE_EVENTS)
    converted = convert_export(path, load_mapping(EXAMPLES / "chargebee.toml"))
    report = ingest_converted(layout, "billing", converted.rows, source_name=str(path))
    assert (report.received, report.accepted, report.quarantined) == (6, 6, 0)
    converted = convert_export(path, load_mapping(EXAMPLES / "chargebee.toml"))  # read once
    again = ingest_converted(layout, "billing", converted.rows, source_name=str(path))
    assert (again.accepted, again.duplicates) == (0, 6)
    # cancelled, then reactivated: paying again, not churned
    from datetime import datetime

    from pipelines.feature_pipeline import build_features

    for day, mrr, canceled in ((datetime(2025, 7, 1), 0.0, 1), (datetime(2025, 11, 1), 450.0, 0)):
        row = build_features(layout, day).set_index("customer_id").loc["cb_cust_1"]
        assert (row["mrr"], row["is_canceled"]) == (mrr, canceled)


RECURLY_TRANSACTIONS = [
    {"account_code": "acme", "name": "JJ Smith", "transaction_id": "t1", "type": "purchase",
     "amount": "99.95", "tax_amount": "0", "currency": "USD", "date": "2026-01-19 11:16:41 PST",
     "status": "success", "message": "approved", "test": "FALSE"},
    {"account_code": "acme", "name": "JJ Smith", "transaction_id": "t2", "type": "authorization",
     "amount": "1.00", "tax_amount": "0", "currency": "USD", "date": "2026-02-01 09:00:00 PST",
     "status": "success", "message": "approved", "test": "FALSE"},
    {"account_code": "acme", "name": "JJ Smith", "transaction_id": "t3", "type": "purchase",
     "amount": "99.95", "tax_amount": "0", "currency": "USD", "date": "2026-07-19 11:00:00 PDT",
     "status": "declined", "message": "insufficient funds", "test": "FALSE"},
    {"account_code": "acme", "name": "JJ Smith", "transaction_id": "t4", "type": "refund",
     "amount": "20.00", "tax_amount": "0", "currency": "USD", "date": "2026-07-20 08:00:00 PDT",
     "status": "success", "message": "approved", "test": "FALSE"},
    {"account_code": "acme", "name": "JJ Smith", "transaction_id": "t5", "type": "purchase",
     "amount": "99.95", "tax_amount": "0", "currency": "USD", "date": "yesterday",
     "status": "success", "message": "approved", "test": "FALSE"},
]  # fmt: skip


def test_recurly_example_maps_a_transactions_export(tmp_path):
    mapping = load_mapping(EXAMPLES / "recurly.toml")
    frame = pd.read_csv(write_csv(tmp_path / "tx.csv", RECURLY_TRANSACTIONS), dtype=str)
    mapped = apply_mapping(frame, mapping)
    events = mapped.events.set_index("event_id")
    assert mapped.skipped == {"type=authorization:success": 1}
    assert events["type"].to_dict() == {
        "t1": "invoice_paid",
        "t3": "payment_failed",
        "t4": "refund_issued",
        "t5": "invoice_paid",
    }
    # Site time (Los Angeles, winter and summer) converted to UTC; the bad date is kept as text.
    assert events["occurred_at"].to_dict() == {
        "t1": "2026-01-19T19:16:41+00:00",
        "t3": "2026-07-19T18:00:00+00:00",
        "t4": "2026-07-20T15:00:00+00:00",
        "t5": "yesterday",
    }
    assert events.loc["t1", "amount"] == "99.95"


def test_the_hour_a_clock_turns_back_reads_as_the_abbreviation_names_it(tmp_path):
    """01:30 happens twice in Los Angeles on 2025-11-02: first as PDT (08:30 UTC), then as PST
    (09:30 UTC). Both read as the first, so the PST transaction was an hour early."""
    rows = [
        {**RECURLY_TRANSACTIONS[0], "transaction_id": tid, "date": date}
        for tid, date in (
            ("pdt", "2025-11-02 01:30:00 PDT"),
            ("pst", "2025-11-02 01:30:00 PST"),
            ("lower", "2025-11-02 01:30:00 pst"),  # strptime's literal ignores case too
            ("bare", "2025-11-02 01:30:00"),  # nothing says which: the first, as before
            ("after", "2025-11-02 02:30:00 PST"),
            ("skipped", "2025-03-09 02:30:00 PDT"),  # a time the clock skips: read as before
        )
    ]
    frame = pd.read_csv(write_csv(tmp_path / "tx.csv", rows), dtype=str)
    events = apply_mapping(frame, load_mapping(EXAMPLES / "recurly.toml")).events
    assert events.set_index("event_id")["occurred_at"].to_dict() == {
        "pdt": "2025-11-02T08:30:00+00:00",
        "pst": "2025-11-02T09:30:00+00:00",
        "lower": "2025-11-02T09:30:00+00:00",
        "bare": "2025-11-02T08:30:00+00:00",
        "after": "2025-11-02T10:30:00+00:00",
        "skipped": "2025-03-09T10:30:00+00:00",
    }


def test_recurly_export_quarantines_bad_rows_at_their_position(tmp_path):
    layout = StoreLayout(tmp_path / "home")
    path = write_csv(tmp_path / "tx.csv", RECURLY_TRANSACTIONS)
    with path.open("a") as out:
        out.write("acme,JJ,t6,purchase,5,0,USD,2026-01-01 00:00:00,success,ok,FALSE,surplus\r\n")
    converted = convert_export(path, load_mapping(EXAMPLES / "recurly.toml"))
    report = ingest_converted(layout, "billing", converted.rows, source_name=str(path))
    assert converted.skipped == {"type=authorization:success": 1}  # counted as the rows are read
    assert (report.received, report.accepted, report.quarantined) == (5, 3, 2)
    assert report.reasons == {"invalid_occurred_at": 1, "malformed_row": 1}


def test_a_value_left_in_the_exports_form_says_so_in_the_quarantine_and_its_export(tmp_path):
    """A quarantined row of a mapped export held converted values (UTC times, amounts in major
    units) beside the one that failed, still in the export's form: a local time, cents. Fixed
    and sent back as the docs say, without --mapping, a local time was read as UTC and cents as
    dollars (a new user's walkthrough). The row now says which values are as written."""
    layout = StoreLayout(tmp_path / "home")
    rules = {
        "stream": "billing",
        "columns": {
            "event_id": "id",
            "customer_id": "account",
            "currency": "currency",
            "type": {"constant": "invoice_paid"},
            "occurred_at": {
                "from": "at",
                "format": ["%Y-%m-%d %H:%M"],
                "timezone": "Europe/Berlin",
            },
            "amount": {"from": "cents", "minor_units": True},
        },
    }
    path = write_csv(
        tmp_path / "export.csv",
        [
            {
                "id": "e1",
                "account": "a",
                "currency": "EUR",
                "at": "2026-02-28 10:00",
                "cents": "2000",
            },
            {
                "id": "e2",
                "account": "a",
                "currency": "EUR",
                "at": "2026-02-30 10:00",
                "cents": "12,50",
            },
        ],
    )
    converted = convert_export(path, parse_mapping(rules))
    rows = list(converted.rows)
    assert "_as_written" not in rows[0]
    assert rows[1]["_as_written"].startswith(
        "occurred_at as the export wrote it (formats %Y-%m-%d %H:%M, local time in Europe/Berlin); "
        "amount as the export wrote it (in minor units of its currency): write the events "
        "contract's form"
    )
    report = ingest_converted(layout, "billing", rows, source_name=str(path))
    assert (report.accepted, report.quarantined, report.unknown_columns) == (1, 1, [])
    con = connect()
    quarantine.attach_catalog(con, layout)
    [row] = quarantine.list_rows(con)
    con.close()
    exported = quarantine.export_row(row)
    assert (exported["occurred_at"], exported["amount"]) == ("2026-02-30 10:00", "12,50")
    assert exported["_as_written"] == rows[1]["_as_written"]


def test_a_fraction_of_a_minor_unit_is_quarantined_not_stored(tmp_path):
    """ "1000.5" cents was stored as 10.005 USD, where Stripe's mapping quarantines the same
    value (a data engineer's review): a minor unit is the smallest there is."""
    layout = StoreLayout(tmp_path / "home")
    rules = {
        "stream": "billing",
        "columns": {
            "event_id": "id",
            "customer_id": "account",
            "currency": "currency",
            "type": {"constant": "invoice_paid"},
            "occurred_at": "at",
            "amount": {"from": "cents", "minor_units": True},
        },
    }
    rows = [
        {"id": "e1", "account": "a", "currency": "USD", "at": "2026-02-01", "cents": "1000"},
        {"id": "e2", "account": "a", "currency": "USD", "at": "2026-02-02", "cents": "1000.5"},
        {"id": "e3", "account": "a", "currency": "USD", "at": "2026-02-03", "cents": "1000.0"},
    ]
    path = write_csv(tmp_path / "export.csv", rows)
    converted = list(convert_export(path, parse_mapping(rules)).rows)
    report = ingest_converted(layout, "billing", converted, source_name=str(path))
    assert (report.accepted, report.quarantined) == (2, 1)
    assert report.reasons == {"invalid_amount": 1}
    # a price in cents may be fractional (a yearly price divided by twelve): MRR is kept
    from feature_store.mapping import ColumnRule, _number

    monthly = ColumnRule(sources=("mrr_in_cents",), minor_units=True)
    assert _number("833.25", monthly, "USD") == pytest.approx(8.3325)


def test_a_mappings_iso_format_reads_24_00_as_the_contract_does():
    """The events contract reads 24:00 as the next day's midnight; a mapping's "iso" format
    refused it (a review)."""
    from datetime import UTC, datetime

    from feature_store.mapping import _parse_instant

    assert _parse_instant("2026-12-01T24:00:00Z", "iso") == datetime(2026, 12, 2, tzinfo=UTC)
    assert _parse_instant("2026-12-01 24:00", "iso") == datetime(2026, 12, 2)
    assert _parse_instant("2026-12-01T24:30", "iso") is None


def test_an_export_mapped_in_batches_reads_as_in_one(tmp_path, monkeypatch):
    """The export is mapped a batch at a time (bounded memory): skipped rows, malformed lines
    between batches and after the last row keep their positions, and the counts are the same."""
    from feature_store import mapping as mapping_module

    rows = [{**RECURLY_TRANSACTIONS[i % 5], "transaction_id": f"t{i}"} for i in range(4500)]
    path = write_csv(tmp_path / "tx.csv", rows)
    with path.open(newline="") as handle:  # the writer's CRLF kept
        text = handle.readlines()
    surplus = "acme,JJ,x,purchase,5,0,USD,2026-01-01 00:00:00,success,ok,FALSE,surplus\r\n"
    text[2049:2049] = [surplus.replace("x", "x1")]  # at a batch's border
    path.write_text("".join([*text, surplus.replace("x", "x2"), surplus]), newline="")

    def ingested(vectors: int, home: str):
        monkeypatch.setattr(mapping_module, "EXPORT_BATCH_VECTORS", vectors)
        converted = convert_export(path, load_mapping(EXAMPLES / "recurly.toml"))
        layout = StoreLayout(tmp_path / home)
        report = ingest_converted(layout, "billing", converted.rows, source_name=str(path))
        con = connect()
        quarantine.attach_catalog(con, layout)
        rows = sorted((r.source_row, r.reason) for r in quarantine.list_rows(con))
        con.close()
        return report.as_dict(), dict(converted.skipped), rows

    batched, whole = ingested(1, "batches"), ingested(1000, "whole")
    assert batched == whole
    report, skipped, quarantined = batched
    assert report["received"] == 4500 - 900 + 3  # the authorizations are left out
    assert skipped == {"type=authorization:success": 900}
    assert [row for row, reason in quarantined if reason == "malformed_row"] == [2049, 4502, 4503]


MINIMAL = {
    "stream": "billing",
    "columns": {
        "event_id": "id",
        "customer_id": "account",
        "occurred_at": "at",
        "type": {"constant": "subscription_changed"},
        "plan": {"constant": "pro"},
        "interval": {"constant": "month"},
        "seats": "users",
        "mrr": {"from": "arr", "factor": 0.0833333333},
    },
}


def test_constants_and_factors():
    frame = pd.DataFrame({"id": ["1"], "account": ["a"], "at": ["2026-01-01"], "users": ["3"],
                          "arr": ["1200"]})  # fmt: skip
    events = apply_mapping(frame, parse_mapping(MINIMAL)).events
    assert events.loc[0, ["type", "plan", "interval"]].tolist() == [
        "subscription_changed",
        "pro",
        "month",
    ]
    assert events.loc[0, "mrr"] == pytest.approx(100.0)
    assert events.loc[0, "occurred_at"] == "2026-01-01T00:00:00+00:00"


def test_numbers_are_read_as_decimals_and_kept_as_text_when_they_are_not():
    """What an export writes as a number is read; "1/3" (which Fraction reads), a number past
    every float ("1e400": a traceback before) and an exponent of any size stay text, which the
    ingestion quarantines as invalid."""
    arr = ["1200", " 12.5e2 ", "1/3", "1e400", "1e999999999", "-.5"]
    frame = pd.DataFrame({"id": [str(i) for i in range(len(arr))], "account": "a",
                          "at": "2026-01-01", "users": "3", "arr": arr})  # fmt: skip
    mrr = apply_mapping(frame, parse_mapping(MINIMAL)).events["mrr"].tolist()
    assert mrr[:2] == [pytest.approx(100.0), pytest.approx(104.166666)]
    assert mrr[2:5] == ["1/3", "1e400", "1e999999999"]
    assert mrr[5] == pytest.approx(-0.5 / 12)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda m: m["columns"].pop("type"), "required column(s) type not mapped"),
        (
            lambda m: (m["columns"].pop("type"), m["columns"].pop("event_id")),
            "required column(s) event_id, type not mapped",
        ),
        (lambda m: m["columns"].update(colour="red"), "not billing column(s): colour"),
        (lambda m: m["columns"].update(mrr={"form": "arr"}), "unknown key(s) form"),
        (lambda m: m["columns"].update(mrr={"factor": 2}), "exactly one of from, join, constant"),
        (lambda m: m["columns"].update(occurred_at={"from": "at", "timezone": "Mars/Base"}),
         "unknown time zone"),
        (lambda m: m["columns"].update(plan={"from": "p", "format": "unix"}),
         "format applies to occurred_at only"),
        (lambda m: m.update(stream="orders"), "stream must be billing or usage"),
        # found by a hostile probe: tracebacks, a string read as true, typos read as defaults
        (lambda m: m["columns"].update(mrr={"from": "arr", "factor": float("nan")}),
         "factor must be a finite number other than 0"),
        (lambda m: m["columns"].update(mrr={"from": "arr", "factor": float("inf")}),
         "factor must be a finite number other than 0"),
        (lambda m: m["columns"].update(mrr={"from": []}), "from names no column"),
        (lambda m: m["columns"].update(type={"join": []}), "join names no column"),
        (lambda m: m["columns"].update(mrr={"from": "arr", "minor_units": "no"}),
         "minor_units must be true or false, not 'no'"),
        (lambda m: m["columns"].update(plan={"from": "p", "timezone": "UTC"}),
         "timezone applies to occurred_at only"),
        (lambda m: m.update(strem="usage"), "unknown key(s) strem (expected stream, columns)"),
    ],
)  # fmt: skip
def test_unusable_mappings_are_one_line_errors(change, message):
    mapping = {"stream": MINIMAL["stream"], "columns": dict(MINIMAL["columns"])}
    change(mapping)
    with pytest.raises(MappingError, match=r"^<mapping>: ") as raised:
        parse_mapping(mapping)
    assert message in str(raised.value)
    assert "\n" not in str(raised.value)


def test_an_export_lacking_mapped_columns_is_refused_naming_them():
    frame = pd.DataFrame({"id": ["1"], "at": ["2026-01-01"]})
    with pytest.raises(
        MappingError, match=r"lacks column\(s\) account, users, arr \(found: id, at\)"
    ):
        apply_mapping(frame, parse_mapping(MINIMAL))


def test_mapping_files_must_be_toml(tmp_path):
    path = tmp_path / "m.toml"
    path.write_text("columns = [")
    with pytest.raises(MappingError, match="not a valid TOML file"):
        load_mapping(path)
    with pytest.raises(MappingError, match="no such mapping file"):
        load_mapping(tmp_path / "absent.toml")
    with pytest.raises(MappingError, match="not a regular file"):
        load_mapping(tmp_path)
    huge = tmp_path / "huge.toml"
    huge.write_bytes(b"#" * 1_000_001)
    with pytest.raises(MappingError, match="1,000,001 bytes; a mapping file is a few lines"):
        load_mapping(huge)


def test_a_factor_taking_an_amount_past_every_number_is_invalid_not_the_raw_amount():
    mapping = {"stream": MINIMAL["stream"], "columns": dict(MINIMAL["columns"])}
    mapping["columns"]["mrr"] = {"from": "arr", "factor": 1e308}
    frame = pd.DataFrame({"id": ["1"], "account": ["a"], "at": ["2026-01-01"], "users": ["3"],
                          "arr": ["10.50"]})  # fmt: skip
    assert apply_mapping(frame, parse_mapping(mapping)).events["mrr"].tolist() == ["10.50 x 1e+308"]


def test_an_empty_cell_is_skipped_by_an_empty_string(tmp_path):
    """``skip = [""]`` leaves out the rows whose cell is empty (open subscriptions without an
    end date, say): an empty cell is None once cleaned, and the list matched nothing."""
    mapping = parse_mapping(
        {
            "stream": "usage",
            "columns": {
                "event_id": "id",
                "customer_id": "account",
                "occurred_at": {"from": "ended", "skip": [""]},
                "event": {"constant": "login"},
            },
        },
        origin="test.toml",
    )
    frame = pd.DataFrame(
        {
            "id": ["u1", "u2", "u3", "u4"],
            "account": ["a1", None, "a3", "a4"],
            "ended": ["2025-01-01T00:00:00Z", "2025-01-02T00:00:00Z", "", None],
        }
    )
    path = tmp_path / "usage.parquet"
    frame.to_parquet(path, index=False)
    converted = convert_export(path, mapping)
    rows = list(converted.rows)  # u3 and u4 skipped (None in their places), u2 lacks its id
    assert [row["customer_id"] if row else "skipped" for row in rows] == [
        "a1",
        None,
        "skipped",
        "skipped",
    ]
    assert dict(converted.skipped) == {"occurred_at=": 2}
