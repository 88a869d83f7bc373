"""``POST /v1/events``: canonical events of any customers, stored like a file (scope ``ingest``).

This router also runs the online refresher for the app's lifetime (its ``lifespan``), which both
ingestion routes (this one and the Stripe webhook) feed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Annotated

from anyio.to_thread import run_sync
from fastapi import APIRouter, Body, Depends, FastAPI, Query, Request
from fastapi.responses import Response

from feature_store.errors import InputFileError
from feature_store.timeutil import now_utc
from service.auth import AuthFirstRoute, IngestAccess
from service.deps import IngestionDep, SettingsDep, json_bytes
from service.idempotency import (
    HEADER,
    REPLAYED_HEADER,
    Claim,
    IdempotencyStore,
    StoredAnswer,
    client_of,
    fingerprint,
    key_from_headers,
)
from service.ingestion import INGESTION_PROBLEMS, HttpIngestion
from service.problems import BODY_PROBLEMS, ProblemError, problem_response, problem_responses
from service.schemas import examples
from service.schemas.ingest import (
    EVENTS_INGESTED_EXAMPLE,
    EVENTS_REQUEST_EXAMPLES,
    EventsBatch,
    EventsIngested,
)
from service.settings import Settings

SOURCE = "POST /v1/events"
logger = logging.getLogger("service")


@contextlib.asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    async with app.state.ingestion.running():
        yield


router = APIRouter(
    prefix="/v1/events", tags=["ingestion"], route_class=AuthFirstRoute, lifespan=_lifespan
)


async def idempotency(request: Request) -> IdempotencyStore:
    return request.app.state.idempotency


IdempotencyDep = Annotated[IdempotencyStore, Depends(idempotency)]


@router.post(
    "",
    response_model=EventsIngested,
    summary="Store canonical billing and usage events, validated like a file",
    # read by the route itself (a bare key with a comma, or the header twice, is a 400), so
    # declared here for clients rather than as a parameter FastAPI would parse
    openapi_extra={
        "parameters": [
            {
                "name": HEADER,
                "in": "header",
                "required": False,
                "description": "Makes retries safe: the same key and body within 24 h get the "
                "first answer again (with `Idempotent-Replayed: true`); the same key with "
                "another body is a 422.",
                "schema": {"type": "string", "minLength": 1, "maxLength": 255},
            }
        ]
    },
    responses={
        **examples.ok(EVENTS_INGESTED_EXAMPLE),
        **problem_responses(
            *BODY_PROBLEMS,
            (400, "invalid_idempotency_key", f"{HEADER} must be 1 to 255 printable characters"),
            (401, "unauthorized", "unknown API key"),
            (403, "forbidden", "this API key lacks the 'ingest' scope"),
            (409, "idempotency_key_in_progress", "a request with this key is still running"),
            (413, "too_many_events", "at most 5000 events per request, got 6000"),
            415,
            422,
            (422, "no_events", "send at least one event in billing or usage"),
            (
                422,
                "not_canonical_events",
                "POST /v1/events: no billing events: required field(s) type missing (found: "
                "customer_id, event_id, occurred_at); see the events contract",
            ),
            (422, "idempotency_key_reused", "this key was used for a request with another body"),
            *INGESTION_PROBLEMS,
            storage=True,
        ),
    },
)
async def ingest_events(
    api_key: IngestAccess,
    request: Request,
    body: Annotated[EventsBatch, Body(openapi_examples=EVENTS_REQUEST_EXAMPLES)],
    ingestion: IngestionDep,
    store: IdempotencyDep,
    settings: SettingsDep,
    wait_for_refresh: Annotated[
        bool,
        Query(
            description="Answer once the customers' online vectors are refreshed (at most "
            "`SEGMENTS_REFRESH_WAIT_SECONDS`, 10), so that a score sent next reads these events; "
            "`refreshed` says whether they were."
        ),
    ] = False,
) -> Response:
    """Up to `SEGMENTS_MAX_INGEST_EVENTS` (default 5,000) events per request, each with its
    `customer_id`. Every event is validated like a row of `segments ingest`: new ones are stored,
    re-sent ones (same `event_id`, same content) counted as duplicates, bad ones quarantined with
    their reason codes; the answer counts them. Send an `Idempotency-Key` header to make retries
    safe: the same key and body within 24 h get the first answer again. The customers' online
    vectors are recomputed in the background within seconds."""
    key = key_from_headers(request.headers)
    wait = settings.refresh_wait_seconds if wait_for_refresh else None
    if key is None:
        return await _answer(body, ingestion, settings, wait)
    client = client_of(api_key)
    claim = await run_sync(store.begin, client, key, fingerprint(await request.body()))
    if isinstance(claim, StoredAnswer):
        headers = {REPLAYED_HEADER: "true"}
        return Response(claim.body, claim.status, headers, media_type=claim.media_type)
    try:
        async with _renewed(store, claim, max(settings.idempotency_stale_seconds / 3, 0.1)):
            response = await _answer(body, ingestion, settings, wait)
    except Exception:
        await run_sync(store.abandon, claim)
        raise
    if 400 <= response.status_code < 500:
        # Refused whole, nothing stored: the key is not kept, so the corrected request may use
        # it (as Stripe keeps no result for a request that failed validation). A 422 no_events
        # held its key for 24 h while a 422 on a body that was no JSON did not (a hostile
        # client's review).
        await run_sync(store.abandon, claim)
        return response
    answer = StoredAnswer(response.status_code, response.media_type or "", bytes(response.body))
    await run_sync(store.finish, claim, answer)
    return response


@contextlib.asynccontextmanager
async def _renewed(store: IdempotencyStore, claim: Claim, every: float) -> AsyncIterator[None]:
    """Renew the claim while the request runs: one held behind a long write (a large CLI
    ingestion holding the store) is not taken for a dead process's, and run again, by the
    client's retry."""

    async def renew() -> None:
        while True:
            await asyncio.sleep(every)
            try:
                await run_sync(store.keep_alive, claim)
            except Exception as error:  # the request goes on; a retry may run it again
                logger.warning("could not renew %s %r: %s", HEADER, claim.key, error)

    renewing = asyncio.create_task(renew())
    try:
        yield
    finally:
        renewing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await renewing


async def _answer(
    body: EventsBatch, ingestion: HttpIngestion, settings: Settings, wait: float | None = None
) -> Response:
    """The answer to a request, problems included (they are replayed like any answer); ``wait``:
    seconds to wait for the customers' online refresh at most (None: not asked)."""
    try:
        _check_size(body, settings.max_ingest_events)
        received_at = now_utc()
        report, refreshed = await ingestion.ingest(
            body.records(), source=SOURCE, route="events", wait_for_refresh=wait
        )
    except ProblemError as error:
        if error.status >= 500:  # the service's trouble, not the request's: never replayed
            raise
        return problem_response(error)
    except InputFileError as error:
        return problem_response(ProblemError(422, "not_canonical_events", str(error)))
    # off the event loop: a timestamp parse per event, 10-20 ms for a batch of 5,000
    future = await run_sync(body.dated_after, received_at)
    if future:
        logger.info("%d events of batch %s are dated after now", future, report.batch_id)
    answer = EventsIngested.from_report(report, future, refreshed)
    return json_bytes(answer.model_dump_json().encode())


def _check_size(body: EventsBatch, limit: int) -> None:
    if body.size > limit:
        raise ProblemError(
            413, "too_many_events", f"at most {limit} events per request, got {body.size}"
        )
    if body.size == 0:
        raise ProblemError(422, "no_events", "send at least one event in billing or usage")
