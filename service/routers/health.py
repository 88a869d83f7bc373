"""Health and metrics: no API key, so orchestrators and Prometheus can reach them."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from service.deps import RETRY_AFTER_SECONDS
from service.metrics import CONTENT_TYPE
from service.problems import ProblemError, problem_responses
from service.schemas import examples
from service.schemas.catalog import Liveness, ModelRefPublic, Readiness

router = APIRouter(tags=["operations"])


@router.get(
    "/health/live",
    response_model=Liveness,
    summary="The process is up",
    responses=examples.ok(examples.LIVE),
)
async def live() -> Liveness:
    return Liveness()


@router.get(
    "/health/ready",
    response_model=Readiness,
    summary="A model and its explainer are loaded and serving",
    responses={**examples.ok(examples.READY), **problem_responses(503)},
)
async def ready(request: Request) -> Readiness:
    loaded = request.app.state.holder.current
    if loaded is None:
        # No key is asked here (an orchestrator probes it), so the loader's own words, which
        # name the registry's path or address ("no registry at sqlite:////srv/…/mlflow.db"), are
        # for the routes that ask one and the log (a CRM integrator's review)
        failed = request.app.state.loader.last_error is not None
        reason = (
            "the model could not be loaded; the service log, and the 503 of any route that takes "
            "an API key, say why"
            if failed
            else "the model is loading"
        )
        # as the scoring routes' 503 says it: when to ask again
        raise ProblemError(
            503,
            "model_unavailable",
            f"not ready: {reason}",
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )
    return Readiness(model=ModelRefPublic(name=loaded.ref.name, version=loaded.ref.version))


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={
        200: {
            "content": {
                CONTENT_TYPE: {
                    "schema": {"type": "string"},
                    "example": 'segments_model_version 4.0\nsegments_scores_total{model_version="4",segment="2"} 17.0\n',
                }
            }
        }
    },
)
async def metrics(request: Request) -> Response:
    return Response(request.app.state.metrics.exposition(), media_type=CONTENT_TYPE)
