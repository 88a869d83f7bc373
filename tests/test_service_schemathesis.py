"""Schemathesis against the service's own OpenAPI document, in process (the ASGI app, no server),
with a valid key: at least 1,000 generated requests, schema-valid and schema-violating, over every
operation; no server error, no stack trace, every error a problem document, every response as
documented, and schema-violating requests refused."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import CHECKS
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance
from service_schemathesis_hooks import errors_are_problem_documents
from service_support import inprocess_app, trained_model

EXAMPLES_PER_OPERATION_AND_MODE = 60  # derandomized: the same cases every run
HEADERS = {"X-API-Key": "ops-key"}


@pytest.fixture(scope="module")
def api_schema(shared_root, demo_files):
    # A webhook secret is set so the Stripe route answers generated (unsigned) requests with 400,
    # not 503 webhook_not_configured; the key lacks `ingest`, so nothing is stored in the home.
    model = trained_model(shared_root, demo_files)
    app = inprocess_app(model, stripe_webhook_secrets="whsec_schemathesis")
    app.state.loader.refresh()  # loaded before the first request; the lifespan keeps it
    return schemathesis.openapi.from_asgi("/openapi.json", app)


def _check(case) -> None:
    # Schema-valid requests can still be refused for what JSON Schema cannot say: events that all
    # come after as_of, or a timestamp on 31 February. Those 422s are right.
    case.call_and_validate(
        headers=HEADERS,
        checks=[*CHECKS.get_all(), errors_are_problem_documents],
        excluded_checks=[positive_data_acceptance],
    )


@pytest.mark.slow
def test_generated_requests_find_no_server_error_and_only_problem_documents(api_schema):
    sent = 0
    for result in api_schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=EXAMPLES_PER_OPERATION_AND_MODE,
                deadline=None,
                database=None,
                derandomize=True,
                suppress_health_check=list(HealthCheck),
            )
            def run(case) -> None:
                nonlocal sent
                sent += 1
                _check(case)

            try:
                run()
            except Unsatisfiable:  # nothing to violate in an operation without parameters
                assert mode is GenerationMode.NEGATIVE, operation.label
    assert sent >= 1000
