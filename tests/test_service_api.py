"""The scoring service over HTTP, against a real ``segments serve`` on loopback: auth, problem
documents, strict validation, the three ways of naming a customer, batches, catalog, metrics."""

from __future__ import annotations

import json
import math

import httpx
import pandas as pd
import pytest
from service_support import AS_OF, base_env, cli, client, running_service, trained_home

PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def home(tmp_path_factory, demo_files):
    return trained_home(tmp_path_factory.getbasetemp(), demo_files)


@pytest.fixture(scope="module")
def url(home, tmp_path_factory):
    env = base_env(home, SEGMENTS_MAX_BATCH_ITEMS="400", SEGMENTS_MAX_BODY_BYTES=str(1 << 20))
    with running_service(env, tmp_path_factory.mktemp("api") / "serve.log") as base:
        yield base


@pytest.fixture(scope="module")
def api(url):
    with client(url) as http:
        yield http


@pytest.fixture(scope="module")
def features(home) -> pd.DataFrame:
    return pd.read_parquet(home / "features.parquet")


def assert_problem(response: httpx.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["status"] == status
    assert body["code"] == code
    assert body["type"].endswith(code)
    assert {"type", "title", "status", "detail", "code"} <= set(body)
    assert "Traceback" not in response.text
    return body


def events_of(demo_files, customer_id: str) -> dict[str, list[dict]]:
    """A demo customer's raw events in the request shape, without customer_id on each event."""
    out = {}
    for stream in ("billing", "usage"):
        table = pd.read_parquet(demo_files[stream])
        rows = table[table["customer_id"] == customer_id].drop(columns="customer_id")
        records = []
        for row in rows.to_dict("records"):
            event = {k: v for k, v in row.items() if not (isinstance(v, float) and math.isnan(v))}
            event["occurred_at"] = row["occurred_at"].isoformat()
            if "seats" in event:
                event["seats"] = int(event["seats"])
            records.append({k: v for k, v in event.items() if v is not None})
        out[stream] = records
    return out


# --- authentication ---------------------------------------------------------------------------

PROTECTED = [
    ("POST", "/v1/score", {"customer_id": "cus_000001"}),
    ("POST", "/v1/score/batch", {"items": [{"customer_id": "cus_000001"}]}),
    ("GET", "/v1/segments", None),
    ("GET", "/v1/segments/0", None),
    ("GET", "/v1/model", None),
]


@pytest.mark.parametrize(("method", "path", "body"), PROTECTED)
@pytest.mark.parametrize("key", [None, "not-a-key"])
def test_every_v1_route_refuses_a_missing_or_unknown_key(url, method, path, body, key):
    with client(url, key) as http:
        response = http.request(method, path, json=body)
    assert_problem(response, 401, "unauthorized")


def test_a_caller_without_a_key_gets_401_before_any_validation(url):
    with client(url, None) as http:
        response = http.post(
            "/v1/score", content=b"{not json", headers={"content-type": "application/json"}
        )
        assert_problem(response, 401, "unauthorized")
        assert_problem(http.get("/v1/segments/not-a-number"), 401, "unauthorized")


@pytest.mark.parametrize(
    ("key", "method", "path", "body"),
    [
        ("read-key", "POST", "/v1/score", {"customer_id": "cus_000001"}),
        ("read-key", "POST", "/v1/score/batch", {"items": [{"customer_id": "cus_000001"}]}),
        ("score-key", "GET", "/v1/segments", None),
        ("score-key", "GET", "/v1/model", None),
    ],
)
def test_a_key_without_the_scope_is_403(url, key, method, path, body):
    with client(url, key) as http:
        assert_problem(http.request(method, path, json=body), 403, "forbidden")


def test_health_metrics_and_docs_need_no_key(url):
    with client(url, None) as http:
        assert http.get("/health/live").json() == {"status": "ok"}
        assert http.get("/health/ready").json()["status"] == "ready"
        assert http.get("/metrics").status_code == 200
        assert http.get("/openapi.json").status_code == 200


# --- scoring ----------------------------------------------------------------------------------


def test_scoring_every_customer_by_id_matches_segments_assign(api, home, features, tmp_path):
    out = tmp_path / "assignments.csv"
    cli(["assign", "--in", str(home / "features.parquet"), "--out", str(out)], base_env(home))
    expected = pd.read_csv(out, dtype={"customer_id": str}).set_index("customer_id")
    items = [{"customer_id": cid} for cid in features["customer_id"]]
    response = api.post("/v1/score/batch", json={"items": items, "explain": False})
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert len(results) == len(expected)
    for item, result in zip(items, results, strict=True):
        assert result["status"] == 200, result
        got, want = result["assignment"], expected.loc[item["customer_id"]]
        assert got["customer_id"] == item["customer_id"]
        assert got["segment"]["id"] == want["segment_id"]
        assert got["segment"]["name"] == want["segment_name"]
        assert got["is_outlier"] == bool(want["is_outlier"])
        assert got["confidence"] == pytest.approx(want["confidence"], abs=1e-9)
        assert got["explanation"] is None
    for customer in features["customer_id"].iloc[::15]:  # and one request per customer
        got = api.post("/v1/score", json={"customer_id": customer}).json()
        assert got["segment"]["id"] == expected.loc[customer, "segment_id"]


def test_one_customer_by_id_is_the_assignment_object_with_its_explanation(api, features):
    customer = features.iloc[0]
    response = api.post("/v1/score", json={"customer_id": customer["customer_id"], "top_k": 3})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert {
        "customer_id",
        "segment",
        "confidence",
        "is_outlier",
        "runner_up",
        "explanation",
        "features",
        "model",
    } <= set(body)
    assert body["model"]["name"] == "customer-segments"
    assert 0 <= body["confidence"] <= 1
    assert body["runner_up"]["margin"] == pytest.approx(
        body["confidence"] - (body["confidence"] - body["runner_up"]["margin"])
    )
    contributions = body["explanation"]["contributions"]
    assert len(contributions) == 3
    sizes = [abs(c["contribution"]) for c in contributions]
    assert sizes == sorted(sizes, reverse=True)
    # The registered model carries the population quantiles through save, registry and load:
    # each percentile is the value's rank among the training customers, counted here directly.
    for item in contributions:
        column = features[item["feature"]]
        below, same = (column < item["value"]).mean(), (column == item["value"]).mean()
        assert item["percentile"] == pytest.approx(100 * (below + same / 2), abs=1.0)
    for name, value in body["features"].items():
        assert value == pytest.approx(float(customer[name]))


def test_with_top_k_at_least_the_feature_count_the_explanation_adds_up(api, features):
    customer = features["customer_id"].iloc[1]
    body = api.post("/v1/score", json={"customer_id": customer, "top_k": 100}).json()
    explanation = body["explanation"]
    assert len(explanation["contributions"]) == len(body["features"])
    total = explanation["base_value"] + sum(c["contribution"] for c in explanation["contributions"])
    assert total == pytest.approx(explanation["output_value"], abs=1e-6)


def test_a_feature_vector_scores_like_the_stored_customer(api, features):
    row = features.iloc[2]
    vector = {name: float(row[name]) for name in features.columns if name != "customer_id"}
    by_features = api.post("/v1/score", json={"customer_id": "lead-1", "features": vector}).json()
    by_id = api.post("/v1/score", json={"customer_id": row["customer_id"]}).json()
    assert by_features["customer_id"] == "lead-1"
    for key in ("segment", "confidence", "is_outlier", "runner_up", "explanation", "features"):
        assert by_features[key] == by_id[key]


def test_events_of_a_customer_the_store_never_saw_are_scored_with_the_batch_features(
    api, features, demo_files
):
    known = features.iloc[3]
    events = events_of(demo_files, known["customer_id"])
    response = api.post(
        "/v1/score", json={"customer_id": "brand-new-lead", "events": events, "as_of": AS_OF}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["customer_id"] == "brand-new-lead"
    for name, value in body["features"].items():
        assert value == pytest.approx(float(known[name]), rel=1e-9, abs=1e-9), name
    by_id = api.post("/v1/score", json={"customer_id": known["customer_id"]}).json()
    assert body["segment"] == by_id["segment"]
    unknown = api.post("/v1/score", json={"customer_id": "brand-new-lead"})
    assert_problem(unknown, 404, "unknown_customer")


def test_events_may_carry_the_customer_id_but_not_another_one(api, features, demo_files):
    customer = features["customer_id"].iloc[4]
    events = events_of(demo_files, customer)
    for stream in events.values():
        for event in stream:
            event["customer_id"] = "lead-7"
    named = api.post("/v1/score", json={"events": events, "as_of": AS_OF})
    assert named.status_code == 200, named.text
    assert named.json()["customer_id"] == "lead-7"
    events["usage"][0]["customer_id"] = "someone-else"
    clash = api.post("/v1/score", json={"customer_id": "lead-7", "events": events, "as_of": AS_OF})
    body = assert_problem(clash, 422, "validation_error")
    assert body["errors"] == [
        {
            "field": "events.usage[0].customer_id",
            "message": "every event must belong to customer 'lead-7'",
        }
    ]


def test_events_are_checked_against_the_schema_then_the_events_contract(api):
    started = {
        "event_id": "b1",
        "occurred_at": "2026-01-01T00:00:00Z",
        "type": "subscription_started",
        "plan": "team",
        "interval": "month",
        "seats": 3,
    }
    body = assert_problem(
        api.post("/v1/score", json={"events": {"billing": [started]}}), 422, "validation_error"
    )
    assert body["errors"] == [{"field": "events.billing[0].mrr", "message": "Field required"}]
    # The schema cannot tell a real date; the contract's own check (as in ingestion) does.
    events = {
        "billing": [{**started, "mrr": 90.0}],
        "usage": [
            {"event_id": "u1", "occurred_at": "2026-06-01T00:00:00Z", "event": "login"},
            {"event_id": "u2", "occurred_at": "2026-02-31T10:00:00Z", "event": "login"},
        ],
    }
    body = assert_problem(api.post("/v1/score", json={"events": events}), 422, "validation_error")
    assert body["errors"] == [
        {
            "field": "events.usage[1].occurred_at",
            "message": "occurred_at is not valid (invalid_occurred_at)",
        }
    ]


def test_an_event_id_reused_for_another_event_is_refused_not_dropped(api):
    login = {"event_id": "u1", "occurred_at": "2026-06-01T00:00:00Z", "event": "login"}
    resent = dict(login)
    reused = {**login, "event": "api_call"}
    request = {"customer_id": "lead-7", "as_of": "2026-06-30"}
    ok = api.post("/v1/score", json={**request, "events": {"usage": [login, resent]}})
    assert ok.status_code == 200  # an exact re-send is a duplicate, counted once
    assert ok.json()["features"]["events_30d"] == 1.0
    body = assert_problem(
        api.post("/v1/score", json={**request, "events": {"usage": [login, reused]}}),
        422,
        "validation_error",
    )
    assert body["errors"] == [
        {
            "field": "events.usage[1].event_id",
            "message": "event_id already used by another event of this request "
            "(conflicting_duplicate)",
        }
    ]


def test_events_all_after_as_of_leave_nothing_to_score(api):
    events = {
        "usage": [{"event_id": "u1", "occurred_at": "2026-07-05T00:00:00Z", "event": "login"}]
    }
    body = assert_problem(
        api.post("/v1/score", json={"customer_id": "x", "events": events, "as_of": "2026-06-30"}),
        422,
        "validation_error",
    )
    assert body["errors"][0]["field"] == "events"


def test_an_unknown_customer_is_404(api):
    body = assert_problem(
        api.post("/v1/score", json={"customer_id": "cus_nobody"}), 404, "unknown_customer"
    )
    assert "cus_nobody" in body["detail"]


# --- validation -------------------------------------------------------------------------------


def _vector(features: pd.DataFrame) -> dict[str, float]:
    row = features.iloc[0]
    return {name: float(row[name]) for name in features.columns if name != "customer_id"}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"mrr": "839.06"}, "features.mrr"),  # a string where a number belongs
        ({"seats": True}, "features.seats"),
        ({"seats": -1}, "features.seats"),  # out of range
        ({"api_share_30d": 1.5}, "features.api_share_30d"),
        ({"is_annual": 0.5}, "features.is_annual"),
        ({"mrr": 1e300}, "features.mrr"),
        ({"favourite_colour": 3}, "features.favourite_colour"),  # unknown feature
    ],
)
def test_feature_values_are_refused_never_coerced(api, features, change, field):
    vector = {**_vector(features), **change}
    body = assert_problem(api.post("/v1/score", json={"features": vector}), 422, "validation_error")
    assert field in [error["field"] for error in body["errors"]]


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_refused(api, features, literal):
    # Built by hand: JSON has no NaN, but a lenient parser accepts the literal.
    vector = _vector(features)
    parts = [f'"{k}": {literal if k == "mrr" else json.dumps(v)}' for k, v in vector.items()]
    response = api.post(
        "/v1/score",
        content=('{"features": {' + ", ".join(parts) + "}}").encode(),
        headers={"content-type": "application/json"},
    )
    body = assert_problem(response, 422, "validation_error")
    assert [e["field"] for e in body["errors"]] == ["features.mrr"]


