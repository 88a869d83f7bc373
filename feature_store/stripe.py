"""Stripe: webhook signatures, and Stripe event objects mapped to canonical billing events.

Pure functions; the webhook route and the import command do the I/O. Every mapped event carries the
whole state it reports (the subscription's seats and MRR after the change, the money moved by this
invoice or refund), never a delta against an earlier event, and its ``event_id`` is Stripe's event
id: delivering an event again is an exact duplicate, and delivering events out of order stores the
same rows, so the features (which order by ``occurred_at``) come out the same.

API versions: from 2025-03-31 ("basil") a subscription's ``current_period_*`` live on its items and
an invoice's subscription under ``parent.subscription_details.subscription``. The mapping reads
neither period field, and reads the invoice's subscription from wherever the version puts it.
"""

from __future__ import annotations

import gzip
import hashlib
import hmac
import json
import math
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TextIO

from feature_store.converted import ConvertedRow, MalformedSource, ingest_converted
from feature_store.errors import InputFileError, SegmentsError
from feature_store.formats import (
    NotJsonConstantError,
    RepeatedNameError,
    bounded_lines,
    first_line,
    holds_unencodable_text,
    names_once,
    refuse_json_constant,
    require_file,
)
from feature_store.money import from_minor_units
from feature_store.schema import MAX_ID_LENGTH, SUBSCRIPTION_TYPES, ascii_upper, column_names

if TYPE_CHECKING:
    from feature_store.ingest import StreamReport
    from feature_store.layout import StoreLayout

SIGNATURE_HEADER = "Stripe-Signature"
SECRETS_VARIABLE = "SEGMENTS_STRIPE_WEBHOOK_SECRETS"
DEFAULT_TOLERANCE_SECONDS = 300

# --------------------------------------------------------------------------- signatures


class StripeSignatureError(SegmentsError):
    """A webhook request whose ``Stripe-Signature`` does not prove it came from Stripe."""

    reason: ClassVar[str] = "invalid_signature"


class MissingSignatureHeaderError(StripeSignatureError):
    reason = "missing_signature_header"


class MalformedSignatureHeaderError(StripeSignatureError):
    reason = "malformed_signature_header"


class NoV1SignatureError(StripeSignatureError):
    reason = "no_v1_signature"


class TimestampOutsideToleranceError(StripeSignatureError):
    reason = "timestamp_outside_tolerance"


class NoMatchingSignatureError(StripeSignatureError):
    reason = "no_matching_signature"


class MalformedStripeEventError(SegmentsError):
    """A body that is not a Stripe event object (not JSON, or no ``id``/``type``/``data.object``)."""

    reason: ClassVar[str] = "malformed_event"


@dataclass(frozen=True)
class SignatureHeader:
    timestamp: int
    signatures: tuple[str, ...]


def parse_webhook_secrets(value: str | None) -> tuple[str, ...]:
    """The endpoint secrets of ``SEGMENTS_STRIPE_WEBHOOK_SECRETS``: comma-separated, for rotation."""
    return tuple(secret.strip() for secret in (value or "").split(",") if secret.strip())


def parse_signature_header(header: str | None) -> SignatureHeader:
    """Split ``t=...,v1=...[,v1=...][,v0=...]``; other schemes are ignored, as Stripe advises."""
    if header is None or not header.strip():
        raise MissingSignatureHeaderError(f"no {SIGNATURE_HEADER} header")
    timestamps: list[str] = []
    signatures: list[str] = []
    for element in header.split(","):
        key, separator, value = element.strip().partition("=")
        if not separator:
            raise MalformedSignatureHeaderError(
                f"{SIGNATURE_HEADER}: element {key!r} is not key=value"
            )
        if key == "t":
            timestamps.append(value)
        elif key == "v1":
            signatures.append(value)
    # ASCII digits, at most 15 (isdigit takes "²", and int() refuses 4,300 digits and more)
    if len(timestamps) != 1 or not re.fullmatch(r"[0-9]{1,15}", timestamps[0]):
        raise MalformedSignatureHeaderError(f"{SIGNATURE_HEADER}: needs exactly one numeric t=")
    if not signatures:
        raise NoV1SignatureError(f"{SIGNATURE_HEADER}: no v1 signature")
    return SignatureHeader(int(timestamps[0]), tuple(signatures))


