"""Stripe webhooks and events: signatures (checked against the official ``stripe`` library), the
mapping to canonical billing events for API versions before and after 2025-03-31 (basil), and
repeated or out-of-order delivery ending in the same stored events and features."""

from __future__ import annotations

import gzip
import json
import random
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import stripe as stripe_sdk

from feature_store import quarantine
from feature_store.converted import ingest_converted
from feature_store.engine import connect
from feature_store.errors import InputFileError
from feature_store.features import compute_features
from feature_store.layout import StoreLayout
from feature_store.offline_store import OfflineStore
from feature_store.stripe import (
    CanonicalBillingEvent,
    IgnoredEvent,
    MalformedSignatureHeaderError,
    MalformedStripeEventError,
    MissingSignatureHeaderError,
    NoMatchingSignatureError,
    NoV1SignatureError,
    TimestampOutsideToleranceError,
    compute_signature,
    convert_stripe_lines,
    import_stripe_export,
    invoice_subscription_id,
    map_event,
    parse_event,
    parse_webhook_secrets,
    verify_signature,
)
from feature_store.timeutil import parse_as_of

SECRET = "whsec_test_secret_one"
OLD_SECRET = "whsec_test_secret_zero"
NOW = 1_767_225_600  # 2026-01-01T00:00:00Z
PRE_BASIL, BASIL = "2024-06-20", "2025-03-31.basil"

# ------------------------------------------------------------------ Stripe-shaped objects
# Trimmed from the objects in Stripe's API reference (event, subscription, subscription item,
# price, invoice, charge), keeping every field the mapping reads plus the ones the 2025-03-31
# version moved, so that each version's shape is what the mapping sees.


def price(
    unit_amount: int | None = 2000,
    *,
    interval: str = "month",
    interval_count: int = 1,
    currency: str = "usd",
    nickname: str | None = "Team",
    usage_type: str = "licensed",
) -> dict[str, Any]:
    return {
        "id": f"price_{nickname or 'x'}_{interval}",
        "object": "price",
        "active": True,
        "billing_scheme": "per_unit" if unit_amount is not None else "tiered",
        "currency": currency,
        "lookup_key": None,
        "nickname": nickname,
        "product": "prod_Team",
        "recurring": {
            "interval": interval,
            "interval_count": interval_count,
            "usage_type": usage_type,
            "meter": None,
        },
        "type": "recurring",
        "unit_amount": unit_amount,
        "unit_amount_decimal": None if unit_amount is None else str(unit_amount),
    }


def item(version: str, the_price: dict[str, Any], quantity: int | None = 1) -> dict[str, Any]:
    shaped: dict[str, Any] = {
        "id": f"si_{the_price['id']}",
        "object": "subscription_item",
        "created": NOW - 86_400 * 400,
        "metadata": {},
        "price": the_price,
        "subscription": "sub_1",
    }
    if quantity is not None:
        shaped["quantity"] = quantity
    if version == BASIL:
        shaped["current_period_start"] = NOW - 86_400 * 10
        shaped["current_period_end"] = NOW + 86_400 * 20
    return shaped


def subscription(
    version: str,
    items: list[dict[str, Any]],
    *,
    customer: Any = "cus_A",
    status: str = "active",
    currency: str = "usd",
) -> dict[str, Any]:
    shaped: dict[str, Any] = {
        "id": "sub_1",
        "object": "subscription",
        "cancel_at_period_end": False,
        "created": NOW - 86_400 * 400,
        "currency": currency,
        "customer": customer,
        "items": {
            "object": "list",
            "data": items,
            "has_more": False,
            "url": "/v1/subscription_items",
        },
        "livemode": False,
        "status": status,
    }
    if version != BASIL:
        shaped["current_period_start"] = NOW - 86_400 * 10
        shaped["current_period_end"] = NOW + 86_400 * 20
    return shaped


def invoice(
    version: str, *, paid: int = 6000, due: int = 6000, remaining: int = 0, currency: str = "usd"
) -> dict[str, Any]:
    shaped: dict[str, Any] = {
        "id": "in_1",
        "object": "invoice",
        "amount_due": due,
        "amount_paid": paid,
        "amount_remaining": remaining,
        "currency": currency,
        "customer": "cus_A",
        "status": "paid" if remaining == 0 else "open",
    }
    if version == BASIL:
        shaped["parent"] = {
            "type": "subscription_details",
            "quote_details": None,
            "subscription_details": {"metadata": {}, "subscription": "sub_1"},
        }
    else:
        shaped["subscription"] = "sub_1"
        shaped["charge"] = "ch_1"
    return shaped


def charge(*, amount: int = 6000, refunded: int = 6000, customer: str | None = "cus_A") -> dict:
    return {
        "id": "ch_1",
        "object": "charge",
        "amount": amount,
        "amount_captured": amount,
        "amount_refunded": refunded,
        "currency": "usd",
        "customer": customer,
        "paid": True,
        "refunded": refunded == amount,
        "status": "succeeded",
    }


def event(
    event_id: str,
    stripe_type: str,
    stripe_object: dict[str, Any],
    *,
    created: int = NOW,
    version: str = PRE_BASIL,
    previous: dict[str, Any] | None = None,
) -> dict[str, Any]:
    data: dict[str, Any] = {"object": stripe_object}
    if previous is not None:
        data["previous_attributes"] = previous
    return {
        "id": event_id,
        "object": "event",
        "api_version": version,
        "created": created,
        "data": data,
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": stripe_type,
    }


