"""``GET /v1/model``: name, version, training time, metrics and features of the served model;
``GET /v1/model/lineage``: what it did to the segments of the version before."""

from __future__ import annotations

from fastapi import APIRouter

from service.auth import AuthFirstRoute, ReadAccess
from service.catalog import lineage_public
from service.deps import ModelDep
from service.problems import ProblemError, problem_responses
from service.schemas import examples
from service.schemas.catalog import LineagePublic, ModelPublic

router = APIRouter(prefix="/v1/model", tags=["catalog"], route_class=AuthFirstRoute)


@router.get(
    "",
    response_model=ModelPublic,
    summary="The model being served",
    responses={**examples.ok(examples.MODEL), **problem_responses(401, 403, 503)},
)
async def describe(_key: ReadAccess, loaded: ModelDep) -> ModelPublic:
    return loaded.description


@router.get(
    "/lineage",
    response_model=LineagePublic,
    summary="The last transition: survived, split, merged, new and retired segments",
    responses={
        **examples.ok(examples.LINEAGE),
        **problem_responses(
            401,
            403,
            (404, "no_lineage", "model version 1 was registered without lineage; retrain it"),
            503,
        ),
    },
)
async def lineage(_key: ReadAccess, loaded: ModelDep) -> LineagePublic:
    found = lineage_public(loaded.model)
    if found is None:
        raise ProblemError(
            404,
            "no_lineage",
            f"model version {loaded.version} was registered without lineage; retrain it",
        )
    return found