def compute_signature(payload: bytes, timestamp: int, secret: str) -> str:
    """Stripe's v1 scheme: hex HMAC-SHA256 of ``"{t}.{raw body}"`` keyed by the endpoint secret."""
    signed = f"{timestamp}.".encode() + payload
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def verify_signature(
    payload: bytes,
    header: str | None,
    secrets: Sequence[str],
    *,
    now: float | None = None,
    tolerance: int = DEFAULT_TOLERANCE_SECONDS,
) -> int:
    """Check ``header`` against the raw request body; return its timestamp or raise why not.

    Any v1 signature made with any of ``secrets`` is accepted (secret rotation). The timestamp is
    checked only once the signature is authentic, so a stale report means a replay, not a forgery.
    """
    if not secrets:
        raise ValueError("no Stripe webhook secret configured")
    parsed = parse_signature_header(header)
    expected = [compute_signature(payload, parsed.timestamp, secret).encode() for secret in secrets]
    offered = [signature.encode("utf-8", "surrogatepass") for signature in parsed.signatures]
    if not any(hmac.compare_digest(e, o) for e in expected for o in offered):
        raise NoMatchingSignatureError("no v1 signature matches the body and a configured secret")
    skew = (time.time() if now is None else now) - parsed.timestamp
    if abs(skew) > tolerance:
        # which way: "600 s from now" for a delivery signed ten minutes ago read as a clock
        # ahead, not a stale or replayed delivery (a CRM integrator's review)
        when = f"{skew:.0f} s old" if skew > 0 else f"{-skew:.0f} s in the future"
        raise TimestampOutsideToleranceError(
            f"signature timestamp {parsed.timestamp} is {when} (tolerance {tolerance} s)"
        )
    return parsed.timestamp


# --------------------------------------------------------------------------- events


@dataclass(frozen=True)
class CanonicalBillingEvent:
    """One canonical billing event made from one Stripe event."""

    event_id: str | None
    customer_id: str | None
    occurred_at: str | None
    type: str
    plan: str | None = None
    interval: str | None = None
    seats: int | str | None = None  # text: what the event wrote where no count reads
    mrr: float | None = None
    amount: float | str | None = None  # text: what the event wrote where no amount reads
    currency: str | None = None
    # The Stripe subscription the event is about: a customer's subscriptions are summed.
    subscription_id: str | None = None

    def as_row(self) -> dict[str, object]:
        """The canonical billing columns, ready for ingestion."""
        return {name: getattr(self, name) for name in column_names("billing")}


@dataclass(frozen=True)
class IgnoredEvent:
    """A Stripe event with nothing for the billing stream: acknowledged and counted, not stored."""

    event_id: str | None
    stripe_type: str | None
    reason: str  # unhandled_type | zero_amount


StripeOutcome = CanonicalBillingEvent | IgnoredEvent

HANDLED_TYPES = (
    "customer.subscription.created",
    "customer.subscription.updated",
    "customer.subscription.deleted",
    "invoice.paid",
    "invoice.payment_failed",
    "charge.refunded",
)


def parse_event(payload: bytes | str) -> dict[str, Any]:
    """The Stripe event object in a (verified) request body."""
    try:
        event = json.loads(
            payload, parse_constant=refuse_json_constant, object_pairs_hook=names_once
        )
    except NotJsonConstantError as error:
        raise MalformedStripeEventError(f"body is {error}") from None
    except RepeatedNameError as error:
        raise MalformedStripeEventError(f"body is not one event: {error}") from None
    except (ValueError, UnicodeDecodeError):
        raise MalformedStripeEventError("body is not JSON") from None
    except RecursionError:
        raise MalformedStripeEventError("body nests arrays or objects too deeply") from None
    if not isinstance(event, dict):
        raise MalformedStripeEventError("body is not a JSON object")
    if holds_unencodable_text(payload, event):  # stored, it failed every write
        raise MalformedStripeEventError("body holds a lone surrogate, which is no text")
    return event