def iso(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat()


# ------------------------------------------------------------------ signatures


def body(payload: dict[str, Any]) -> bytes:
    # Stripe pretty-prints its bodies; the signature covers these exact bytes.
    return json.dumps(payload, indent=2).encode()


@pytest.fixture
def payload() -> bytes:
    return body(event("evt_sig", "invoice.paid", invoice(BASIL)))


def test_stripe_library_header_verifies(payload):
    header = stripe_sdk.WebhookSignature.generate_signature_header(
        payload.decode(), SECRET, timestamp=NOW
    )
    assert verify_signature(payload, header, [SECRET], now=NOW) == NOW


def test_our_signature_is_accepted_by_the_stripe_library(payload):
    header = f"t={NOW},v1={compute_signature(payload, NOW, SECRET)}"
    event = stripe_sdk.Webhook.construct_event(payload, header, SECRET, tolerance=None)
    assert event["id"] == "evt_sig"
    assert stripe_sdk.WebhookSignature.verify_header(payload, header, SECRET)


def test_any_of_several_v1_signatures_and_any_configured_secret_verifies(payload):
    forged = "0" * 64
    header = f"t={NOW},v1={forged},v1={compute_signature(payload, NOW, OLD_SECRET)},v0=abc"
    verify_signature(payload, header, [SECRET, OLD_SECRET], now=NOW)
    with pytest.raises(NoMatchingSignatureError):
        verify_signature(payload, header, [SECRET], now=NOW)


@pytest.mark.parametrize(
    ("header", "error", "reason"),
    [
        (None, MissingSignatureHeaderError, "missing_signature_header"),
        ("  ", MissingSignatureHeaderError, "missing_signature_header"),
        ("garbage", MalformedSignatureHeaderError, "malformed_signature_header"),
        ("t=soon,v1=abc", MalformedSignatureHeaderError, "malformed_signature_header"),
        (f"t={NOW},t={NOW},v1=abc", MalformedSignatureHeaderError, "malformed_signature_header"),
        (f"v1={'0' * 64}", MalformedSignatureHeaderError, "malformed_signature_header"),
        # not ASCII digits, or more than int() reads: both were a 500
        ("t=\u00b2,v1=abc", MalformedSignatureHeaderError, "malformed_signature_header"),
        (f"t={'9' * 5000},v1=abc", MalformedSignatureHeaderError, "malformed_signature_header"),
        (f"t={NOW},v0=abc", NoV1SignatureError, "no_v1_signature"),
        (f"t={NOW},v1={'0' * 64}", NoMatchingSignatureError, "no_matching_signature"),
    ],
)
def test_bad_headers_are_refused_with_a_reason(payload, header, error, reason):
    with pytest.raises(error) as raised:
        verify_signature(payload, header, [SECRET], now=NOW)
    assert raised.value.reason == reason


@pytest.mark.parametrize("skew", [-301, 301, -3600, 86_400])
def test_stale_and_future_timestamps_are_refused(payload, skew):
    header = stripe_sdk.WebhookSignature.generate_signature_header(
        payload.decode(), SECRET, timestamp=NOW + skew
    )
    with pytest.raises(TimestampOutsideToleranceError) as raised:
        verify_signature(payload, header, [SECRET], now=NOW)
    assert raised.value.reason == "timestamp_outside_tolerance"
    # it says which way: a delivery signed before now is old, not "from now"
    said = f"{abs(skew)} s old" if skew < 0 else f"{skew} s in the future"
    assert said in str(raised.value), str(raised.value)


@pytest.mark.parametrize("skew", [-300, 0, 300])
def test_timestamps_within_five_minutes_either_way_are_accepted(payload, skew):
    header = f"t={NOW + skew},v1={compute_signature(payload, NOW + skew, SECRET)}"
    verify_signature(payload, header, [SECRET], now=NOW)


def test_the_signature_covers_the_raw_bytes_not_the_parsed_json(payload):
    header = f"t={NOW},v1={compute_signature(payload, NOW, SECRET)}"
    reserialized = json.dumps(json.loads(payload)).encode()  # same JSON, other bytes
    with pytest.raises(NoMatchingSignatureError):
        verify_signature(reserialized, header, [SECRET], now=NOW)
    with pytest.raises(stripe_sdk.SignatureVerificationError):
        stripe_sdk.WebhookSignature.verify_header(reserialized, header, SECRET)
    non_ascii = '{"id": "evt_é"}\n'.encode()
    header = f"t={NOW},v1={compute_signature(non_ascii, NOW, SECRET)}"
    verify_signature(non_ascii, header, [SECRET], now=NOW)
    assert stripe_sdk.WebhookSignature.verify_header(non_ascii, header, SECRET)


def test_secrets_come_comma_separated_and_none_configured_is_not_a_client_error():
    assert parse_webhook_secrets(" whsec_a, whsec_b ,,") == ("whsec_a", "whsec_b")
    assert parse_webhook_secrets(None) == ()
    with pytest.raises(ValueError, match="no Stripe webhook secret"):
        verify_signature(b"{}", f"t={NOW},v1=abc", [], now=NOW)


# ------------------------------------------------------------------ mapping


@pytest.mark.parametrize("version", [PRE_BASIL, BASIL])
def test_subscription_created_maps_to_started_in_both_api_versions(version):
    sub = subscription(version, [item(version, price(2000), quantity=3)])
    mapped = map_event(event("evt_1", "customer.subscription.created", sub, version=version))
    assert mapped == CanonicalBillingEvent(
        event_id="evt_1",
        customer_id="cus_A",
        occurred_at=iso(NOW),
        type="subscription_started",
        plan="Team",
        interval="month",
        seats=3,
        mrr=60.0,
        currency="USD",
        subscription_id="sub_1",
    )


@pytest.mark.parametrize("version", [PRE_BASIL, BASIL])
@pytest.mark.parametrize(
    ("prices", "quantities", "mrr", "interval"),
    [
        ([price(120_000, interval="year")], [1], 100.0, "year"),
        ([price(1000, interval="week")], [1], 10 * 52 / 12, "month"),
        ([price(100, interval="day")], [2], 2 * 365 / 12, "month"),
        ([price(30_000, interval="month", interval_count=3)], [1], 100.0, "month"),
        ([price(12_000, interval="year", interval_count=2)], [5], 25.0, "year"),
        ([price(2000), price(500, nickname="Add-on")], [3, 4], 80.0, "month"),
        # items billed on different cycles: the interval of the one bringing the most MRR
        ([price(120_000, interval="year"), price(500, nickname="Add-on")], [1, 2], 110.0, "year"),
        ([price(12_000, interval="year"), price(2000, nickname="Add-on")], [1, 2], 50.0, "month"),
        (
            [price(2000), price(None, nickname="Usage", usage_type="metered")],
            [2, None],
            40.0,
            "month",
        ),
    ],
)
def test_mrr_is_quantity_times_unit_amount_per_month_over_licensed_items(
    version, prices, quantities, mrr, interval
):
    items = [item(version, p, q) for p, q in zip(prices, quantities, strict=True)]
    mapped = map_event(event("e", "customer.subscription.updated", subscription(version, items)))
    assert mapped.type == "subscription_changed"
    assert mapped.mrr == pytest.approx(mrr)
    assert mapped.interval == interval
    assert mapped.seats == sum(q for p, q in zip(prices, quantities, strict=True) if q)


@pytest.mark.parametrize(
    ("quantity", "written"), [("3", '"3"'), (1e40, "a number"), (True, "true"), (2.5, "2.5")]
)
def test_a_quantity_no_account_has_is_invalid_seats_showing_it(tmp_path, quantity, written):
    """It was left empty, so quarantined as missing_seats, which hid what the event sent."""
    sub = subscription(PRE_BASIL, [item(PRE_BASIL, price(2000), quantity)])
    mapped = map_event(event("e1", "customer.subscription.created", sub))
    assert mapped.seats == written
    whole = subscription(PRE_BASIL, [item(PRE_BASIL, price(2000), 3.0)])  # 3.0 is three seats
    assert map_event(event("e2", "customer.subscription.created", whole)).seats == 3
    lines = [event("e1", "customer.subscription.created", sub)]
    _, report = ingest_export(
        StoreLayout(tmp_path / "home"), write_jsonl(tmp_path / "odd.jsonl", lines)
    )
    assert (report.quarantined, next(iter(report.reasons))) == (1, "invalid_seats")


@pytest.mark.parametrize("version", [PRE_BASIL, BASIL])
def test_a_subscription_billed_by_usage_alone_starts_and_ends_with_no_seats_or_mrr(
    version, tmp_path
):
    """Every item metered: read from licensed items only, it had no plan and was quarantined as
    missing_plan, so its customer never started or churned."""
    metered = [
        item(version, price(None, nickname="API calls", usage_type="metered"), None),
        item(version, price(None, nickname="Storage", interval="year", usage_type="metered"), None),
    ]
    started = map_event(
        event("e1", "customer.subscription.created", subscription(version, metered))
    )
    assert (started.type, started.plan, started.interval) == (
        "subscription_started",
        "API calls + Storage",
        "month",
    )
    assert (started.seats, started.mrr) == (0, 0.0)
    ended = map_event(event("e2", "customer.subscription.deleted", subscription(version, metered)))
    assert (ended.type, ended.seats, ended.mrr) == ("subscription_canceled", 0, 0.0)
    # and the ingestion takes both: nothing quarantined
    lines = [
        event("e1", "customer.subscription.created", subscription(version, metered)),
        event("e2", "customer.subscription.deleted", subscription(version, metered)),
    ]
    _, report = ingest_export(
        StoreLayout(tmp_path / "home"), write_jsonl(tmp_path / "metered.jsonl", lines)
    )
    assert (report.accepted, report.quarantined) == (2, 0)
    # beside a licensed item, metered ones still count for nothing
    both = [item(version, price(2000), 3), *metered]
    changed = map_event(event("e3", "customer.subscription.updated", subscription(version, both)))
    assert (changed.plan, changed.seats, changed.mrr) == ("Team", 3, pytest.approx(60.0))


@pytest.mark.parametrize(
    ("currency", "unit_amount", "mrr"),
    [("jpy", 5000, 5000.0), ("krw", 9900, 9900.0), ("kwd", 12_345, 12.345), ("usd", 1999, 19.99)],
)
def test_amounts_follow_the_currency_minor_unit(currency, unit_amount, mrr):
    items = [item(PRE_BASIL, price(unit_amount, currency=currency))]
    sub = subscription(PRE_BASIL, items, currency=currency)
    mapped = map_event(event("e", "customer.subscription.created", sub))
    assert (mapped.mrr, mapped.currency) == (pytest.approx(mrr), currency.upper())
    paid = map_event(
        event("p", "invoice.paid", invoice(BASIL, paid=unit_amount, currency=currency))
    )
    assert paid.amount == pytest.approx(mrr)


def test_legacy_plan_items_and_expanded_customers_are_read():
    legacy = {
        "id": "si_legacy",
        "object": "subscription_item",
        "plan": {"id": "gold", "amount": 120_000, "interval": "year", "interval_count": 1,
                 "nickname": "Gold", "currency": "eur", "usage_type": "licensed"},
        "quantity": 2,
    }  # fmt: skip
    sub = subscription(PRE_BASIL, [legacy], customer={"id": "cus_X", "object": "customer"})
    sub["currency"] = None
    mapped = map_event(event("e", "customer.subscription.created", sub))
    assert (mapped.customer_id, mapped.plan, mapped.mrr, mapped.currency) == (
        "cus_X",
        "Gold",
        200.0,
        "EUR",
    )


def test_deleted_subscription_is_a_cancellation_with_zero_mrr():
    sub = subscription(BASIL, [item(BASIL, price(2000), 3)], status="canceled")
    mapped = map_event(event("e", "customer.subscription.deleted", sub, version=BASIL))
    assert (mapped.type, mapped.mrr, mapped.seats, mapped.plan) == (
        "subscription_canceled",
        0.0,
        0,
        "Team",
    )


@pytest.mark.parametrize(
    ("status", "kind", "mrr"),
    [
        ("active", "subscription_changed", 60.0),
        ("past_due", "subscription_changed", 60.0),  # still billed, a payment late
        ("trialing", "subscription_changed", 0.0),  # a trial pays nothing yet
        ("incomplete", "subscription_changed", 0.0),  # its first payment is still owed
        ("paused", "subscription_changed", 0.0),
        ("incomplete_expired", "subscription_canceled", 0.0),  # ended without ever paying
    ],
)
def test_a_subscription_that_bills_nothing_has_no_mrr(status, kind, mrr):
    """A trial at list price would be a paying customer, and churn with lost MRR when it never
    converts: Stripe's status says whether the subscription bills."""
    sub = subscription(BASIL, [item(BASIL, price(2000), 3)], status=status)
    mapped = map_event(event("e", "customer.subscription.updated", sub, version=BASIL))
    assert (mapped.type, mapped.mrr, mapped.plan) == (kind, mrr, "Team")
    assert mapped.seats == (0 if kind == "subscription_canceled" else 3)


def test_an_export_counts_the_customers_with_several_subscriptions():
    """A customer with a plan and an add-on has two subscriptions live at once; the import says
    how many such customers there are (their MRR and seats are summed: the next test)."""
    first = subscription(BASIL, [item(BASIL, price(2000), 3)])
    add_on = {**subscription(BASIL, [item(BASIL, price(500, nickname="Add-on"))]), "id": "sub_2"}
    other = subscription(BASIL, [item(BASIL, price(2000))], customer="cus_B")
    lines = [
        json.dumps(event(f"e{n}", kind, sub, version=BASIL))
        for n, (kind, sub) in enumerate(
            [
                ("customer.subscription.created", first),
                ("customer.subscription.created", add_on),
                ("customer.subscription.updated", first),
                ("customer.subscription.created", other),
            ]
        )
    ]
    # one subscription after another is read right: cancelled, then a new one
    old = {**subscription(BASIL, [item(BASIL, price(2000))], customer="cus_C"), "id": "sub_3"}
    new = {**subscription(BASIL, [item(BASIL, price(3000))], customer="cus_C"), "id": "sub_4"}
    lines += [
        json.dumps(event(f"c{day}", kind, sub, version=BASIL, created=NOW + day * 86_400))
        for kind, sub, day in [
            ("customer.subscription.created", old, 0),
            ("customer.subscription.deleted", {**old, "status": "canceled"}, 10),
            ("customer.subscription.created", new, 20),
        ]
    ]
    imported = convert_stripe_lines(lines, Path("export.jsonl"))
    assert imported.several_subscriptions == 1  # cus_A; cus_B has one, cus_C one at a time
    assert imported.as_dict()["customers_with_several_subscriptions"] == 1


def test_a_plan_and_an_add_on_are_summed_and_ending_one_is_a_contraction_not_churn(tmp_path):
    """Stripe bills a plan and an add-on as two subscriptions. Each canonical event names its
    subscription, so the customer pays for both, ending the add-on is a contraction, and the
    customer has churned only when both have ended."""
    from feature_store.features import cancellation_times

    plan = subscription(BASIL, [item(BASIL, price(2000), 3)])  # sub_1: 3 seats at 20.00
    add_on = {**subscription(BASIL, [item(BASIL, price(500, nickname="Add-on"))]), "id": "sub_2"}
    day = 86_400
    events = [
        event("e1", "customer.subscription.created", plan, version=BASIL, created=NOW - 100 * day),
        event("e2", "customer.subscription.created", add_on, version=BASIL, created=NOW - 50 * day),
        event(
            "e3",
            "customer.subscription.deleted",
            {**add_on, "status": "canceled"},
            version=BASIL,
            created=NOW - 10 * day,
        ),
        event(
            "e4",
            "customer.subscription.deleted",
            {**plan, "status": "canceled"},
            version=BASIL,
            created=NOW + 10 * day,
        ),
    ]
    layout = StoreLayout(tmp_path / "home")
    imported, report = ingest_export(layout, write_jsonl(tmp_path / "export.jsonl", events))
    assert (report.accepted, imported.several_subscriptions) == (4, 1)

    def features_as_of(days: int) -> pd.Series:
        con = connect(threads=1)
        try:
            OfflineStore(layout).register_views(con)
            instant = datetime.fromtimestamp(NOW + days * day, UTC).replace(tzinfo=None)
            table = compute_features(con, instant).set_index("customer_id")
            gone = cancellation_times(con, instant)
        finally:
            con.close()
        row = table.loc["cus_A"]
        assert ("cus_A" in gone) == bool(row["is_canceled"])
        return row

    both = features_as_of(-20)
    assert (both["mrr"], both["seats"], both["is_canceled"]) == (65.0, 4, 0)
    assert (both["expansions_365d"], both["contractions_365d"]) == (1, 0)  # the add-on
    plan_only = features_as_of(0)
    assert (plan_only["mrr"], plan_only["seats"], plan_only["is_canceled"]) == (60.0, 3, 0)
    assert (plan_only["expansions_365d"], plan_only["contractions_365d"]) == (1, 1)
    assert plan_only["mrr_growth_90d"] == 0.0  # 60 before the add-on, 60 after it ended
    ended = features_as_of(20)
    assert (ended["mrr"], ended["seats"], ended["is_canceled"]) == (0.0, 0, 1)
    assert ended["contractions_365d"] == 1  # the end of the last one is churn, not a contraction


def test_a_trial_that_starts_paying_is_a_start_not_an_expansion():
    """From trialing (MRR 0) to active: the paying subscription starts, so expansions and MRR
    growth do not count every converted trial."""
    sub = subscription(BASIL, [item(BASIL, price(2000), 3)])
    converted = event(
        "e", "customer.subscription.updated", sub, version=BASIL, previous={"status": "trialing"}
    )
    mapped = map_event(converted)
    assert (mapped.type, mapped.mrr) == ("subscription_started", 60.0)
    # any other change of an active subscription stays a change
    changed = event("e2", "customer.subscription.updated", sub, version=BASIL, previous={})
    assert map_event(changed).type == "subscription_changed"


def test_a_paused_subscription_bills_nothing_and_its_resumption_is_a_start():
    """Stripe's pause of a whole subscription: MRR 0 while paused (not a cancellation: seats and
    plan kept); resumed and billing, the paying subscription starts again, as a converted trial
    does, rather than counting an expansion from 0."""
    paused = subscription(BASIL, [item(BASIL, price(2000), 3)], status="paused")
    mapped = map_event(event("p", "customer.subscription.paused", paused, version=BASIL))
    assert (mapped.type, mapped.mrr, mapped.seats, mapped.subscription_id) == (
        "subscription_changed",
        0.0,
        3,
        "sub_1",
    )
    active = subscription(BASIL, [item(BASIL, price(2000), 3)])
    resumed = map_event(event("r", "customer.subscription.resumed", active, version=BASIL))
    assert (resumed.type, resumed.mrr) == ("subscription_started", 60.0)
    # resumed on payment success: still paused until the payment goes through
    waiting = map_event(event("w", "customer.subscription.resumed", paused, version=BASIL))
    assert (waiting.type, waiting.mrr) == ("subscription_changed", 0.0)


def test_tiered_prices_leave_mrr_empty_for_the_quarantine():
    sub = subscription(PRE_BASIL, [item(PRE_BASIL, price(None), 3)])
    assert map_event(event("e", "customer.subscription.created", sub)).mrr is None


@pytest.mark.parametrize("version", [PRE_BASIL, BASIL])
def test_invoices_map_in_both_api_versions(version):
    paid = map_event(event("p", "invoice.paid", invoice(version, paid=6000), version=version))
    assert (paid.type, paid.amount, paid.currency, paid.customer_id, paid.subscription_id) == (
        "invoice_paid",
        60.0,
        "USD",
        "cus_A",
        "sub_1",
    )
    failed_invoice = invoice(version, paid=0, due=6000, remaining=6000)
    failed = map_event(event("f", "invoice.payment_failed", failed_invoice, version=version))
    assert (failed.type, failed.amount) == ("payment_failed", 60.0)
    assert invoice_subscription_id(invoice(version)) == "sub_1"


def test_zero_amount_invoices_and_unknown_types_are_ignored_not_errors():
    trial = map_event(event("t", "invoice.paid", invoice(BASIL, paid=0, due=0)))
    assert trial == IgnoredEvent("t", "invoice.paid", "zero_amount")
    other = map_event(event("o", "customer.created", {"id": "cus_A", "object": "customer"}))
    assert other == IgnoredEvent("o", "customer.created", "unhandled_type")


def test_a_refund_is_the_money_this_event_returned():
    first = event("r1", "charge.refunded", charge(refunded=2000), previous={"amount_refunded": 0})
    second = event(
        "r2", "charge.refunded", charge(refunded=6000), previous={"amount_refunded": 2000}
    )
    without_previous = event("r3", "charge.refunded", charge(refunded=6000))
    assert [map_event(e).amount for e in (first, second, without_previous)] == [20.0, 40.0, 60.0]
    assert map_event(first).type == "refund_issued"


def test_numbers_no_account_has_are_left_for_validation_not_computed():
    """An instant outside the years 1970-9999, a decimal price of a million digits, quantities
    and amounts past 10^16 minor units: each is left out of any arithmetic (they were a 500 on
    the webhook). An instant or an amount is kept as the event wrote it, so the ingestion's
    validation says it is invalid, not missing, as is a quantity (seats); MRR summed from items
    stays empty."""
    team = subscription(PRE_BASIL, [item(PRE_BASIL, price(2000), 3)])
    for created, written in ((10**20, "100000000000000000000"), (-(10**15), "-1000000000000000"),
                             (253_402_300_800, "253402300800"), ("soon", '"soon"')):  # fmt: skip
        assert (
            map_event(event("e", "invoice.paid", invoice(PRE_BASIL), created=created)).occurred_at
            == written
        )
    assert (
        map_event(
            event("e", "invoice.paid", invoice(PRE_BASIL), created=253_402_300_799)
        ).occurred_at
        == "9999-12-31T23:59:59+00:00"
    )
    huge_price = {**price(2000), "unit_amount_decimal": "1e999999", "unit_amount": 10**30}
    priced = subscription(PRE_BASIL, [item(PRE_BASIL, huge_price, 3)])
    assert map_event(event("e", "customer.subscription.created", priced)).mrr is None
    crowded = subscription(PRE_BASIL, [item(PRE_BASIL, price(2000), 10**30)])
    assert map_event(event("e", "customer.subscription.created", crowded)).seats == "a number"
    assert map_event(event("e", "customer.subscription.created", team)).mrr == 60.0
    rich = invoice(PRE_BASIL, paid=10**30)
    assert map_event(event("e", "invoice.paid", rich)).amount == "a number"
    assert map_event(event("e", "invoice.paid", invoice(PRE_BASIL, paid=10**17))).amount == (
        "100000000000000000"
    )


def test_amounts_written_as_floats_are_minor_units_or_quarantined():
    """An export re-serialised by pandas writes 1234 cents as 1234.0: it was stored as 1234
    dollars. A fraction of a minor unit (12.5) was stored as 12.50; it is no amount Stripe
    writes. A refund's previous total as a float was ignored."""
    whole = map_event(event("w", "invoice.paid", {**invoice(BASIL), "amount_paid": 1234.0}))
    assert whole.amount == 12.34
    part = map_event(event("p", "invoice.paid", {**invoice(BASIL), "amount_paid": 12.5}))
    assert part.amount == "12.5 (not a whole number of minor units)"
    refund = event(
        "r", "charge.refunded", charge(amount=1000, refunded=1000),
        previous={"amount_refunded": 400.0},
    )  # fmt: skip
    assert map_event(refund).amount == 6.0


@pytest.mark.parametrize(
    ("quantities", "unit", "count", "mrr"),
    [
        ((10, -8), 1000, 1, None),  # a negative quantity offset another item's
        ((1,), -1000, 1, None),  # a negative price
        ((1,), 1200, 0, None),  # interval_count 0 read as 1
        ((1,), 1200, True, None),
        ((1,), 1200, 2, 6.0),  # every two months: half a month's price per month
    ],
)
def test_item_numbers_no_price_has_leave_mrr_empty(quantities, unit, count, mrr):
    """Each was summed as if valid: seats 2 and MRR 20 from quantities 10 and -8, a yearly
    12.00 price with interval_count 0 as MRR 1.00."""
    items = [item(PRE_BASIL, price(unit, interval_count=count), q) for q in quantities]
    sub = subscription(PRE_BASIL, items)
    mapped = map_event(event("e", "customer.subscription.created", sub))
    assert mapped.mrr == (None if mrr is None else pytest.approx(mrr))


def test_a_malformed_instant_or_amount_is_quarantined_as_invalid_not_missing(tmp_path):
    """They were quarantined as missing_occurred_at and missing_amount, hiding what was sent."""
    layout = StoreLayout(tmp_path / "home")
    lines = [
        json.dumps(event("e1", "invoice.paid", invoice(PRE_BASIL), created=-5)),
        json.dumps(event("e2", "invoice.paid", invoice(PRE_BASIL, paid=10**17))),
    ]
    _, report = ingest_export(layout, write_jsonl(tmp_path / "bad.jsonl", lines))
    assert report.reasons == {"invalid_occurred_at": 1, "invalid_amount": 1}


def test_a_body_nested_thousands_deep_is_malformed():
    with pytest.raises(MalformedStripeEventError):
        parse_event(b"[" * 5000 + b"]" * 5000)


@pytest.mark.parametrize(
    "text", ["not json", "[1, 2]", '{"id": "evt_1"}', '{"id": "e", "type": "invoice.paid"}']
)
def test_objects_that_are_not_stripe_events_are_malformed(text):
    with pytest.raises(MalformedStripeEventError):
        map_event(parse_event(text.encode()))


# ------------------------------------------------------------------ delivery and ingestion


def history(version: str) -> list[dict[str, Any]]:
    """Two customers' year: start, upgrade, invoices, a failed payment, refunds, a cancellation."""
    day = 86_400
    start = NOW - 200 * day
    a_team = subscription(version, [item(version, price(2000), 3)])
    a_more = subscription(version, [item(version, price(2000), 5)])
    b_year = subscription(
        version, [item(version, price(120_000, interval="year"), 1)], customer="cus_B"
    )
    b_year["id"] = "sub_2"
    b_gone = dict(b_year, status="canceled")
    failed = dict(invoice(version, paid=0, due=10_000, remaining=10_000), customer="cus_A")
    return [
        event("evt_a1", "customer.subscription.created", a_team, created=start, version=version),
        event("evt_a2", "invoice.paid", invoice(version, paid=6000), created=start + 60, version=version),
        event("evt_a3", "customer.subscription.updated", a_more, created=start + 40 * day, version=version),
        event("evt_a4", "invoice.payment_failed", failed, created=start + 70 * day, version=version),
        event("evt_a5", "invoice.paid", invoice(version, paid=10_000), created=start + 72 * day, version=version),
        event("evt_a6", "charge.refunded", charge(refunded=1000), created=start + 80 * day, version=version,
              previous={"amount_refunded": 0}),
        event("evt_a7", "charge.refunded", charge(refunded=2500), created=start + 81 * day, version=version,
              previous={"amount_refunded": 1000}),
        event("evt_b1", "customer.subscription.created", b_year, created=start + 5 * day, version=version),
        event("evt_b2", "invoice.paid", dict(invoice(version, paid=120_000), customer="cus_B"),
              created=start + 5 * day + 30, version=version),
        event("evt_b3", "customer.subscription.deleted", b_gone, created=start + 150 * day, version=version),
        event("evt_x1", "customer.updated", {"id": "cus_A", "object": "customer"}, created=start + 9 * day),
        event("evt_x2", "invoice.paid", invoice(version, paid=0, due=0), created=start + 10 * day),
    ]  # fmt: skip


def write_jsonl(path: Path, events: list[Any]) -> Path:
    lines = [e if isinstance(e, str) else json.dumps(e) for e in events]
    path.write_text("\n".join(lines) + "\n")
    return path


def stored(layout: StoreLayout) -> tuple[pd.DataFrame, pd.DataFrame]:
    con = connect(threads=1)
    try:
        store = OfflineStore(layout)
        events = con.execute(f"{store.events_sql('billing')} ORDER BY event_id").df()
        store.register_views(con)
        features = compute_features(con, parse_as_of("2026-01-01"))
    finally:
        con.close()
    return events, features


def ingest_export(layout: StoreLayout, path: Path):
    imported, report = import_stripe_export(layout, path)
    assert report.received == report.accepted + report.duplicates + report.quarantined
    return imported, report


def test_repeated_and_out_of_order_delivery_gives_the_same_events_and_features(tmp_path):
    # One API version suffices: the next test shows both versions store the same events.
    events = history(BASIL)
    in_order = StoreLayout(tmp_path / "in-order")
    imported, report = ingest_export(in_order, write_jsonl(tmp_path / "once.jsonl", events))
    assert (imported.mapped, report.accepted, report.quarantined) == (10, 10, 0)
    assert imported.ignored == {"customer.updated": 1, "invoice.paid": 1}

    messy = StoreLayout(tmp_path / "messy")
    shuffled = random.Random(5)
    # Every event three times: a shuffled export, then the webhook delivering one event at a
    # time, newest first (every event before its predecessor), then the export once more.
    first = shuffled.sample(events, len(events))
    ingest_export(messy, write_jsonl(tmp_path / "shuffled.jsonl", first))
    for one in sorted(events, key=lambda e: e["created"], reverse=True):
        outcome = map_event(parse_event(body(one)))
        if isinstance(outcome, CanonicalBillingEvent):
            report = ingest_converted(messy, "billing", [outcome.as_row()], source_name="webhook")
            assert (report.accepted, report.duplicates) == (0, 1)
    _, again = ingest_export(messy, write_jsonl(tmp_path / "again.jsonl", events[::-1]))
    assert (again.accepted, again.duplicates, again.quarantined) == (0, 10, 0)

    expected_events, expected_features = stored(in_order)
    actual_events, actual_features = stored(messy)
    pd.testing.assert_frame_equal(actual_events, expected_events)
    pd.testing.assert_frame_equal(actual_features, expected_features)
    a = expected_features.set_index("customer_id").loc["cus_A"]
    b = expected_features.set_index("customer_id").loc["cus_B"]
    assert a["mrr"] == pytest.approx(100.0)
    assert a["ltv"] == pytest.approx(60 + 100 - 25)
    assert b["mrr"] == 0


def test_both_api_versions_store_the_same_events(tmp_path):
    layouts = {}
    for version in (PRE_BASIL, BASIL):
        layouts[version] = StoreLayout(tmp_path / version)
        ingest_export(
            layouts[version], write_jsonl(tmp_path / f"{version}.jsonl", history(version))
        )
    pd.testing.assert_frame_equal(stored(layouts[PRE_BASIL])[0], stored(layouts[BASIL])[0])


def test_bad_lines_of_an_export_are_quarantined_at_their_line(tmp_path):
    layout = StoreLayout(tmp_path / "home")
    no_customer = event("evt_nc", "charge.refunded", charge(customer=None))
    lines = [history(BASIL)[0], "this is not json", no_customer, '{"id": "evt_1"}']
    imported, report = ingest_export(layout, write_jsonl(tmp_path / "export.jsonl", lines))
    assert (imported.mapped, imported.malformed) == (2, 2)
    assert (report.received, report.accepted, report.quarantined) == (4, 1, 3)
    assert report.reasons == {"malformed_row": 2, "missing_customer_id": 1}
    con = connect(threads=1)
    try:
        quarantine.attach_catalog(con, layout)
        rows = {row.source_row: row for row in quarantine.list_rows(con)}
    finally:
        con.close()
    assert sorted(rows) == [2, 3, 4]
    assert rows[2].raw == {"_raw_line": "this is not json"}
    assert (rows[3].event_id, rows[3].reason) == ("evt_nc", "missing_customer_id")
    # the export's own name: the converted file was a temporary one, gone once ingested
    assert rows[3].source_file == f"{tmp_path / 'export.jsonl'}.canonical.jsonl"
    assert report.source_file == rows[3].source_file


def test_an_export_of_no_event_lines_is_refused_whole(tmp_path):
    """`stripe events list` prints one list object over many lines: no line of it is an event.
    It was quarantined line by line, and refused as a temporary file's "no known column"."""
    layout = StoreLayout(tmp_path / "home")
    listing = tmp_path / "list.json.jsonl"
    listing.write_text(json.dumps({"object": "list", "data": history(BASIL)[:2]}, indent=2))
    with pytest.raises(
        InputFileError,
        match=r"list.json.jsonl: none of its .* rows that could be events can be read: ",
    ):
        import_stripe_export(layout, listing)
    with pytest.raises(InputFileError, match=r"jq -c '.data\[\]'"):
        import_stripe_export(layout, listing)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(InputFileError, match=r"empty\.jsonl: the file is empty"):
        import_stripe_export(layout, empty)
    blank = tmp_path / "blank.jsonl.gz"
    with gzip.open(blank, "wt") as out:
        out.write("\n\n")
    with pytest.raises(InputFileError, match=r"blank\.jsonl\.gz: holds no Stripe event"):
        import_stripe_export(layout, blank)
    assert not layout.events_dir.exists()  # nothing stored, nothing quarantined


def test_a_malformed_line_beside_ignored_events_is_refused_saying_what_was_left_out(tmp_path):
    """Rows read and left out (customer.* events) are not unreadable: the refusal said "none of
    its 1 rows can be read" of an export of three."""
    layout = StoreLayout(tmp_path / "home")
    lines = [history(BASIL)[-2], '{"id": "evt_cut", "type": "invoice.pa', history(BASIL)[-1]]
    with pytest.raises(InputFileError, match=r"none of its 1 rows .* \(2 other rows read and left"):
        ingest_export(layout, write_jsonl(tmp_path / "ign.jsonl", lines))
    assert not layout.events_dir.exists()


def test_an_export_of_ignored_events_only_ingests_nothing(tmp_path):
    layout = StoreLayout(tmp_path / "home")
    lines = [history(BASIL)[-2], "", history(BASIL)[-1]]
    imported, report = ingest_export(layout, write_jsonl(tmp_path / "quiet.jsonl", lines))
    assert imported.as_dict()["ignored"] == {"customer.updated": 1, "invoice.paid": 1}
    assert (report.received, report.accepted) == (0, 0)


def test_an_export_line_of_megabytes_is_malformed_and_kept_cut(tmp_path):
    """A line over 2,000,000 characters is read in pieces, counted malformed and quarantined with
    its start; the export's other events are imported as usual."""
    events = history(BASIL)
    huge = json.dumps({**events[0], "id": "evt_huge", "padding": "x" * 2_500_000})
    layout = StoreLayout(tmp_path / "home")
    imported, report = ingest_export(
        layout, write_jsonl(tmp_path / "export.jsonl", [*events, huge])
    )
    assert (imported.mapped, imported.malformed) == (10, 1)
    assert (report.accepted, report.quarantined) == (10, 1)
    con = connect()
    quarantine.attach_catalog(con, layout)
    [row] = quarantine.list_rows(con)
    con.close()
    assert row.reason == "malformed_row"
    assert row.raw["_raw_line"].startswith(huge[:10_000] + "… [cut: ")
    assert len(row.raw["_raw_line"]) < 10_100


def test_a_subscription_of_many_add_ons_keeps_its_plan_within_the_contract(tmp_path):
    """Eleven items with add-on names made a plan of 267 characters: the start and the
    cancellation were quarantined as ``invalid_plan``, so the customer never started or churned
    (a review). The plan now names what fits and counts the rest."""
    from feature_store.stripe import _plan_name

    names = [f"Advanced reporting add-on number {n:02d}" for n in range(11)]
    items = [item(BASIL, price(100 + n, nickname=name)) for n, name in enumerate(names)]
    many = subscription(BASIL, items)
    day = 86_400
    events = [
        event("e1", "customer.subscription.created", many, version=BASIL, created=NOW - 50 * day),
        event(
            "e2",
            "customer.subscription.deleted",
            {**many, "status": "canceled"},
            version=BASIL,
            created=NOW - 10 * day,
        ),
    ]
    layout = StoreLayout(tmp_path / "home")
    _, report = ingest_export(layout, write_jsonl(tmp_path / "export.jsonl", events))
    assert (report.accepted, report.quarantined) == (2, 0)
    plans = stored(layout)[0]["plan"].tolist()
    assert all(len(plan) <= 255 and plan.endswith(" more") for plan in plans)
    assert plans[0].startswith(names[0] + " + " + names[1])
    assert _plan_name([]) is None


@pytest.mark.parametrize(
    ("field", "odd"),
    [
        ("status", ["active"]),
        ("status", {"a": 1}),
        ("items", {"data": 5}),
        ("items", {"data": True}),
        ("items", {"data": 1.5}),
    ],
)
def test_a_signed_subscription_with_odd_field_types_is_mapped_not_a_crash(field, odd):
    """A list as the status, or a number as the items' list, raised TypeError: a 500 to a
    signed delivery, and one such line ended `segments import stripe` (a hostile client's
    review). Odd fields are left empty for validation, as the others are."""
    shaped = subscription(PRE_BASIL, [item(PRE_BASIL, price())])
    shaped[field] = odd
    previous = {"status": ["trialing"]}
    mapped = map_event(event("evt_odd", "customer.subscription.updated", shaped, previous=previous))
    assert isinstance(mapped, CanonicalBillingEvent)
    assert mapped.customer_id == "cus_A"
    if field == "items":  # no item: no plan, quarantined as such when stored
        assert mapped.plan is None


def test_a_body_that_names_a_key_twice_is_not_one_event():
    """A signed body with two ids was recorded under the second, where `POST /v1/events`
    refuses repeated names (a hostile client's review)."""
    text = '{"id": "evt_1", "type": "customer.created", "data": {"object": {}}, "id": "evt_2"}'
    with pytest.raises(MalformedStripeEventError, match="names 'id' twice"):
        parse_event(text.encode())