def test_a_missing_feature_is_refused(api, features):
    vector = _vector(features)
    del vector["ltv"]
    body = assert_problem(api.post("/v1/score", json={"features": vector}), 422, "validation_error")
    assert body["errors"][0]["field"] == "features.ltv"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"customer_id": "cus_000001", "colour": "red"}, "colour"),
        ({"customer_id": "cus_000001", "top_k": 0}, "top_k"),
        ({"customer_id": "cus_000001", "top_k": 101}, "top_k"),
        ({"customer_id": "cus_000001", "top_k": "5"}, "top_k"),
        ({"customer_id": "cus_000001", "top_k": 2.5}, "top_k"),
        ({"customer_id": "cus_000001", "top_k": True}, "top_k"),
        ({"customer_id": "cus_000001", "explain": "yes"}, "explain"),
        ({"customer_id": 12}, "customer_id"),
        ({"customer_id": ""}, "customer_id"),
        ({"customer_id": "cus_000001", "as_of": "2026-06-30"}, "body"),
        ({"events": {"usage": []}, "as_of": "last tuesday"}, "as_of"),
        ({}, "body"),
        ({"customer_id": None, "features": {}}, "customer_id"),  # omitted, never null
        ([], "body"),
    ],
)
def test_requests_are_validated_strictly(api, body, field):
    problem = assert_problem(api.post("/v1/score", json=body), 422, "validation_error")
    assert field in [error["field"] for error in problem["errors"]], problem