def map_event(event: Mapping[str, Any]) -> StripeOutcome:
    """Map one Stripe event object to a canonical billing event, or say why it is ignored.

    Missing or odd fields (no customer, a tiered price without a unit amount) are left empty for
    the ingestion's validation to quarantine with a reason code; only an object that is not a
    Stripe event at all raises ``MalformedStripeEventError``.
    """
    stripe_type = event.get("type")
    if not isinstance(event.get("id"), str) or not isinstance(stripe_type, str):
        raise MalformedStripeEventError("not a Stripe event: needs string id and type")
    handler = _HANDLERS.get(stripe_type)
    if handler is None:
        return IgnoredEvent(event["id"], stripe_type, "unhandled_type")
    data = event.get("data")
    stripe_object = data.get("object") if isinstance(data, dict) else None
    if not isinstance(stripe_object, dict):
        raise MalformedStripeEventError(f"{stripe_type} event {event['id']} has no data.object")
    return handler(event, stripe_object)


def _identity(event: Mapping[str, Any], stripe_object: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "event_id": event["id"],
        "customer_id": _id_of(stripe_object.get("customer")),
        "occurred_at": _instant(event.get("created")),
    }


def _id_of(reference: object) -> str | None:
    """A Stripe reference is an id string, or the expanded object carrying its ``id``."""
    if isinstance(reference, dict):
        reference = reference.get("id")
    return reference if isinstance(reference, str) and reference else None


def _instant(created: object) -> str | None:
    if created is None:
        return None  # quarantined by the ingestion's validation as a missing occurred_at
    seconds = _bounded_integer(created)
    if seconds is None or not 0 <= seconds <= _LAST_INSTANT:
        return _as_written(created)  # invalid_occurred_at, with what the event said
    return datetime.fromtimestamp(seconds, UTC).isoformat()


def _as_written(value: object) -> str:
    """A value no account has, as the event wrote it, for the quarantine to show (bounded: a
    number may have any number of digits)."""
    text = json.dumps(value) if not isinstance(value, int) or abs(value) < 10**30 else "a number"
    return text if len(text) <= 100 else text[:99] + "…"


# 9999-12-31T23:59:59Z: the contract's last instant, and the last ``datetime`` can hold.
_LAST_INSTANT = 253_402_300_799
# Beyond this many minor units (10^16 cents) no number in an event is an account's: a larger one
# is left empty for validation to quarantine, before any arithmetic on numbers of any size.
_LARGEST_NUMBER = 10**16


