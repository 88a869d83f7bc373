"""``POST /v1/webhooks/stripe``: Stripe events, authenticated by their signature alone.

Stripe sends no API key, so this route declares a different authentication: the
``StripeSignature`` security scheme (the ``Stripe-Signature`` header), verified against the raw
body before anything parses it. ``openapi_extra`` marks the route with ``x-authenticated-by`` so a
check that every ``/v1`` route needs an API key can tell this exception from the declaration.
"""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Request, Security
from fastapi.responses import Response
from fastapi.security import APIKeyHeader

from feature_store.stripe import (
    SIGNATURE_HEADER,
    CanonicalBillingEvent,
    IgnoredEvent,
    MalformedStripeEventError,
    StripeSignatureError,
    map_event,
    parse_event,
    parse_webhook_secrets,
    verify_signature,
)
from service.deps import IngestionDep, SettingsDep, json_bytes
from service.ingestion import INGESTION_PROBLEMS, HttpIngestion
from service.problems import TOO_LARGE, ProblemError, problem_responses
from service.schemas import examples
from service.schemas.ingest import StripeDelivery

SOURCE = "stripe-webhook"
AUTHENTICATED_BY = {"x-authenticated-by": SIGNATURE_HEADER}
_EVENT_EXAMPLE = {
    "id": "evt_1QdemoInvoicePaid",
    "object": "event",
    "api_version": "2025-03-31.basil",
    "created": 1796112000,
    "type": "invoice.paid",
    "data": {
        "object": {
            "id": "in_1Qdemo",
            "object": "invoice",
            "customer": "cus_Rdemo42",
            "currency": "eur",
            "amount_paid": 14500,
            "parent": {"subscription_details": {"subscription": "sub_1QdemoTeam"}},
        }
    },
}
# The body is read raw (the signature covers its bytes), so it is documented here, not parsed.
_OPENAPI = {
    **AUTHENTICATED_BY,
    "requestBody": {
        "required": True,
        "description": "A Stripe event object, exactly as Stripe sent it.",
        "content": {
            "application/json": {
                "schema": {"type": "object"},
                "examples": {"invoice.paid": {"value": _EVENT_EXAMPLE}},
            }
        },
    },
}
_DELIVERY_EXAMPLE = {
    "event_id": "evt_1QdemoInvoicePaid",
    "type": "invoice.paid",
    "outcome": "accepted",
    "reasons": [],
}

# What a Stripe event type looks like: "invoice.paid", "customer.subscription.updated"
_STRIPE_TYPE = re.compile(r"[a-z0-9_]{1,40}(\.[a-z0-9_]{1,40}){1,3}")

router = APIRouter(prefix="/v1/webhooks", tags=["ingestion"])

_signature_header = APIKeyHeader(
    name=SIGNATURE_HEADER,
    scheme_name="StripeSignature",
    auto_error=False,
    description="Stripe's signature of the raw body (t=...,v1=...), checked with the endpoint "
    "secrets of SEGMENTS_STRIPE_WEBHOOK_SECRETS.",
)


async def verified_payload(
    request: Request,
    settings: SettingsDep,
    header: Annotated[str | None, Security(_signature_header)],
) -> bytes:
    """The raw body, once its signature is proven; 503 without a secret, 400 with a reason."""
    secrets = parse_webhook_secrets(settings.stripe_webhook_secrets)
    if not secrets:
        raise ProblemError(
            503,
            "webhook_not_configured",
            "no Stripe webhook secret is configured (SEGMENTS_STRIPE_WEBHOOK_SECRETS)",
        )
    payload = await request.body()
    try:
        verify_signature(payload, header, secrets)
    except StripeSignatureError as error:
        raise ProblemError(400, error.reason, str(error)) from None
    return payload


StripePayload = Annotated[bytes, Security(verified_payload)]


@router.post(
    "/stripe",
    response_model=StripeDelivery,
    summary="Receive a Stripe event (signed by Stripe; no API key)",
    openapi_extra=_OPENAPI,
    responses={
        **examples.ok(_DELIVERY_EXAMPLE),
        **problem_responses(
            (400, "missing_signature_header", "no Stripe-Signature header"),
            (400, "malformed_signature_header", "Stripe-Signature: needs exactly one numeric t="),
            (400, "no_v1_signature", "Stripe-Signature: no v1 signature"),
            (
                400,
                "timestamp_outside_tolerance",
                "signature timestamp 1767225600 is 3600 s old (tolerance 300 s)",
            ),
            (400, "no_matching_signature", "no v1 signature matches the body and a secret"),
            (400, "malformed_event", "not a Stripe event: needs string id and type"),
            TOO_LARGE,
            (503, "webhook_not_configured", "no Stripe webhook secret is configured"),
            *INGESTION_PROBLEMS,
            storage=True,
        ),
    },
)
async def stripe_webhook(payload: StripePayload, ingestion: IngestionDep) -> Response:
    """Subscription, invoice and refund events become canonical billing events (see
    docs/ingestion.md); other types are acknowledged and counted. A repeated delivery is a
    duplicate; an event missing what the contract needs is quarantined, and acknowledged too,
    since sending it again would not help."""
    try:
        stripe_event = parse_event(payload)
        outcome = map_event(stripe_event)
    except MalformedStripeEventError as error:
        raise ProblemError(400, error.reason, str(error)) from None
    stripe_type = str(stripe_event["type"])  # map_event made sure it is a string
    if isinstance(outcome, IgnoredEvent):
        delivery = StripeDelivery(
            event_id=str(stripe_event["id"]),
            type=stripe_type,
            outcome="ignored",
            reasons=[outcome.reason],
        )
    else:
        delivery = await _ingest(outcome, stripe_type, ingestion)
    # a label per type spelt as Stripe's are ("customer.updated": which types to unsubscribe),
    # one for any other text: a 10,000-character type, or one with a line feed, was a series
    # kept for ever on the unauthenticated /metrics (a hostile client)
    counted = delivery.type if _STRIPE_TYPE.fullmatch(delivery.type) else "other"
    ingestion.metrics.stripe.labels(counted, delivery.outcome).inc()
    return json_bytes(delivery.model_dump_json().encode())


async def _ingest(
    event: CanonicalBillingEvent, stripe_type: str, ingestion: HttpIngestion
) -> StripeDelivery:
    report, _ = await ingestion.ingest({"billing": [event.as_row()]}, source=SOURCE, route="stripe")
    billing = report.streams["billing"]
    outcome = (
        "accepted" if billing.accepted else "duplicate" if billing.duplicates else "quarantined"
    )
    return StripeDelivery(
        event_id=event.event_id or "",
        type=stripe_type,
        outcome=outcome,
        reasons=sorted(billing.reasons),
    )
