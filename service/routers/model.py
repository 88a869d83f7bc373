"""``GET /v1/model``: name, version, training time, metrics and features of the served model."""

from __future__ import annotations

from fastapi import APIRouter

from service.auth import AuthFirstRoute, ReadAccess
from service.deps import ModelDep
from service.problems import problem_responses
from service.schemas import examples
from service.schemas.catalog import ModelPublic

router = APIRouter(prefix="/v1/model", tags=["catalog"], route_class=AuthFirstRoute)


@router.get(
    "",
    response_model=ModelPublic,
    summary="The model being served",
    responses={**examples.ok(examples.MODEL), **problem_responses(401, 403, 503)},
)
async def describe(_key: ReadAccess, loaded: ModelDep) -> ModelPublic:
    return loaded.description