def _bounded_integer(value: object) -> int | None:
    """An integer JSON number within ``_LARGEST_NUMBER``, else None. A whole number written as
    a float (``1234.0``, as an export re-serialised by pandas writes it) is that integer: it was
    passed through as text and stored as 1234 dollars, 100 times the 1234 cents it meant (a
    hostile client, 2026-12-06)."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or abs(value) > _LARGEST_NUMBER:
        return None
    return value


def _not_minor_units(value: object) -> str:
    """An amount that is no whole number of minor units, as text validation refuses
    (``invalid_amount``) and the quarantine shows: ``12.5`` alone would be read as 12.50."""
    return f"{_as_written(value)} (not a whole number of minor units)"


def _currency(value: object) -> str | None:
    return ascii_upper(value) if isinstance(value, str) and value else None


# ---- subscriptions

_CANONICAL_TYPE = {
    "customer.subscription.created": "subscription_started",
    "customer.subscription.updated": "subscription_changed",
    "customer.subscription.deleted": "subscription_canceled",
    # Stripe's pause of a whole subscription (status ``paused``: no invoices, MRR 0) and its
    # resumption; each carries the subscription as it now is, like an update
    "customer.subscription.paused": "subscription_changed",
    "customer.subscription.resumed": "subscription_changed",
}
# Billing periods per month of each Stripe interval (a weekly price is billed 52/12 times a month).
_PERIODS_PER_MONTH = {
    "day": Fraction(365, 12),
    "week": Fraction(52, 12),
    "month": Fraction(1),
    "year": Fraction(1, 12),
}


@dataclass(frozen=True)
class _Item:
    """One subscription item (licensed, or metered with no seats or MRR), reduced to what the
    canonical event needs."""

    name: str | None
    quantity: int | str | None  # text: what the event wrote where no count reads
    monthly_amount: Fraction | None  # quantity x unit amount per month, in major units
    interval: str | None


# Subscription statuses under which Stripe bills nothing: a trial, a first payment still owed,
# a paused subscription. Their MRR is 0 (a trial at list price would count as a paying customer,
# and as churn with lost MRR when it never converts); seats and plan are kept.
_NOT_BILLING = frozenset({"trialing", "incomplete", "paused"})
# A first payment never made: the subscription ended without ever billing.
_ENDED = frozenset({"incomplete_expired"})


def _subscription(event: Mapping[str, Any], subscription: Mapping[str, Any]) -> StripeOutcome:
    currency = _currency(subscription.get("currency")) or _first_price_currency(subscription)
    items = [item for item in _items(subscription) if item is not None]
    licensed = [x for x in (_licensed_item(item, currency) for item in items) if x is not None]
    # A subscription billed by usage alone (every item metered) is still one: its prices name the
    # plan and give the cycle, with no seats and no fixed MRR (what it bills arrives as invoices).
    # Read from its licensed items only, it had no plan and was quarantined as ``missing_plan``,
    # so its customer never started or churned.
    described = licensed or [x for x in map(_metered_item, items) if x is not None]
    # odd fields are left empty for validation (``map_event``): a list as the status raised
    # TypeError in a set lookup, a 500 to a signed delivery (a hostile client's review)
    status = _text_or_none(subscription.get("status"))
    canceled = event["type"] == "customer.subscription.deleted" or status in _ENDED
    billing = not canceled and status not in _NOT_BILLING
    data = event.get("data")
    previous = data.get("previous_attributes") if isinstance(data, dict) else None
    was = _text_or_none(previous.get("status")) if isinstance(previous, dict) else None
    # A trial (or an owed first payment, or a pause) that starts billing: the paying subscription
    # starts now, not an expansion from 0 (``expansions_365d``, ``mrr_growth_90d`` would count
    # it). A resumption is one by its type, whether or not the event says what the status was.
    resumed = event["type"] == "customer.subscription.resumed"
    updated = event["type"] == "customer.subscription.updated"
    converts = billing and (resumed or (updated and was in _NOT_BILLING))
    kind = "subscription_started" if converts else _CANONICAL_TYPE[event["type"]]
    return CanonicalBillingEvent(
        **_identity(event, subscription),
        type="subscription_canceled" if canceled else kind,
        plan=_plan_name(described),
        interval=_canonical_interval(described),
        seats=0 if canceled else _total_seats(described),
        mrr=_total_mrr(described) if billing else 0.0,
        currency=currency,
        subscription_id=_id_of(subscription.get("id")),
    )


def _items(subscription: Mapping[str, Any]) -> list[dict[str, Any] | None]:
    items = subscription.get("items")
    data = items.get("data") if isinstance(items, dict) else None
    if not isinstance(data, list):  # 5 or true there was iterated: a 500 (a hostile client)
        return []
    return [item if isinstance(item, dict) else None for item in data]


def _text_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _price(item: Mapping[str, Any]) -> dict[str, Any]:
    """The item's price; items made from a legacy plan carry only ``plan`` (amount, interval)."""
    price = item.get("price")
    if isinstance(price, dict):
        return price
    plan = item.get("plan")
    if not isinstance(plan, dict):
        return {}
    return {
        **plan,
        "unit_amount": plan.get("amount"),
        "unit_amount_decimal": plan.get("amount_decimal"),
        "recurring": {
            "interval": plan.get("interval"),
            "interval_count": plan.get("interval_count", 1),
            "usage_type": plan.get("usage_type", "licensed"),
        },
    }


def _first_price_currency(subscription: Mapping[str, Any]) -> str | None:
    for item in _items(subscription):
        if item is not None and _currency(_price(item).get("currency")):
            return _currency(_price(item).get("currency"))
    return None


def _licensed_item(item: Mapping[str, Any], currency: str | None) -> _Item | None:
    """A licensed (seat-priced) item; metered items have no seats or fixed MRR, so None."""
    price = _price(item)
    recurring = _recurring(price)
    if recurring.get("usage_type") == "metered":
        return None
    written = item.get("quantity", 1)
    if isinstance(written, float) and written.is_integer():  # 3.0 is three seats
        written = int(written)  # (and 1e40 is shown as "a number", as an integer of its size)
    quantity = _bounded_integer(written)
    if quantity is not None and quantity < 0:  # -8 seats offset another item's 10 unseen
        quantity = None
    interval = recurring.get("interval")
    per_month = _PERIODS_PER_MONTH.get(interval) if isinstance(interval, str) else None
    # Stripe's default is 1; 0 (or true) was read as 1, and a yearly price as twelve times its MRR
    count = recurring.get("interval_count", 1)
    count = _bounded_integer(count) if count is not None else 1
    unit = _unit_amount(price)
    monthly = None
    if None not in (unit, per_month, quantity) and count is not None and count > 0:
        monthly = from_minor_units(unit * quantity, currency) * per_month / count
    if quantity is None and written is not None:  # invalid_seats, with what the event said
        return _Item(_price_name(price), _as_written(written), monthly, interval)
    return _Item(_price_name(price), quantity, monthly, interval)


