"""Dependencies shared by the routers, as ``Annotated`` aliases. Everything comes from the app's
state, set by ``create_app``: no route reaches a module global. They are ``async`` although they
never wait: FastAPI runs a plain ``def`` dependency in a worker thread, a hop per request."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.responses import Response

from service.ingestion import HttpIngestion
from service.lifecycle import LoadedModel
from service.problems import ProblemError
from service.scoring import Scorer
from service.settings import Settings

RETRY_AFTER_SECONDS = 5


async def current_model(request: Request) -> LoadedModel:
    """The model at the start of this request; the same object serves all of it."""
    loaded = request.app.state.holder.current
    if loaded is None:
        # why, where the loader knows: "retry shortly" never helps a registry with no champion
        reason = request.app.state.loader.last_error
        raise ProblemError(
            503,
            "model_unavailable",
            f"no model is loaded yet: {reason}"
            if reason
            else "no model is loaded yet; retry shortly",
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )
    return loaded


async def scorer(request: Request) -> Scorer:
    return request.app.state.scorer


async def settings(request: Request) -> Settings:
    return request.app.state.settings


async def ingestion(request: Request) -> HttpIngestion:
    """The events written over HTTP (``POST /v1/events``, the Stripe webhook) go through one."""
    return request.app.state.ingestion


ModelDep = Annotated[LoadedModel, Depends(current_model)]
ScorerDep = Annotated[Scorer, Depends(scorer)]
SettingsDep = Annotated[Settings, Depends(settings)]
IngestionDep = Annotated[HttpIngestion, Depends(ingestion)]


def json_bytes(body: bytes, status: int = 200) -> Response:
    return Response(body, status, media_type="application/json")
