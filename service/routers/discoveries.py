"""``/v1/discoveries``: discovery on request, as jobs (scope ``discover``).

``POST`` checks the request against the data (as-of inside it, filter columns known, enough
customers selected) and queues it: ``202`` with the job and its ``Location``. ``GET`` follows a
job's status, steps and result; ``DELETE`` cancels it. The work itself runs in a separate process,
one job at a time (``service.discoveries``).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from feature_store.jobs import DiscoveryJobs, Job, QueueFullError
from service.auth import AuthFirstRoute, DiscoverAccess
from service.discoveries import DiscoveryRunner, checked_request
from service.problems import BODY_PROBLEMS, ProblemError, problem_responses
from service.schemas.discoveries import QUEUED, REQUEST_EXAMPLES, SUCCEEDED, DiscoveryBody
from service.schemas.types import JobIdPath, count_query

router = APIRouter(prefix="/v1/discoveries", tags=["discovery"], route_class=AuthFirstRoute)
JobsLimit = count_query(1, 200)


UNKNOWN_DISCOVERY = (404, "unknown_discovery", "no discovery job '7f3a'")


def _example(status: int, example: dict[str, Any]) -> dict[int | str, dict[str, Any]]:
    return {status: {"content": {"application/json": {"example": example}}}}


def _runner(request: Request) -> DiscoveryRunner:
    return request.app.state.discoveries


def _jobs(request: Request) -> DiscoveryJobs:
    return _runner(request).jobs


def job_view(job: Job) -> dict[str, Any]:
    return {**job.as_dict(), "links": {"self": f"/v1/discoveries/{job.id}"}}


def _found(request: Request, job_id: str) -> Job:
    job = _jobs(request).get(job_id)
    if job is None:
        raise ProblemError(404, "unknown_discovery", f"no discovery job {job_id!r}")
    return job


async def submit(request: Request, values: dict[str, Any]) -> Job:
    """Check ``values`` against the data, then queue the job and wake the runner."""
    low, high = values.get("mrr_min"), values.get("mrr_max")
    if low is not None and high is not None and low > high:
        raise ProblemError(422, "validation_error", "mrr_min is above mrr_max")
    settings = request.app.state.settings
    checked = await checked_request(settings.layout, values)
    try:
        job = await run_in_threadpool(
            _jobs(request).create, checked.as_dict(), max_queued=settings.discovery_max_queued
        )
    except QueueFullError as error:
        raise ProblemError(
            429, "discovery_queue_full", str(error), headers={"Retry-After": "60"}
        ) from None
    _runner(request).wake()
    return job


@router.post(
    "",
    status_code=202,
    summary="Queue a discovery of segments",
    description="Checks the request against the data before queuing it: an as-of outside the "
    "data, an unknown filter column or a selection of too few customers is a 422 problem and "
    "nothing is queued. The result is registered as the `challenger`, never the champion.",
    responses={
        **_example(202, QUEUED),
        **problem_responses(
            *BODY_PROBLEMS,
            401,
            403,
            (409, "no_data", "no events ingested under /data; run `segments ingest` first"),
            415,
            422,
            (
                422,
                "invalid_as_of",
                "as-of '2026-13-01' is neither a date (2026-06-30) nor an ISO 8601 instant "
                "(2026-06-30T12:00:00Z) of the years 1970 to 9999: month must be in 1..12",
            ),
            (
                422,
                "as_of_outside_data",
                "as-of 2030-01-01 is more than 7 days after the last accepted event; accepted "
                "events run from 2025-01-01 00:00:00 UTC to 2026-06-30 23:10:00 UTC",
            ),
            (
                422,
                "unknown_filter",
                "unknown filter column 'region'; known: plan, interval "
                "(customer attributes come from `segments ingest --customers`)",
            ),
            (
                422,
                "empty_selection",
                "the filters (plan = 'pro') select 12 active customer(s) as of 2026-06-30 (end "
                "of day, UTC); a discovery needs at least 50",
            ),
            429,
            storage=True,
        ),
    },
)
async def create_discovery(
    _key: DiscoverAccess,
    request: Request,
    body: Annotated[DiscoveryBody, Body(openapi_examples=REQUEST_EXAMPLES)],
) -> JSONResponse:
    job = await submit(request, body.values())
    location = f"/v1/discoveries/{job.id}"
    return JSONResponse(job_view(job), 202, headers={"Location": location})


@router.get(
    "",
    summary="Recent discovery jobs, newest first",
    responses={
        **_example(200, {"discoveries": [SUCCEEDED]}),
        **problem_responses(401, 403, 422, storage=True),
    },
)
def list_discoveries(  # plain functions run off the event loop: each reads the jobs' SQLite file
    _key: DiscoverAccess,
    request: Request,
    limit: JobsLimit = 20,
) -> dict[str, Any]:
    return {"discoveries": [job_view(job) for job in _jobs(request).recent(limit)]}


@router.get(
    "/{job_id}",
    summary="A discovery job: status, steps and, when done, its result",
    responses={
        **_example(200, SUCCEEDED),
        **problem_responses(401, 403, UNKNOWN_DISCOVERY, 422, storage=True),
    },
)
def get_discovery(_key: DiscoverAccess, request: Request, job_id: JobIdPath) -> dict[str, Any]:
    return job_view(_found(request, job_id))


@router.delete(
    "/{job_id}",
    summary="Cancel a queued or running discovery",
    responses={
        **_example(200, {**QUEUED, "status": "cancelled", "error": "cancelled on request"}),
        **problem_responses(
            401,
            403,
            UNKNOWN_DISCOVERY,
            (409, "discovery_finished", "discovery job 7f3a is succeeded"),
            422,
            storage=True,
        ),
    },
)
def cancel_discovery(_key: DiscoverAccess, request: Request, job_id: JobIdPath) -> dict[str, Any]:
    job = cancel(request, job_id)
    return job_view(job)


def cancel(request: Request, job_id: str) -> Job:
    """Cancel ``job_id``: a queued job never runs, a running one's process is killed."""
    job = _found(request, job_id)
    if not _jobs(request).cancel(job_id):
        raise ProblemError(409, "discovery_finished", f"discovery job {job_id} is {job.status}")
    _runner(request).wake()
    return _found(request, job_id)