def _recurring(price: Mapping[str, Any]) -> Mapping[str, Any]:
    """A price's billing cycle and usage type (``recurring``), empty when it has none."""
    recurring = price.get("recurring")
    return recurring if isinstance(recurring, dict) else {}


def _metered_item(item: Mapping[str, Any]) -> _Item | None:
    """A metered (usage-billed) item: its name and cycle, no seats and no fixed MRR."""
    price = _price(item)
    recurring = _recurring(price)
    if recurring.get("usage_type") != "metered":
        return None
    interval = recurring.get("interval")
    return _Item(
        _price_name(price), 0, Fraction(0), interval if isinstance(interval, str) else None
    )


def _unit_amount(price: Mapping[str, Any]) -> Fraction | None:
    """Unit amount in minor units; ``unit_amount_decimal`` keeps sub-cent prices exact."""
    decimal = price.get("unit_amount_decimal")
    # Stripe's decimal string: at most 12 decimal places; no exponent ("1e999999" is a number
    # with a million digits)
    if isinstance(decimal, str) and re.fullmatch(r"[0-9]{1,17}(\.[0-9]{1,12})?", decimal):
        return Fraction(decimal)
    whole = _bounded_integer(price.get("unit_amount"))
    # None: tiered or custom pricing, or a negative amount no price has
    return None if whole is None or whole < 0 else Fraction(whole)


def _price_name(price: Mapping[str, Any]) -> str | None:
    product = price.get("product")
    product_name = product.get("name") if isinstance(product, dict) else product
    for candidate in (
        price.get("nickname"),
        price.get("lookup_key"),
        product_name,
        price.get("id"),
    ):
        if isinstance(candidate, str) and candidate:
            return candidate
    return None


def _plan_name(items: Sequence[_Item]) -> str | None:
    """The items' names joined with " + ", kept within the contract's 255 characters: the names
    that fit, then "+ N more" (a subscription of 11 add-ons made a plan of 267 characters, and
    its start and cancellation were quarantined as ``invalid_plan``); a single name over the
    bound is cut."""
    names = list(dict.fromkeys(item.name for item in items if item.name))
    if not names:
        return None
    joined = " + ".join(names)
    if len(joined) <= MAX_ID_LENGTH:
        return joined
    for kept in range(len(names) - 1, 0, -1):
        shortened = " + ".join(names[:kept]) + f" + {len(names) - kept} more"
        if len(shortened) <= MAX_ID_LENGTH:
            return shortened
    return names[0][: MAX_ID_LENGTH - 1] + "…"


def _canonical_interval(items: Sequence[_Item]) -> str | None:
    """The interval of the item that brings the most MRR: ``year`` for a yearly one, else
    ``month`` (MRR is normalised to a month anyway). A customer's several subscriptions are read
    by MRR too (``docs/contracts/features.md``, ``is_annual``: the live one with the most), so a
    yearly plan with a monthly add-on reads as annual whether the add-on is an item of the plan's
    subscription or a subscription of its own. Items have no order in time: a tie goes to the
    first listed. Without every item's amount, ``year`` only when every item bills yearly."""
    if not items or any(item.interval is None for item in items):
        return None
    amounts = [item.monthly_amount for item in items]
    if None in amounts:
        return "year" if all(item.interval == "year" for item in items) else "month"
    # max keeps the first of equal amounts: Stripe lists items in the order they were added.
    leading = max(items, key=lambda item: item.monthly_amount or 0)
    return "year" if leading.interval == "year" else "month"