def test_features_and_events_together_are_refused(api, features, demo_files):
    events = events_of(demo_files, features["customer_id"].iloc[0])
    body = {"features": _vector(features), "events": events}
    problem = assert_problem(api.post("/v1/score", json=body), 422, "validation_error")
    assert problem["errors"] == [
        {"field": "body", "message": "give either features or events, not both"}
    ]


def test_a_body_that_is_not_json_is_422(api):
    response = api.post("/v1/score", content=b"{", headers={"content-type": "application/json"})
    assert assert_problem(response, 422, "validation_error")["errors"][0]["field"] == "body"


def test_a_body_over_the_limit_is_413(api):
    big = {"customer_id": "x" * 10, "padding": "y" * (1 << 20)}
    assert_problem(api.post("/v1/score", json=big), 413, "payload_too_large")

    def chunks():  # no Content-Length: the limit applies while the body streams in
        yield b'{"customer_id": "'
        for _ in range(40):
            yield b"z" * 65536
        yield b'"}'

    response = api.post("/v1/score", content=chunks(), headers={"content-type": "application/json"})
    assert_problem(response, 413, "payload_too_large")


def test_unknown_routes_and_methods_are_problem_documents(api):
    assert_problem(api.get("/v2/nothing"), 404, "not_found")
    assert_problem(api.get("/v1/score"), 405, "method_not_allowed")


