"""A feature vector in a request: parsed as numbers here, checked against the loaded model later.

The request schema cannot know which features the model being served uses: a client of an older
champion must not be refused because the registry has since gained a feature. So a vector is parsed
as finite numbers by name (``FeatureValues``), and ``vector_errors`` then checks it against the
loaded model's own feature names: each is required, and each value lies within its registry
``minimum`` and ``maximum`` (flags are 0 or 1, shares lie in [0, 1], only signed features may be
negative; integer features must be whole numbers). A registry feature the model does not segment
on is checked the same way and then not used, so a whole row of the feature table scores with any
model (the registry keeps some features out of the model's input: ``FeatureDefinition.segmented``);
a name neither the model nor the registry knows is refused. The OpenAPI document still describes
every registry feature, with an example vector generated from the registry.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cache, lru_cache
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from feature_store.registry import FEATURES, MAX_MAGNITUDE, FeatureDefinition, find
from feature_store.registry import example_vector as registry_example
from service.problems import FieldError, pydantic_errors

EXAMPLE_VECTOR: dict[str, float | int] = registry_example()


def bounds(definition: FeatureDefinition | None) -> dict[str, float]:
    """The ``Field`` constraints of one feature: ``ge``, ``le`` and ``multiple_of``."""
    if definition is None:  # a model feature the registry no longer knows: any finite number
        return {"ge": -MAX_MAGNITUDE, "le": MAX_MAGNITUDE}
    limits: dict[str, float] = {"ge": definition.minimum, "le": definition.maximum}
    if definition.dtype == "int":
        limits["multiple_of"] = 1
    return limits


def _documented(definition: FeatureDefinition) -> dict[str, Any]:
    limits = bounds(definition)
    schema = {
        "type": "number",
        "description": f"{definition.description} ({definition.unit}).",
        "minimum": limits["ge"],
        "maximum": limits["le"],
    }
    return schema | ({"multipleOf": 1} if "multiple_of" in limits else {})


def _vector_schema(schema: dict[str, Any]) -> None:
    schema["properties"] = {definition.name: _documented(definition) for definition in FEATURES}
    schema["examples"] = [EXAMPLE_VECTOR]


FeatureValue = Annotated[float, Field(strict=True, allow_inf_nan=False)]
FeatureValues = Annotated[
    dict[str, FeatureValue],
    Field(
        description="Every feature of the loaded model by name (`GET /v1/model` lists them); "
        "other registry features may be sent and are checked but not used; numbers only, within "
        "each feature's range.",
        json_schema_extra=_vector_schema,
    ),
]


def _field(name: str) -> Any:
    definition = find(name)
    return (Annotated[float, Field(strict=True, allow_inf_nan=False, **bounds(definition))], ...)


class _Vector(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


@lru_cache(maxsize=8)  # one per model version served in a row; building one takes milliseconds
def vector_model(feature_names: tuple[str, ...]) -> type[BaseModel]:
    """A strict model requiring exactly ``feature_names``, each bounded by the registry."""
    return _vector_class(feature_names)


def _vector_class(feature_names: tuple[str, ...]) -> type[BaseModel]:
    fields = {name: _field(name) for name in feature_names}
    return create_model("FeatureVector", __base__=_Vector, **fields)  # type: ignore[call-overload]


def unknown_names(values: Mapping[str, float], feature_names: Sequence[str]) -> list[str]:
    """The names of ``values`` that are neither the model's features nor registry features."""
    known = set(feature_names)
    return [name for name in values if name not in known and find(name) is None]


# An unknown name is quoted whole up to this many characters, in an error's field and in the
# detail: twenty names of 200 KB each made a 4 MB answer.
MAX_NAME_CHARACTERS = 64


def shown_name(name: str) -> str:
    """``name`` as a problem document quotes it: cut, with an ellipsis, past
    ``MAX_NAME_CHARACTERS``."""
    return name if len(name) <= MAX_NAME_CHARACTERS else f"{name[:MAX_NAME_CHARACTERS]}…"


def vector_errors(values: Mapping[str, float], feature_names: Sequence[str]) -> list[FieldError]:
    """What is wrong with ``values`` as a vector for a model of ``feature_names``; empty if fine."""
    unknown = unknown_names(values, feature_names)
    errors = [
        FieldError(
            field=f"features.{shown_name(name)}",
            message="not a feature of the loaded model or of the registry (GET /v1/model lists "
            "the model's features)",
        )
        for name in unknown
    ]
    try:
        vector_model(tuple(feature_names)).model_validate(values)
    except ValidationError as error:
        errors += pydantic_errors(error.errors(), prefix="features")
    errors += _cancelled_but_paying(values)
    skipped = {*feature_names, *unknown}
    for name in values:  # registry features the model does not use: checked one by one
        if name in skipped:
            continue
        try:
            _registry_feature(name).model_validate({name: values[name]})
        except ValidationError as error:
            errors += pydantic_errors(error.errors(), prefix="features")
    return errors


def _cancelled_but_paying(values: Mapping[str, float]) -> list[FieldError]:
    """A cancelled subscription has no MRR and no seats (the features contract: 0 when the
    latest event is a cancellation); a vector saying both was scored as a typical member of a
    paying segment (a CRM integrator's review)."""
    if values.get("is_canceled") != 1:
        return []
    paying = {
        name: value
        for name in ("mrr", "seats")
        if isinstance(value := values.get(name), int | float) and value > 0
    }
    if not paying:
        return []
    said = ", ".join(f"{name} {value:g}" for name, value in paying.items())
    return [
        FieldError(
            field="features.is_canceled",
            message=f"1 (cancelled) beside {said}: a cancelled customer has no MRR and no seats",
        )
    ]


@cache  # one per registry feature at most: unknown names never reach it
def _registry_feature(name: str) -> type[BaseModel]:
    """A model of the one registry feature ``name``, bounded as in ``vector_model``."""
    return _vector_class((name,))