def _total_seats(items: Sequence[_Item]) -> int | str | None:
    quantities = [item.quantity for item in items]
    unreadable = [q for q in quantities if isinstance(q, str)]
    if unreadable:  # quarantined as invalid_seats showing it, not as missing_seats
        return unreadable[0]
    return None if None in quantities else sum(q for q in quantities if isinstance(q, int))


def _total_mrr(items: Sequence[_Item]) -> float | None:
    amounts = [item.monthly_amount for item in items]
    if not items or None in amounts:
        return None
    return float(sum(a for a in amounts if a is not None))


# ---- money


def _money_event(
    event: Mapping[str, Any],
    stripe_object: Mapping[str, Any],
    canonical_type: str,
    minor_amount: object,
    subscription_id: str | None,
) -> StripeOutcome:
    if isinstance(minor_amount, int) and not isinstance(minor_amount, bool) and minor_amount == 0:
        return IgnoredEvent(event["id"], event["type"], "zero_amount")
    currency = _currency(stripe_object.get("currency"))
    amount: float | str | None = None  # absent: missing_amount
    if (whole := _bounded_integer(minor_amount)) is not None:
        amount = float(from_minor_units(whole, currency))
    elif isinstance(minor_amount, float) and math.isfinite(minor_amount):
        amount = _not_minor_units(minor_amount)  # 12.5 would read as 12.50: invalid_amount
    elif minor_amount is not None:
        amount = _as_written(minor_amount)  # invalid_amount, with what the event said
    return CanonicalBillingEvent(
        **_identity(event, stripe_object),
        type=canonical_type,
        amount=amount,
        currency=currency,
        subscription_id=subscription_id,
    )


def invoice_subscription_id(invoice: Mapping[str, Any]) -> str | None:
    """The invoice's subscription: ``parent.subscription_details`` from basil, top level before."""
    parent = invoice.get("parent")
    details = parent.get("subscription_details") if isinstance(parent, dict) else None
    if isinstance(details, dict) and details.get("subscription"):
        return _id_of(details.get("subscription"))
    return _id_of(invoice.get("subscription"))


def _invoice_paid(event: Mapping[str, Any], invoice: Mapping[str, Any]) -> StripeOutcome:
    subscription_id = invoice_subscription_id(invoice)
    return _money_event(event, invoice, "invoice_paid", invoice.get("amount_paid"), subscription_id)


def _invoice_payment_failed(event: Mapping[str, Any], invoice: Mapping[str, Any]) -> StripeOutcome:
    # What the failed attempt tried to collect: the amount still owed, else the amount due.
    owed = invoice.get("amount_remaining")
    owed = owed if isinstance(owed, int) and owed > 0 else invoice.get("amount_due")
    return _money_event(event, invoice, "payment_failed", owed, invoice_subscription_id(invoice))


def _charge_refunded(event: Mapping[str, Any], charge: Mapping[str, Any]) -> StripeOutcome:
    """The money this refund returned: ``amount_refunded`` is the charge's running total, so the
    total before this event (``previous_attributes``, when Stripe sends it) is taken off."""
    total = charge.get("amount_refunded")
    data = event.get("data")
    previous = data.get("previous_attributes") if isinstance(data, dict) else None
    before = previous.get("amount_refunded") if isinstance(previous, dict) else None
    refunded = total
    whole_total, whole_before = _bounded_integer(total), _bounded_integer(before)
    if whole_total is not None and whole_before is not None:  # 400.0 is 400 (it was ignored)
        refunded = whole_total - whole_before
    return _money_event(event, charge, "refund_issued", refunded, None)


_HANDLERS: dict[str, Callable[[Mapping[str, Any], Mapping[str, Any]], StripeOutcome]] = {
    "customer.subscription.created": _subscription,
    "customer.subscription.updated": _subscription,
    "customer.subscription.deleted": _subscription,
    "customer.subscription.paused": _subscription,
    "customer.subscription.resumed": _subscription,
    "invoice.paid": _invoice_paid,
    "invoice.payment_failed": _invoice_payment_failed,
    "charge.refunded": _charge_refunded,
}


# --------------------------------------------------------------------------- exports


