"""Strict field types shared by the request schemas: numbers are numbers, never strings."""

from __future__ import annotations

from typing import Annotated, Any

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
