"""A `features` vector is checked against the loaded model's features, not the whole registry: a
client of an older champion keeps working when the registry gains a feature."""

from __future__ import annotations

import pytest

from feature_store.registry import FEATURE_NAMES, MAX_MAGNITUDE, example_vector
from service.events import CustomerVector
from service.problems import ProblemError
from service.schemas.scoring import ScoreRequest
from service.scoring import given_vector

# A champion trained before the registry gained the last few features.
OLDER_MODEL = FEATURE_NAMES[:-3]


def _fields(problem: ProblemError) -> list[str]:
    return [error.field for error in problem.errors or []]


def test_a_vector_of_the_older_models_features_is_accepted():
    vector = example_vector(OLDER_MODEL)
    found = given_vector(OLDER_MODEL, "lead-1", vector)
    assert found == CustomerVector("lead-1", vector)


def test_a_name_neither_the_model_nor_the_registry_knows_is_refused_by_name():
    problem = given_vector(OLDER_MODEL, None, {**example_vector(OLDER_MODEL), "x": 2, "y": 1})
    assert isinstance(problem, ProblemError)
    assert (problem.status, problem.code) == (422, "validation_error")
    assert problem.detail == "unknown features: x, y"
    assert _fields(problem) == ["features.x", "features.y"]


def test_a_whole_registry_row_scores_with_a_model_of_fewer_features():
    """A row of the feature table carries every registry feature; the model uses its own."""
    found = given_vector(OLDER_MODEL, None, example_vector())
    assert found == CustomerVector(None, example_vector())


def test_a_registry_feature_the_model_does_not_use_is_still_range_checked():
    newer = FEATURE_NAMES[-1]
    problem = given_vector(OLDER_MODEL, None, {**example_vector(OLDER_MODEL), newer: -1.0})
    assert isinstance(problem, ProblemError)
    assert _fields(problem) == [f"features.{newer}"]


def test_every_feature_of_the_loaded_model_is_required():
    vector = example_vector(OLDER_MODEL)
    del vector["ltv"]
    problem = given_vector(OLDER_MODEL, None, vector)
    assert isinstance(problem, ProblemError)
    assert _fields(problem) == ["features.ltv"]


@pytest.mark.parametrize(
    ("name", "value"),
    [("seats", -1), ("seats", 2.5), ("is_annual", 2), ("api_share_30d", 1.01), ("mrr", 2e12)],
)
def test_values_are_bounded_by_the_registry(name, value):
    problem = given_vector(FEATURE_NAMES, None, {**example_vector(), name: value})
    assert isinstance(problem, ProblemError)
    assert _fields(problem) == [f"features.{name}"]


def test_a_model_feature_the_registry_lacks_takes_any_finite_number():
    names = ("mrr", "retired_feature")
    assert isinstance(
        given_vector(names, None, {"mrr": 1.0, "retired_feature": -5.0}), CustomerVector
    )
    problem = given_vector(names, None, {"mrr": 1.0, "retired_feature": -2 * MAX_MAGNITUDE})
    assert _fields(problem) == ["features.retired_feature"]  # type: ignore[union-attr]


def test_the_request_schema_documents_the_registry_with_its_example():
    schema = ScoreRequest.model_json_schema()["properties"]["features"]
    assert schema["examples"] == [example_vector()]
    assert list(schema["properties"]) == list(FEATURE_NAMES)
    assert schema["properties"]["is_annual"] | {"description": ""} == {
        "type": "number", "minimum": 0.0, "maximum": 1.0, "multipleOf": 1, "description": "",
    }  # fmt: skip
    assert "required" not in schema  # which features are required depends on the loaded model


def test_extra_registry_features_build_no_model_per_combination():
    """A client varying which unused registry features it sends cannot make the service build a
    validator per combination (each takes milliseconds; a batch holds up to 1,000 items)."""
    from itertools import combinations

    from service.schemas.features import _registry_feature, vector_model

    extras = [name for name in FEATURE_NAMES if name not in OLDER_MODEL]
    given_vector(OLDER_MODEL, None, example_vector(OLDER_MODEL))
    models_before = vector_model.cache_info().currsize
    for size in range(1, len(extras) + 1):
        for chosen in combinations(extras, size):
            vector = {**example_vector(OLDER_MODEL), **example_vector(chosen)}
            assert isinstance(given_vector(OLDER_MODEL, None, vector), CustomerVector)
    assert vector_model.cache_info().currsize == models_before
    assert _registry_feature.cache_info().currsize <= len(FEATURE_NAMES)