@dataclass
class StripeImport:
    """A JSON Lines export of Stripe events, converted row by row for ``ingest_converted``."""

    source: Path
    rows: list[ConvertedRow] = field(default_factory=list)
    ignored: Counter[str] = field(default_factory=Counter)  # Stripe event type -> count
    mapped: int = 0
    malformed: int = 0
    # customer -> subscription -> [its first event's time, its cancellation's (None: live)]
    subscriptions: dict[str, dict[str, list[str | None]]] = field(default_factory=dict)

    def note_subscription(self, event: CanonicalBillingEvent) -> None:
        if not (event.customer_id and event.subscription_id and event.occurred_at):
            return
        spans = self.subscriptions.setdefault(event.customer_id, {})
        span = spans.setdefault(event.subscription_id, [event.occurred_at, None])
        span[0] = min(str(span[0]), event.occurred_at)
        if event.type == "subscription_canceled":
            span[1] = event.occurred_at

    @property
    def several_subscriptions(self) -> int:
        """Customers with two subscriptions live at once (a plan and an add-on): each event
        names its subscription, so their MRR and seats are summed and they churn when the
        last one ends (``docs/ingestion.md``, "Several subscriptions")."""
        return sum(_overlap(spans.values()) for spans in self.subscriptions.values())

    def convert(self, lines: Iterable[str]) -> Iterator[ConvertedRow]:
        """Each line's row, counted here as it is made (a generator: nothing is kept)."""
        for line in lines:
            yield _convert_line(line.rstrip("\r\n"), self)

    def as_dict(self) -> dict[str, Any]:
        return {
            "source_file": str(self.source),
            "mapped": self.mapped,
            "ignored": dict(sorted(self.ignored.items())),
            "malformed": self.malformed,
            "customers_with_several_subscriptions": self.several_subscriptions,
        }


def convert_stripe_lines(lines: Iterable[str], source: Path) -> StripeImport:
    """Map every line (one Stripe event object each) through ``map_event``, keeping positions."""
    result = StripeImport(source)
    result.rows.extend(result.convert(lines))
    return result


def _convert_line(line: str, result: StripeImport) -> ConvertedRow:
    if not line.strip():
        return None
    try:
        outcome = map_event(parse_event(line))
    except MalformedStripeEventError:
        result.malformed += 1
        return MalformedSource(line)
    if isinstance(outcome, IgnoredEvent):
        result.ignored[outcome.stripe_type or "unknown"] += 1
        return None
    result.mapped += 1
    if isinstance(outcome, CanonicalBillingEvent) and outcome.type in SUBSCRIPTION_TYPES:
        result.note_subscription(outcome)
    return outcome.as_row()


def _overlap(spans: Iterable[list[str | None]]) -> bool:
    """Whether any two ``[start, end]`` spans (RFC 3339 times, which order as text; end None:
    still live) are live at the same time."""
    reach: str | None = ""  # the latest end so far; None: a span still live
    for start, end in sorted(spans, key=lambda span: str(span[0])):
        if reach is None or (reach and str(start) < reach):
            return True
        reach = None if end is None else max(reach, end)
    return False


def import_stripe_export(layout: StoreLayout, path: Path) -> tuple[StripeImport, StreamReport]:
    """Convert a JSON Lines export of Stripe event objects (``.jsonl``/``.ndjson``, optionally
    gzipped; one event per line, as a data pipeline dumps them) and ingest it as billing events.
    Read a line at a time: the memory it takes does not grow with the export."""
    require_file(path)
    if path.stat().st_size == 0:
        raise InputFileError(f"{path}: the file is empty")
    result = StripeImport(path)
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as handle:
        report = ingest_converted(
            layout,
            "billing",
            result.convert(_export_lines(handle, path)),
            source_name=str(path),
            unreadable=NOT_EVENT_LINES,
        )
    if not (result.mapped or result.malformed or result.ignored):
        # Nothing was stored either: a gzipped empty file, or blank lines only.
        raise InputFileError(f"{path}: holds no Stripe event (no line but blank ones)")
    return result, report


NOT_EVENT_LINES = (
    "the import reads JSON Lines, one Stripe event object per line (`stripe events list` prints "
    "one list object: write its data items one per line, e.g. with `jq -c '.data[]'`)"
)


def _export_lines(handle: TextIO, path: Path) -> Iterator[str]:
    try:
        for _, text, _ in bounded_lines(handle):
            yield text
    except (OSError, EOFError, UnicodeDecodeError) as error:
        raise InputFileError(f"{path}: cannot read as JSON Lines: {first_line(error)}") from None