# --- batches ----------------------------------------------------------------------------------


def test_each_batch_item_succeeds_or_fails_on_its_own(api, features, demo_files):
    known = features["customer_id"].iloc[5]
    items = [
        {"customer_id": known},
        {"customer_id": "cus_nobody"},
        {"features": {"mrr": "a lot"}},
        {"customer_id": "lead-9", "events": events_of(demo_files, known), "as_of": AS_OF},
        {"customer_id": "lead-10", "features": _vector(features), "explain": True, "top_k": 2},
        {"customer_id": None},
    ]
    response = api.post("/v1/score/batch", json={"items": items, "explain": False})
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["status"] for r in results] == [200, 404, 422, 200, 200, 422]
    assert results[0]["assignment"]["explanation"] is None
    assert results[1]["problem"]["code"] == "unknown_customer"
    assert "features.mrr" in [e["field"] for e in results[2]["problem"]["errors"]]
    assert results[3]["assignment"]["segment"] == results[0]["assignment"]["segment"]
    assert len(results[4]["assignment"]["explanation"]["contributions"]) == 2
    assert set(results[0]) == {"status", "assignment"}
    assert set(results[1]) == {"status", "problem"}


def test_batch_items_may_reuse_each_others_event_ids(api, features, demo_files):
    items = []
    for customer in features["customer_id"].iloc[6:9]:
        events = events_of(demo_files, customer)
        for stream, rows in events.items():
            for n, event in enumerate(rows):
                event["event_id"] = f"{stream}-{n}"  # the same ids in every item
        items.append({"customer_id": customer, "events": events, "as_of": AS_OF})
    results = api.post("/v1/score/batch", json={"items": items, "explain": False}).json()["results"]
    for item, result in zip(items, results, strict=True):
        alone = api.post("/v1/score", json={**item, "explain": False}).json()
        assert result == {"status": 200, "assignment": alone}
        stored = features.set_index("customer_id").loc[item["customer_id"]]
        assert alone["features"] == pytest.approx(stored.astype(float).to_dict())


