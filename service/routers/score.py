"""``POST /v1/score`` and ``POST /v1/score/batch``."""

from __future__ import annotations

import json
import re
from typing import Annotated, Any

from fastapi import APIRouter, Body, FastAPI
from fastapi.responses import Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from models.assignment import Assignment
from service.auth import AuthFirstRoute, ScoreAccess
from service.bodies import BatchBodyBounds, ScoreBodyBounds
from service.deps import ModelDep, ScorerDep, json_bytes
from service.problems import ProblemError, errors_summary, problem_responses, validation_problem
from service.schemas import examples
from service.schemas.scoring import (
    BATCH_EXAMPLES,
    SCORE_EXAMPLES,
    BatchItem,
    BatchScoreRequest,
    BatchScoreResponse,
    ScoreRequest,
)
from service.scoring import ScoreJob

router = APIRouter(prefix="/v1/score", tags=["scoring"], route_class=AuthFirstRoute)


@router.post(
    "",
    response_model=Assignment,
    summary="Assign one customer to a segment, and explain why",
    responses={
        **examples.ok(examples.ASSIGNMENT),
        **problem_responses(400, 401, 403, 404, 413, 415, 422, 503, storage=True),
    },
)
async def score(
    _key: ScoreAccess,
    _bounds: ScoreBodyBounds,
    # Validated as a ScoreRequest in a worker thread, not by FastAPI on the event loop: 10,000
    # events held the loop 0.2 s per request, and 32 such requests kept the health check waiting
    # 8.8 s (a hostile client's review); the batch route's items were validated so already. The
    # document still describes a ScoreRequest (``document_score_body``).
    body: Annotated[dict[str, Any], Body(openapi_examples=SCORE_EXAMPLES)],
    loaded: ModelDep,
    scorer: ScorerDep,
) -> Response:
    """Name the customer by exactly one of `customer_id` (its vector in the online store),
    `features` (a full vector) or `events` (its raw events, computed as of `as_of`; at most
    `SEGMENTS_MAX_EVENTS`, default 10,000)."""
    request = await run_in_threadpool(_score_request, body)
    [result] = await scorer.score(
        loaded, [ScoreJob.of(request, request.explain, request.top_k, request.explain_view)]
    )
    if isinstance(result, ProblemError):
        raise result
    return json_bytes(result.model_dump_json().encode())


def _score_request(body: dict[str, Any]) -> ScoreRequest:
    try:
        return ScoreRequest.model_validate(body)
    except ValidationError as error:
        raise validation_problem(error.errors()) from None


def document_score_body(document: dict[str, Any]) -> None:
    """Describe ``POST /v1/score``'s body in the OpenAPI ``document`` as a ``ScoreRequest``, as
    FastAPI documents a body of that type (the route takes a plain object, validated off the
    event loop): the request body and the schemas it refers to, from a route of that type on an
    app of its own."""
    twin = FastAPI()

    @twin.post("/v1/score")
    def documented(body: Annotated[ScoreRequest, Body(openapi_examples=SCORE_EXAMPLES)]) -> None:
        """Never served: its document is read."""

    described = twin.openapi()
    document["paths"]["/v1/score"]["post"]["requestBody"] = described["paths"]["/v1/score"]["post"][
        "requestBody"
    ]
    schemas = described["components"]["schemas"]
    components = document.setdefault("components", {}).setdefault("schemas", {})
    wanted = ["ScoreRequest"]
    while wanted:
        name = wanted.pop()
        if name in components and components[name] == schemas[name]:
            continue
        components[name] = schemas[name]
        wanted += re.findall(r"#/components/schemas/([^\"']+)", json.dumps(schemas[name]))


def _job(raw: object, batch: BatchScoreRequest) -> ScoreJob | ProblemError:
    try:
        item = BatchItem.model_validate(raw)
    except ValidationError as error:
        return validation_problem(error.errors())
    explain = batch.explain if item.explain is None else item.explain
    top_k = batch.top_k if item.top_k is None else item.top_k
    view = batch.explain_view if item.explain_view is None else item.explain_view
    return ScoreJob.of(item, explain, top_k, view)


def _in_item(position: int, outcome: Assignment | ProblemError) -> Assignment | ProblemError:
    """An item's problem with its fields named from the request's root (`items[2].top_k`), as a
    whole batch's 422 names them, whether the schema or the model's features found them."""
    if not isinstance(outcome, ProblemError) or not outcome.errors:
        return outcome
    # "body" is the item itself (an item with no customer_id, features or events): `items[2]`,
    # not a field `items[2].body` the request never had
    named = [
        error.model_copy(
            update={
                "field": f"items[{position}]"
                if error.field == "body"
                else f"items[{position}].{error.field}"
            }
        )
        for error in outcome.errors
    ]
    # a detail that only listed the fields lists them as named now
    omitted = outcome.errors_omitted
    if outcome.detail == errors_summary(outcome.errors, omitted):
        outcome.detail = errors_summary(named, omitted)
    outcome.errors = named
    return outcome


def _result(outcome: Assignment | ProblemError) -> bytes:
    if isinstance(outcome, ProblemError):
        problem = outcome.problem().model_dump_json(exclude_none=True).encode()
        return b'{"status":%d,"problem":%s}' % (outcome.status, problem)
    return b'{"status":200,"assignment":%s}' % outcome.model_dump_json().encode()


@router.post(
    "/batch",
    response_model=BatchScoreResponse,
    summary="Assign many customers; each succeeds or fails on its own",
    responses={
        **examples.ok(examples.BATCH),
        **problem_responses(400, 401, 403, 413, 415, 422, 503, storage=True),
    },
)
async def score_batch(
    _key: ScoreAccess,
    _bounds: BatchBodyBounds,
    body: Annotated[BatchScoreRequest, Body(openapi_examples=BATCH_EXAMPLES)],
    loaded: ModelDep,
    scorer: ScorerDep,
) -> Response:
    """Up to `SEGMENTS_MAX_BATCH_ITEMS` (default 1,000) items, each shaped like a score request;
    item-level `explain`, `top_k` and `explain_view` override the batch's. Results keep the order
    of the items.
    The events items may carry `SEGMENTS_MAX_EVENTS` (10,000) events together and name at most
    `SEGMENTS_MAX_BATCH_AS_OF` (10) distinct `as_of` values."""
    # Validating a thousand items is CPU work: a worker thread does it, not the event loop.
    parsed = await run_in_threadpool(lambda: [_job(raw, body) for raw in body.items])
    jobs = [job for job in parsed if isinstance(job, ScoreJob)]
    scored = iter(await scorer.score(loaded, jobs))
    outcomes = [
        _in_item(position, job if isinstance(job, ProblemError) else next(scored))
        for position, job in enumerate(parsed)
    ]
    # and so is writing them out (12 MB for a thousand explained with top_k 100)
    text = await run_in_threadpool(lambda: b",".join(_result(o) for o in outcomes))
    return json_bytes(b'{"results":[%s]}' % text)
