"""``GET /v1/segments`` and ``GET /v1/segments/{segment_id}``: the catalog with the profiles, each
under its public id with its history across versions."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from service.auth import AuthFirstRoute, ReadAccess
from service.catalog import retired_note
from service.deps import ModelDep
from service.problems import ProblemError, problem_responses
from service.schemas import examples
from service.schemas.catalog import ModelRefPublic, SegmentList, SegmentPublic

router = APIRouter(prefix="/v1/segments", tags=["catalog"], route_class=AuthFirstRoute)


@router.get(
    "",
    response_model=SegmentList,
    summary="Every segment of the served model, with its profile",
    responses={**examples.ok(examples.SEGMENTS), **problem_responses(401, 403, 503)},
)
async def list_segments(_key: ReadAccess, loaded: ModelDep) -> SegmentList:
    return SegmentList(
        model=ModelRefPublic(name=loaded.ref.name, version=loaded.ref.version),
        segments=list(loaded.segments),
    )


@router.get(
    "/{segment_id}",
    response_model=SegmentPublic,
    summary="One segment's profile",
    responses={**examples.ok(examples.SEGMENT), **problem_responses(401, 403, 404, 422, 503)},
)
async def get_segment(
    _key: ReadAccess,
    segment_id: Annotated[
        int, Path(ge=0, le=10_000, description="Public segment id (stable across versions).")
    ],
    loaded: ModelDep,
) -> SegmentPublic:
    position = loaded.model.position_of(segment_id)
    if position is None:
        ids = ", ".join(str(segment.id) for segment in loaded.segments)
        retired = retired_note(loaded.model, segment_id)
        raise ProblemError(
            404,
            "unknown_segment",
            f"{retired + '; ' if retired else ''}model version {loaded.version} has segments {ids}",
        )
    return loaded.segments[position]
