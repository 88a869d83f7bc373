"""The service answers with public segment ids, serves their history and the last lineage, says
the as-of of the vector it used, and exports drift gauges (in process, a model with lineage)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from service_support import InProcessService, TrainedModel, inprocess_app, trained_model

FIRST_ID = 10  # ids that differ from positions, as a registry with history has


@pytest.fixture(scope="module")
def lineage_model(shared_root, tmp_path_factory, demo_files) -> TrainedModel:
    """The session's model given public ids from ``FIRST_ID`` (version 1), then traced again as
    version 2 against itself: every segment survives and keeps its id."""
    from models.registry import load_model, save_model
    from pipelines.identity import Predecessor, identify, membership

    base = trained_model(shared_root, demo_files)
    model = load_model(base.folder, base.hashes)
    features = pd.read_parquet(base.features)
    placed = model.place(model.values(features))
    members = membership(features["customer_id"], placed.segment, placed.is_outlier)
    first = identify(model, members, "1", None, FIRST_ID, features).model
    before = Predecessor("1", first, members)
    second = identify(model, members, "2", before, first.lineage.next_id, features).model
    folder = tmp_path_factory.mktemp("lineage-model") / "model"
    hashes = save_model(second, folder)
    return TrainedModel(base.home, folder, hashes)


@pytest.fixture(scope="module")
def api(lineage_model):
    app = inprocess_app(lineage_model, drift_interval_seconds=3600)
    with InProcessService(app) as service:
        yield service


def test_segments_are_served_under_their_public_ids_with_history(api):
    segments = api.get("/v1/segments").json()["segments"]
    ids = [s["id"] for s in segments]
    assert ids == list(range(FIRST_ID, FIRST_ID + len(ids)))
    assert all(s["since"] == "1" for s in segments)
    one = api.get(f"/v1/segments/{FIRST_ID}").json()
    assert [(h["version"], h["transition"], h["relation"]) for h in one["history"]] == [
        ("1", "new", "itself"),
        ("2", "survived", "itself"),
    ]
    assert one["history"][0]["text"] == f"version 1 made segment {FIRST_ID}"
    assert one["history"][1]["text"].startswith(f"version 2 kept segment {FIRST_ID} (100% of the")
    lineage = api.get("/v1/model/lineage").json()
    assert all(t["relation"] is None and t["text"] for t in lineage["transitions"])
    missing = api.get("/v1/segments/0")
    assert missing.status_code == 404
    assert missing.json()["code"] == "unknown_segment"


def test_the_last_lineage_is_served(api):
    lineage = api.get("/v1/model/lineage").json()
    assert (lineage["version"], lineage["previous"]) == ("2", "1")
    assert {t["transition"] for t in lineage["transitions"]} == {"survived"}
    assert lineage["next_id"] == FIRST_ID + len(lineage["transitions"])


def test_assignments_carry_public_ids_and_the_vectors_as_of(api, lineage_model):
    features = pd.read_parquet(lineage_model.features)
    customer = str(features["customer_id"].iloc[0])
    body = api.post("/v1/score", json={"customer_id": customer, "explain": True}).json()
    ids = {s["id"] for s in api.get("/v1/segments").json()["segments"]}
    assert body["segment"]["id"] in ids
    assert body["segment"]["since"] == "1"
    assert body["runner_up"]["id"] in ids
    assert body["explanation"]["versus"]["id"] == body["runner_up"]["id"]
    assert body["features_as_of"] == "2026-07-01T00:00:00Z"
    given = api.post("/v1/score", json={"features": body["features"]}).json()
    assert given["features_as_of"] is None


def test_an_explanation_answers_the_view_asked_for(api, lineage_model):
    """The contrast (default) says why this segment rather than the runner-up and gives the
    runner-up's typical range beside the segment's; the per-segment view stays available, per
    request and per batch item."""
    features = pd.read_parquet(lineage_model.features)
    customer = str(features["customer_id"].iloc[0])
    body = api.post("/v1/score", json={"customer_id": customer, "top_k": 4}).json()
    contrast = body["explanation"]
    assert contrast["method"] == "tree_shap_contrast"
    runner_up = api.get(f"/v1/segments/{body['runner_up']['id']}").json()
    for item in contrast["contributions"]:
        assert item["versus_typical_range"] == runner_up["typical_ranges"][item["feature"]]
        assert "; for the runner-up: " in item["text"]
    own = api.post(
        "/v1/score", json={"customer_id": customer, "top_k": 4, "explain_view": "segment"}
    ).json()["explanation"]
    assert (own["method"], own["versus"]) == ("tree_shap_surrogate", None)
    assert all(item["versus_typical_range"] is None for item in own["contributions"])
    assert not any("runner-up" in item["text"] for item in own["contributions"])
    items = [{"customer_id": customer}, {"customer_id": customer, "explain_view": "contrast"}]
    batch = api.post("/v1/score/batch", json={"items": items, "explain_view": "segment"}).json()
    methods = [r["assignment"]["explanation"]["method"] for r in batch["results"]]
    assert methods == ["tree_shap_surrogate", "tree_shap_contrast"]
    wrong = api.post("/v1/score", json={"customer_id": customer, "explain_view": "both"})
    assert wrong.status_code == 422
    assert wrong.headers["content-type"].startswith("application/problem+json")


def test_drift_gauges_cover_the_online_store_and_the_scored_traffic(api, lineage_model):
    features = pd.read_parquet(lineage_model.features)
    # traffic too small to measure says how much it holds (it exported nothing, unexplained)
    if "traffic" not in api.app.state.drift.refresh():
        waiting = 'segments_drift_waiting_rows{source="traffic"} '
        line = next(x for x in api.get("/metrics", key=None).text.splitlines() if waiting in x)
        assert 0 <= float(line.split()[-1]) < 50
    items = [{"customer_id": str(c)} for c in features["customer_id"].head(120)]
    assert api.post("/v1/score/batch", json={"items": items, "explain": False}).status_code == 200
    reports = api.app.state.drift.refresh()
    assert set(reports) == {"online_store", "traffic"}
    assert reports["online_store"].segment_psi < 0.1  # the store holds the training vectors
    metrics = api.get("/metrics", key=None).text
    for source in ("online_store", "traffic"):
        assert f'segments_drift_segment_share_psi{{source="{source}"}}' in metrics
    assert 'segments_drift_feature_wasserstein{feature="mrr",source="traffic"}' in metrics
    for source in ("online_store", "traffic"):
        assert f'segments_drift_measured_timestamp_seconds{{source="{source}"}}' in metrics
        assert f'segments_drift_waiting_rows{{source="{source}"}} 0.0' in metrics


def test_model_files_keep_the_lineage_and_the_reference(lineage_model):
    document = json.loads((Path(lineage_model.folder) / "profiles.json").read_text())
    assert document["lineage"]["version"] == "2"
    assert len(document["history"]) == 1
    assert "reference.parquet" in lineage_model.hashes