@pytest.mark.parametrize(
    "items",
    [[], [{"customer_id": "cus_000001"}] * 401, ["not an object"]],
    ids=["empty", "over-the-maximum", "not-objects"],
)
def test_a_batch_is_one_to_max_objects(api, items):
    body = assert_problem(
        api.post("/v1/score/batch", json={"items": items}), 422, "validation_error"
    )
    assert body["errors"][0]["field"].startswith("items")


# --- catalog, model card, metrics -------------------------------------------------------------


def test_the_segment_catalog_has_every_profile(api, home):
    listing = api.get("/v1/segments").json()
    version = (home / "READY").read_text()
    assert listing["model"] == {"name": "customer-segments", "version": version}
    segments = listing["segments"]
    assert [s["id"] for s in segments] == list(range(len(segments)))
    assert sum(s["size"] for s in segments) == 300
    one = api.get("/v1/segments/1").json()
    assert one == segments[1]
    assert {"name", "share", "mrr_share", "churn_rate", "typical_ranges", "distinguishing"} <= set(
        one
    )
    assert_problem(api.get(f"/v1/segments/{len(segments)}"), 404, "unknown_segment")
    assert_problem(api.get("/v1/segments/-1"), 422, "validation_error")


def test_the_model_card_names_version_metrics_and_features(api, home):
    card = api.get("/v1/model").json()
    assert card["name"] == "customer-segments"
    assert card["version"] == (home / "READY").read_text()
    assert card["source"] == "registry"
    assert card["trained_at"]
    assert "surrogate_fidelity" in card["metrics"]
    assert "silhouette" in card["metrics"]
    names = [f["name"] for f in card["features"]]
    assert {"mrr", "api_share_30d", "seat_utilization"} <= set(names)
    assert all({"unit", "description", "minimum", "maximum"} <= set(f) for f in card["features"])


def test_metrics_count_latency_scores_and_the_model(api, url):
    api.post("/v1/score", json={"customer_id": "cus_000001"})
    text = httpx.get(url + "/metrics").text
    assert (
        'segments_http_request_duration_seconds_bucket{le="0.005",method="POST",route="/v1/score",status="200"}'
        in text
    )
    assert "segments_scores_total{" in text
    assert "segments_model_version" in text
    assert 'segments_model_reload_failures_total{reason="integrity"} 0.0' in text
    assert 'route="/v2/nothing"' not in text  # raw paths never become labels


def test_the_openapi_document_has_examples_for_every_route(url):
    schema = httpx.get(url + "/openapi.json").json()
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            if "requestBody" in operation:
                content = operation["requestBody"]["content"]["application/json"]
                assert content.get("examples"), (method, path)
            ok = operation["responses"]["200"]["content"]
            assert any("example" in media or "examples" in media for media in ok.values()), (
                method,
                path,
            )
            for status, response in operation["responses"].items():
                if status.startswith(("4", "5")):
                    assert list(response["content"]) == [PROBLEM], (method, path, status)
