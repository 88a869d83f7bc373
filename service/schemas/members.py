"""What ``GET /v1/segments/{segment_id}/customers`` answers: one page of a segment's members."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from service.schemas.catalog import ModelRefPublic


class MemberPublic(BaseModel):
    model_config = ConfigDict(frozen=True)

    customer_id: str
    confidence: float = Field(ge=0, le=1, description="Probability of the assigned segment.")
    is_outlier: bool = Field(
        description="Fits no segment well; listed under the nearest segment all the same."
    )


class SegmentMembersPage(BaseModel):
    """A page of members in ``customer_id`` order; follow ``next_cursor`` until it is null."""

    model_config = ConfigDict(frozen=True)

    model: ModelRefPublic
    segment_id: int = Field(ge=0)
    segment_name: str
    total: int = Field(ge=0, description="Members of the segment in all pages.")
    customers: list[MemberPublic]
    next_cursor: str | None = Field(
        description="Opaque; pass it as `cursor` for the next page. Null on the last page."
    )
