"""Small pieces of the service on their own: keys, the local model copy, error locations."""

from __future__ import annotations

import json
import stat

import pytest
from pydantic import ValidationError

from pipelines.artifacts import ModelIntegrityError, sha256_of
from service.cache import LocalModelCache
from service.events import reason_error
from service.keys import ApiKeys, ensure_local_key
from service.problems import field_path, pydantic_errors
from service.schemas.scoring import ScoreRequest
from service.settings import Scope


def test_keys_map_to_their_scopes_and_unknown_keys_to_none():
    keys = ApiKeys({"crm": ["score"], "ops": ["score", "read", "admin"]})
    assert keys.scopes_of("crm") == {Scope.score}
    assert keys.scopes_of("ops") == {Scope.score, Scope.read, Scope.admin}
    assert keys.scopes_of("CRM") is None
    assert keys.scopes_of("") is None


def test_the_local_key_is_made_once_and_readable_only_by_its_owner(tmp_path):
    path = tmp_path / "home" / "api_keys.json"
    key, created = ensure_local_key(path)
    assert created
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text()) == {key: ["score", "read", "admin", "ingest"]}
    assert ensure_local_key(path) == (key, False)


def _model_files(folder):
    folder.mkdir(parents=True)
    (folder / "segmenter.joblib").write_bytes(b"segmenter")
    (folder / "profiles.json").write_text("{}")
    return {name: sha256_of(folder / name) for name in ("segmenter.joblib", "profiles.json")}


def test_the_local_copy_keeps_the_last_good_version_only(tmp_path):
    cache = LocalModelCache(tmp_path / "cache")
    assert cache.last_good() is None
    hashes = _model_files(tmp_path / "download")
    cache.store("3", tmp_path / "download", hashes)
    cache.store("4", tmp_path / "download", hashes)
    cached = cache.last_good()
    assert (cached.version, cached.hashes) == ("4", hashes)
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["current.json", "v4"]


def test_a_tampered_local_copy_is_refused(tmp_path):
    cache = LocalModelCache(tmp_path / "cache")
    hashes = _model_files(tmp_path / "download")
    cache.store("1", tmp_path / "download", hashes)
    (tmp_path / "cache" / "v1" / "segmenter.joblib").write_bytes(b"something else")
    with pytest.raises(ModelIntegrityError, match="sha256"):
        cache.last_good()


@pytest.mark.parametrize(
    ("reason", "field", "message"),
    [
        ("missing_mrr", "events.billing[2].mrr", "mrr is required for this event (missing_mrr)"),
        (
            "non_positive_amount",
            "events.billing[2].amount",
            "amount must be greater than 0 (non_positive_amount)",
        ),
        ("malformed_row", "events.billing[2]", "event refused (malformed_row)"),
    ],
)
def test_quarantine_reasons_become_field_errors(reason, field, message):
    error = reason_error("billing", 2, reason)
    assert (error.field, error.message) == (field, message)


def test_error_locations_read_like_the_json_they_point_into():
    assert field_path(("items", 3, "features", "mrr")) == "items[3].features.mrr"
    with pytest.raises(ValidationError) as raised:
        ScoreRequest.model_validate(
            {
                "events": {
                    "billing": [
                        {"event_id": "b", "occurred_at": "2026-01-01", "type": "invoice_paid"}
                    ]
                }
            }
        )
    [error] = pydantic_errors(raised.value.errors())
    assert error.field == "events.billing[0].amount"  # the union's tag is not part of the path
