"""``GET /v1/segments`` and ``GET /v1/segments/{segment_id}``: the catalog with the profiles, each
under its public id with its history across versions."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from service.auth import AuthFirstRoute, ReadAccess
from service.catalog import churned_public, repurchase_public
from service.deps import ModelDep
from service.members import MAX_CURSOR_LENGTH, MembersDep, member_page, segment_position
from service.problems import problem_responses
from service.schemas import examples
from service.schemas.catalog import ModelRefPublic, SegmentList, SegmentPublic
from service.schemas.members import SegmentMembersPage
from service.schemas.types import SegmentIdPath, count_query

router = APIRouter(prefix="/v1/segments", tags=["catalog"], route_class=AuthFirstRoute)

# What the two routes that take a segment id answer for an id the served version lacks.
UNKNOWN_SEGMENT = (
    404,
    "unknown_segment",
    "model version 3 has no segment 9; its segments are 0, 1, 2, 3, 4, 5",
)
MembersLimit = count_query(1, 1000, "Customers per page.")


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
        churned=churned_public(loaded.model),
        repurchase=repurchase_public(loaded.model),
    )


@router.get(
    "/{segment_id}",
    response_model=SegmentPublic,
    summary="One segment's profile",
    responses={
        **examples.ok(examples.SEGMENT),
        **problem_responses(401, 403, UNKNOWN_SEGMENT, 422, 503),
    },
)
async def get_segment(
    _key: ReadAccess,
    segment_id: SegmentIdPath,
    loaded: ModelDep,
) -> SegmentPublic:
    return loaded.segments[segment_position(loaded, segment_id)]


@router.get(
    "/{segment_id}/customers",
    response_model=SegmentMembersPage,
    summary="The customers in one segment, for a CRM, a page at a time",
    description="Every customer of the online store placed in the segment by the served model, "
    "in `customer_id` order. Follow `next_cursor` until it is null; a cursor from an earlier "
    "model version is refused (409), since membership may have changed.",
    responses={
        **examples.ok(examples.MEMBERS),
        **problem_responses(
            (400, "invalid_cursor", "cursor is not one this listing gave out; start without it"),
            401,
            403,
            UNKNOWN_SEGMENT,
            409,
            422,
            503,
            storage=True,
        ),
    },
)
async def list_segment_customers(
    _key: ReadAccess,
    segment_id: SegmentIdPath,
    loaded: ModelDep,
    members: MembersDep,
    limit: MembersLimit = 100,
    cursor: Annotated[
        str | None,
        # No maxLength in the schema: a generated cursor of thousands of four-byte characters
        # made a URL past the header limit (431); one longer than any given out is a 400 below.
        Query(
            description="`next_cursor` of the previous page (opaque; at most "
            f"{MAX_CURSOR_LENGTH:,} characters).",
        ),
    ] = None,
) -> SegmentMembersPage:
    table = await members.table(loaded)
    return member_page(loaded, table, segment_id, limit, cursor, await members.cursor_key())
