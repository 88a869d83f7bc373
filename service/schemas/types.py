"""Strict field types shared by the request schemas (numbers are numbers, never strings) and
the paths (a number is written one way)."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import Path, Query
from pydantic import BeforeValidator, Field

from feature_store.schema import MAX_AMOUNT


def _whole(value: object) -> object:
    """JSON Schema counts 6.0 as an integer; accept it as 6. Strings and booleans stay refused."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def whole_number(**constraints: Any) -> Any:
    """A strict integer type with ``Field`` constraints (``ge``, ``le``)."""
    return Annotated[int, Field(strict=True, **constraints), BeforeValidator(_whole)]


Money = Annotated[float, Field(strict=True, allow_inf_nan=False, ge=0, le=MAX_AMOUNT)]
PositiveMoney = Annotated[float, Field(strict=True, allow_inf_nan=False, gt=0, le=MAX_AMOUNT)]


def _digits(value: object, what: str = "the id") -> object:
    """A path's number written one way only: "5", never "05", "+5", "5.0" or " 5", which the lax
    integer parsing reads as 5 (two addresses for one resource, and ids a CRM would store
    differently from ours)."""
    if isinstance(value, str) and not _DIGITS.fullmatch(value):
        raise ValueError(f"write {what} in digits, without a sign, a point or leading zeros")
    return value


def _count_digits(value: object) -> object:
    # a count, not an id: "limit=abc" was told to "write the id in digits" (a CRM's probe)
    return _digits(value, "the number")


# any length: the bounds say what is too large ("less than or equal to 10000")
_DIGITS = re.compile(r"0|[1-9][0-9]*")
# A public segment id in a path (stable across versions).
# (Path before the validator: after it, FastAPI writes the bounds as "ge"/"le", which JSON Schema
# does not know, instead of "minimum"/"maximum".)
SegmentIdPath = Annotated[
    int,
    Path(ge=0, le=10_000, description="Public segment id (stable across versions)."),
    BeforeValidator(_digits),
]
# A discovery job's id in a path.
JobIdPath = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]


def count_query(low: int, high: int, description: str | None = None) -> Any:
    """A whole number in a query string, written one way as path ids are ("02" and "2.0" were
    read as 2), within ``low``..``high``."""
    return Annotated[
        int, Query(ge=low, le=high, description=description), BeforeValidator(_count_digits)
    ]
