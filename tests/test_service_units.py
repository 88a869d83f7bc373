"""Small pieces of the service on their own: keys, the local model copy, error locations,
timestamps, and what an ingestion cleans up."""

from __future__ import annotations

import json
import os
import stat

import pandas as pd
import pytest
from pydantic import ValidationError

from feature_store.ingest import ingest_files
from feature_store.layout import StoreLayout
from feature_store.memory import validate_events
from feature_store.timeutil import next_whole_second, parse_instant
from models.registry import ModelIntegrityError, sha256_of
from service.cache import LocalModelCache
from service.events import reason_error
from service.keys import KEY_FILE_FORMAT, ApiKeys, ensure_local_key, read_key_file
from service.problems import field_path, pydantic_errors
from service.schemas.events import CustomerEvents
from service.schemas.scoring import ScoreRequest
from service.settings import Scope


def test_keys_map_to_their_scopes_and_unknown_keys_to_none():
    keys = ApiKeys.of({"crm": ["score"], "ops": ["score", "read", "admin"]})
    assert keys.scopes_of("crm") == {Scope.score}
    assert keys.scopes_of("ops") == {Scope.score, Scope.read, Scope.admin}
    assert keys.scopes_of("CRM") is None
    assert keys.scopes_of("") is None


def test_the_local_key_is_made_once_kept_as_a_salted_hash_and_readable_only_by_its_owner(
    tmp_path,
):
    path = tmp_path / "home" / "api_keys.json"
    key, created = ensure_local_key(path)
    assert created
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    assert key not in text
    stored = json.loads(text)
    assert stored["format"] == KEY_FILE_FORMAT
    assert list(stored["keys"].values()) == [[s.value for s in Scope]]  # every scope
    assert ensure_local_key(path) == (None, False)  # shown once, never again
    keys = read_key_file(path)
    assert keys.scopes_of(key) == set(Scope)
    assert keys.scopes_of(key + "x") is None
    other = tmp_path / "other" / "api_keys.json"
    ensure_local_key(other)
    assert json.loads(other.read_text())["salt"] != stored["salt"]  # a salt per file


def test_a_plain_text_key_file_is_read_and_rewritten_hashed(tmp_path):
    path = tmp_path / "api_keys.json"
    path.write_text(json.dumps({"old-key": ["read"]}))
    assert read_key_file(path).scopes_of("old-key") == {Scope.read}
    assert ensure_local_key(path) == ("old-key", False)
    assert "old-key" not in path.read_text()
    assert read_key_file(path).scopes_of("old-key") == {Scope.read}


@pytest.mark.parametrize(
    ("stamp", "instant"),
    [
        ("2026-01-01T10:00:00+02:00", "2026-01-01 08:00:00"),
        ("2026-01-01T10:00:00-14:00", "2026-01-02 00:00:00"),
        ("2026-01-01 10:00:00.123456789", "2026-01-01 10:00:00.123456"),
        ("2026-01-01", "2026-01-01 00:00:00"),
        ("2026-01-01T10:00:00+99:99", None),
        ("2026-01-01T10:00:00+25:00", None),
        ("2026-01-01T10:00:00+14:01", None),
        (" 2026-01-01T10:00:00Z", None),
        ("2026-01-01T10:00:00Z ", None),
        ("\t2026-01-01", None),
        ("275760-01-01T00:00:00Z", None),
        ("1969-12-31T23:59:59Z", None),
        ("9999-12-31T23:00:00-01:00", None),
        # 24:00 closes a day, in Python as in ingestion (scoring refused what ingestion stored)
        ("2026-12-01T24:00:00Z", "2026-12-02 00:00:00"),
        ("2026-12-01T24:00", "2026-12-02 00:00:00"),
        ("2026-12-31 24:00:00.000+02:00", "2026-12-31 22:00:00"),
        ("2026-12-01T24:30:00Z", None),
        ("2026-12-01T24:00:01Z", None),
        ("9999-12-31T24:00:00Z", None),
    ],
)
def test_timestamps_are_read_by_one_strict_rule_in_python_and_in_ingestion(stamp, instant):
    try:
        parsed = str(parse_instant(stamp))
    except ValueError:
        parsed = None
    assert parsed == instant
    validated = validate_events(
        {"usage": [{"event_id": "e", "customer_id": "c", "occurred_at": stamp, "event": "login"}]}
    )
    typed = validated.events["usage"]["occurred_at"]
    assert (str(typed.iloc[0]) if len(typed) else None) == instant
    if instant is None:
        assert validated.rejected[0].reasons == ["invalid_occurred_at"]


def test_a_features_as_of_stamp_in_whole_seconds_never_precedes_the_moment_it_covers():
    # A refresh at 12:00:07.4 holds every event stored by then: stamped 12:00:07 it would claim to
    # exclude an event of 12:00:07.2 that it holds.
    assert str(next_whole_second(parse_instant("2026-06-30T12:00:07.4Z"))) == "2026-06-30 12:00:08"
    assert str(next_whole_second(parse_instant("2026-06-30T23:59:59.9Z"))) == "2026-07-01 00:00:00"
    assert str(next_whole_second(parse_instant("2026-06-30T12:00:07Z"))) == "2026-06-30 12:00:07"


def test_an_ingest_removes_the_partial_parts_a_killed_one_left(tmp_path):
    layout = StoreLayout(tmp_path / "home")
    stale = layout.stream_dir("usage") / ".20260101T000000000000Z-abcdef.parquet.partial"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"half a part")
    events = tmp_path / "usage.csv"
    events.write_text("event_id,customer_id,occurred_at,event\nu1,c1,2026-01-01,login\n")
    ingest_files(layout, {"usage": events})
    assert not stale.exists()
    assert [p.suffix for p in layout.stream_dir("usage").iterdir()] == [".parquet"]


def _model_files(folder, segmenter=b"segmenter"):
    folder.mkdir(parents=True)
    (folder / "segmenter.joblib").write_bytes(segmenter)
    (folder / "profiles.json").write_text("{}")
    return {name: sha256_of(folder / name) for name in ("segmenter.joblib", "profiles.json")}


def _cache(tmp_path):
    return LocalModelCache(tmp_path / "service" / "cache", tmp_path / "service" / "cache.key")


def test_the_local_copy_keeps_the_last_good_version_only(tmp_path):
    cache = _cache(tmp_path)
    assert cache.last_good() is None
    hashes = _model_files(tmp_path / "download")
    cache.store("3", tmp_path / "download", hashes)
    cache.store("4", tmp_path / "download", hashes)
    cached = cache.last_good()
    assert (cached.version, cached.hashes) == ("4", hashes)
    assert _kept(cache) == ["current.json", "v4"]
    assert stat.S_IMODE(cache.key_file.stat().st_mode) == 0o600


def _kept(cache: LocalModelCache) -> list[str]:
    """The cache folder's pointer and copies (not its lock file)."""
    return sorted(p.name for p in cache.root.iterdir() if not p.name.startswith("."))


def test_workers_storing_two_versions_at_once_leave_a_pointer_to_a_kept_copy(tmp_path):
    """Two workers storing versions 2 and 3 at the same moment (a swap seen by one and a roll-back
    by the other) could each write the pointer and then prune the other's copy: the pointer then
    named a folder neither kept, and a service started while the registry was down had no model
    (52 of 200 rounds broke so, before the lock)."""
    import threading

    downloads = {
        version: _model_files(tmp_path / f"download-{version}", segmenter=version.encode())
        for version in ("2", "3")
    }
    for _ in range(100):
        together = threading.Barrier(2)

        def store(version: str, together: threading.Barrier) -> None:
            together.wait()
            _cache(tmp_path).store(version, tmp_path / f"download-{version}", downloads[version])

        workers = [
            threading.Thread(target=store, args=(version, together)) for version in downloads
        ]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        cached = _cache(tmp_path).last_good()
        assert cached is not None
        assert cached.hashes == downloads[cached.version]
        assert _kept(_cache(tmp_path)) == ["current.json", f"v{cached.version}"]


def test_a_copy_cut_short_leaves_no_staging_folder_behind(tmp_path):
    """A full disk left a `.staging-*` folder beside the cache at every poll (an operator's
    review): a copy that fails, to copy or to verify, is removed."""
    cache = _cache(tmp_path)
    hashes = _model_files(tmp_path / "download")
    (tmp_path / "download" / "profiles.json").write_text('{"changed": true}')  # fails its sha256
    with pytest.raises(ModelIntegrityError):
        cache.store("1", tmp_path / "download", hashes)
    with pytest.raises(FileNotFoundError):
        cache.store("1", tmp_path / "download", hashes | {"explainer.joblib": "0" * 64})
    assert not list(cache.root.glob(".staging-*"))
    assert cache.last_good() is None


def test_a_tampered_local_copy_is_refused(tmp_path):
    cache = _cache(tmp_path)
    hashes = _model_files(tmp_path / "download")
    cache.store("1", tmp_path / "download", hashes)
    (cache.root / "v1" / "segmenter.joblib").write_bytes(b"something else")
    with pytest.raises(ModelIntegrityError, match="sha256"):
        cache.last_good()


def test_a_damaged_local_copy_is_replaced_when_the_version_is_stored_again(tmp_path):
    cache = _cache(tmp_path)
    hashes = _model_files(tmp_path / "download")
    cache.store("1", tmp_path / "download", hashes)
    (cache.root / "v1" / "segmenter.joblib").write_bytes(b"something else")
    cache.store("1", tmp_path / "download", hashes)  # the next load from the registry
    assert cache.last_good().hashes == hashes
    assert (cache.root / "v1" / "segmenter.joblib").read_bytes() == b"segmenter"
    assert _kept(cache) == ["current.json", "v1"]


def _swap_in_other_files(cache, tmp_path) -> dict[str, str]:
    """Version 2's files put in version 1's place, with a record rewritten to match them."""
    other = _model_files(tmp_path / "other", segmenter=b"another segmenter")
    for name in other:
        (cache.root / "v1" / name).write_bytes((tmp_path / "other" / name).read_bytes())
    record_path = cache.root / "v1" / "record.json"
    record = json.loads(record_path.read_text())
    record_path.write_text(json.dumps({**record, "hashes": other}))
    return other


def test_files_swapped_in_under_a_rewritten_record_are_refused(tmp_path):
    cache = _cache(tmp_path)
    hashes = _model_files(tmp_path / "download")
    cache.store("1", tmp_path / "download", hashes)
    _swap_in_other_files(cache, tmp_path)
    with pytest.raises(ModelIntegrityError, match="not signed"):
        cache.last_good()  # the registry is down: only the signed record counts
    with pytest.raises(ModelIntegrityError, match="sha256"):
        cache.last_good(lambda version: hashes)  # the registry's hashes for version 1


def test_the_registry_hashes_decide_when_the_registry_can_say(tmp_path):
    cache = _cache(tmp_path)
    hashes = _model_files(tmp_path / "download")
    cache.store("1", tmp_path / "download", hashes)
    (cache.root / "v1" / "record.json").write_text("{}")  # record lost: the registry vouches
    assert cache.last_good(lambda version: hashes if version == "1" else None).hashes == hashes
    with pytest.raises(ModelIntegrityError, match="record"):
        cache.last_good(lambda version: None)


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
                        {
                            "event_id": "b",
                            "occurred_at": "2026-01-01",
                            "type": "invoice_paid",
                            "currency": "EUR",
                        }
                    ]
                }
            }
        )
    [error] = pydantic_errors(raised.value.errors())
    assert error.field == "events.billing[0].amount"  # the union's tag is not part of the path


def test_a_csv_field_holding_a_carriage_return_stays_one_field():
    """Lines end in CRLF, so a bare CR inside an id is quoted; with LF endings it was not, and
    a reader (a spreadsheet) began a new row at the text after it: ``=1+1``, never guarded."""
    import csv
    import io

    from service.ui.views import csv_chunks

    rows = [["customer_id", "segment_id"], ["a\r=1+1", "3"], ["b\n@SUM(1+1)", "3"]]
    text = "".join(csv_chunks(rows, size=1))
    assert list(csv.reader(io.StringIO(text, newline=""))) == rows


def test_a_problem_quoting_a_lone_surrogate_is_still_its_own_problem():
    """A members cursor decoding to a lone surrogate put it in a 409's message, which then
    failed to render: a 500 in place of the 409."""
    import json

    from service.problems import ProblemError, problem_response

    response = problem_response(ProblemError(409, "stale_cursor", "cursor for \udfff is stale"))
    assert response.status_code == 409
    assert json.loads(response.body)["detail"] == "cursor for \udfff is stale"


def test_a_500_names_the_request_id_its_logged_traceback_carries(caplog):
    """A client reporting a 500 can quote the id the log line holds; the traceback never reaches
    the answer."""
    import logging

    from asgi_correlation_id import CorrelationIdMiddleware
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from service.problems import REQUEST_ID_HEADER, install_problem_handlers, request_id_or_new

    app = FastAPI()
    install_problem_handlers(app)

    @app.get("/broken")
    async def broken() -> None:
        raise RuntimeError("a bug")

    app.add_middleware(
        CorrelationIdMiddleware,
        header_name=REQUEST_ID_HEADER,
        validator=None,
        transformer=request_id_or_new,
    )
    with caplog.at_level(logging.ERROR), TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/broken", headers={"X-Request-ID": "crm-7"})
    assert response.status_code == 500
    assert response.json()["code"] == "internal_error"
    assert response.json()["detail"].endswith("with request id crm-7")
    assert response.headers["x-request-id"] == "crm-7"  # outside the middleware: said anyway
    assert "a bug" not in response.text
    assert any("request crm-7" in r.getMessage() for r in caplog.records)


def test_a_data_home_that_cannot_be_written_is_a_503_naming_why_not_a_500(tmp_path, caplog):
    """A read-only or full volume made POST /v1/events, the discovery routes and the first member
    listing answer 500 with a traceback logged twice (an operator's review): the request cannot
    succeed until the operator acts, and the answer says why. Other errors stay 500s."""
    import errno
    import logging
    import sqlite3

    import duckdb
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from service.problems import install_problem_handlers, storage_reason

    store = tmp_path / "jobs.sqlite3"
    sqlite3.connect(store).execute("create table jobs (id text)").connection.commit()
    app = FastAPI()
    install_problem_handlers(app)

    @app.post("/sqlite")
    def write_read_only_store() -> None:
        with sqlite3.connect(f"file:{store}?mode=ro", uri=True) as connection:
            connection.execute("insert into jobs values ('a')")  # a read-only database

    @app.post("/lock")
    def no_permission() -> None:
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(tmp_path / ".lock"))

    @app.post("/full")
    def full_disk() -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp_path / "events.parquet"))

    @app.post("/missing")
    def missing_file() -> None:
        duckdb.connect(str(tmp_path / "no-such-folder" / "x.duckdb"))

    @app.post("/held")
    def held_by_another_process() -> None:
        with sqlite3.connect(held, timeout=0.05) as connection:
            connection.execute("insert into jobs values ('b')")

    held = tmp_path / "held.sqlite3"
    sqlite3.connect(held).execute("create table jobs (id text)").connection.commit()
    holder = sqlite3.connect(held, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    paths = ("/sqlite", "/lock", "/full", "/missing", "/held")
    with caplog.at_level(logging.ERROR), TestClient(app, raise_server_exceptions=False) as client:
        answers = {path: client.post(path) for path in paths}
    holder.execute("ROLLBACK")
    holder.close()
    assert answers["/held"].status_code == 503
    assert answers["/held"].json()["code"] == "store_busy"
    assert answers["/held"].headers["retry-after"] == "5"
    for path, reason in (
        ("/sqlite", "Read-only file system or database"),
        ("/lock", "Permission denied"),
        ("/full", "No space left on device"),
    ):
        answer = answers[path]
        assert answer.status_code == 503, (path, answer.text)
        assert answer.json()["code"] == "storage_unavailable"
        assert f"cannot use its data ({reason})" in answer.json()["detail"]
        assert answer.headers["retry-after"] == "60"
        assert str(tmp_path) not in answer.text  # the log names the file, the answer does not
    assert answers["/missing"].status_code == 500  # not a storage condition an operator fixes
    logged = [r.getMessage() for r in caplog.records if "storage error" in r.getMessage()]
    assert len(logged) == 3
    assert any(str(tmp_path / ".lock") in line for line in logged)
    assert storage_reason(ValueError("disk is full")) is None


def test_the_printed_example_request_names_a_customer_of_this_data_home(
    tmp_path, monkeypatch, capsys
):
    """It named the demo's cus_000002, a 404 on a user's own data (a new user's walkthrough): it
    names the first customer the online store holds whose subscription is not cancelled."""
    import pandas as pd

    from feature_store.layout import StoreLayout
    from feature_store.online_store import SqliteOnlineStore
    from feature_store.timeutil import parse_as_of
    from service import keys

    monkeypatch.setenv("SEGMENTS_HOME", str(tmp_path))
    monkeypatch.delenv("SEGMENTS_API_KEYS", raising=False)
    keys.main(["--port", "8000"])
    assert '"customer_id": "CUSTOMER_ID"' in capsys.readouterr().out  # nothing stored yet
    vectors = pd.DataFrame(
        {"customer_id": ["acct-1", "acct-2"], "mrr": [10.0, 20.0], "is_canceled": [1.0, 0.0]}
    )
    SqliteOnlineStore(StoreLayout(tmp_path).online_store_path).write(
        vectors, parse_as_of("2026-06-30")
    )
    keys.main(["--port", "8000"])
    later = capsys.readouterr().out
    assert """-d '{"customer_id": "acct-2"}' http://127.0.0.1:8000/v1/score""" in later
    # the key was shown once, the first time: the example reads it from a variable the shell
    # expands (in single quotes it sent the text "$SEGMENTS_API_KEY", a 401) and says to set it
    assert """curl -s -H "X-API-Key: $SEGMENTS_API_KEY" """ in later
    assert "export SEGMENTS_API_KEY=" in later


def test_json_logs_are_one_object_per_line_with_the_text_logs_fields():
    """`segments serve --log-format json`: the logs were text alone, for a collector to parse."""
    import json
    import logging

    from pythonjsonlogger.json import JsonFormatter

    from service.server import log_config

    for name in ("default", "access"):
        spec = dict(log_config("json")["formatters"][name])
        assert spec.pop("()") == "pythonjsonlogger.json.JsonFormatter"
        formatter = JsonFormatter(**spec)
        record = logging.LogRecord(
            "service", logging.INFO, __file__, 1, "serving %s version %s", ("m", "2"), None
        )
        record.color_message = "serving \x1b[36m%s\x1b[0m"  # as uvicorn adds to its own
        line = formatter.format(record)
        assert "\n" not in line
        said = json.loads(line)
        assert said["message"] == "serving m version 2"
        assert "color_message" not in said
        assert (said["level"], said["logger"]) == ("INFO", "service")
        assert said["pid"] > 0
        assert said["time"][:2] == "20"
        assert said["time"][-5] in "+-"
    text = log_config()["formatters"]["default"]
    assert text["fmt"].startswith("%(asctime)s [%(process)d]")


def test_the_holder_runs_its_hook_after_each_swap():
    """``segments serve`` freezes what a worker holds after each model is put in service
    (``service.app.LongLivedFreezer``): the hook runs once per swap, the new model in place."""
    from service.lifecycle import ModelHolder

    seen = []
    holder = ModelHolder(after_swap=lambda: seen.append(holder.current))
    first, second = object(), object()
    assert holder.swap(first) is None
    assert holder.swap(second) is first
    assert seen == [first, second]


def test_a_swap_freezes_what_is_new_and_everything_again_only_after_growth():
    """Unfreezing and collecting every object at each swap stopped a worker for 0.45-0.88 s at
    every promotion (a CRM integrator's review): a swap now freezes what is new, and collects
    everything again only once the frozen objects have grown by a tenth."""
    import gc

    from service.app import LongLivedFreezer

    freeze = LongLivedFreezer(regrowth=0.1)
    try:
        freeze()  # the first call: everything, as at a worker's start
        after_full = gc.get_freeze_count()
        kept = [[i] for i in range(1000)]  # a small model: frozen, nothing collected
        freeze()
        assert gc.get_freeze_count() >= after_full + 1000
        assert freeze._frozen_after_full == after_full
        kept += [[i] for i in range(after_full // 5)]  # grown by a fifth: everything again
        freeze()
        assert freeze._frozen_after_full == gc.get_freeze_count()
    finally:
        gc.unfreeze()  # this test process's collector as it was
    assert kept


def test_drift_gauges_drop_the_segments_and_features_of_the_model_before():
    """After a swap the retired segments' shares stayed exported beside the new ones, so the
    online store's shares added up to about 2 (an ML engineer's walkthrough)."""
    from prometheus_client import CollectorRegistry, generate_latest

    from models.drift import DriftReport, FeatureDrift, SegmentShareDrift
    from service.drift import DriftGauges

    def report(segments: list[int], features: list[str]) -> DriftReport:
        share = 1 / len(segments)
        return DriftReport(
            100,
            100,
            tuple(FeatureDrift(name, 0.01, 0.02, "ok") for name in features),
            tuple(SegmentShareDrift(s, f"s{s}", share, share) for s in segments),
            0.0,
            "ok",
            0.0,
            0.0,
            0.0,
            0.0,
        )

    registry = CollectorRegistry()
    gauges = DriftGauges(registry)
    gauges.record("online_store", report([20, 21], ["mrr", "events_90d"]))
    gauges.record("traffic", report([20, 21], ["mrr"]))
    gauges.record("online_store", report([0, 1, 2], ["mrr"]))  # the version rolled back to
    text = generate_latest(registry).decode()
    shares = [
        line for line in text.splitlines() if line.startswith("segments_drift_segment_share{")
    ]
    online = [line for line in shares if 'source="online_store"' in line]
    assert sorted(line.split('segment="')[1].split('"')[0] for line in online) == ["0", "1", "2"]
    assert sum(float(line.rsplit(" ", 1)[1]) for line in online) == pytest.approx(1.0)
    assert 'segments_drift_feature_psi{feature="events_90d",source="online_store"}' not in text
    assert len([line for line in shares if 'source="traffic"' in line]) == 2  # left as it was


def test_traffic_drift_counts_each_customer_once():
    """81 customers scored 1,000 times read as 1,000 vectors of traffic (an ML engineer's
    walkthrough): the reservoir keeps each customer's latest vector; a vector sent without an
    id counts on its own; the oldest customers make room beyond its size."""
    from service.drift import TrafficReservoir

    reservoir = TrafficReservoir(size=5)
    for round_ in range(100):
        reservoir.add("1", [(f"c{i}", {"mrr": float(round_)}) for i in range(3)])
    assert len(reservoir) == 3
    assert reservoir.frame(["mrr"])["mrr"].tolist() == [99.0, 99.0, 99.0]
    reservoir.add("1", [(None, {"mrr": 1.0}), (None, {"mrr": 2.0}), ("c9", {"mrr": 3.0})])
    assert len(reservoir) == 5  # c0 made room
    assert reservoir.frame(["mrr"])["mrr"].tolist() == [99.0, 99.0, 1.0, 2.0, 3.0]


def test_a_members_list_shows_lifetime_revenue_where_nobody_holds_mrr():
    """A retailer's members list read "MRR 0.00, Seats 0" on every row: where no placed customer
    holds MRR, lifetime revenue takes its column, and seats nobody has are left out."""
    from types import SimpleNamespace

    import numpy as np

    from service.ui.views import listed_features

    names = ["mrr", "seats", "ltv", "events_30d"]
    subscription = np.array([[100.0, 5, 900, 3], [0, 0, 40, 0]])
    retail = np.array([[0.0, 0, 900, 3], [0, 0, 40, 0]])
    loaded = SimpleNamespace(feature_names=names)
    assert listed_features(loaded, SimpleNamespace(values=subscription)) == ["mrr", "seats"]
    assert listed_features(loaded, SimpleNamespace(values=retail)) == ["ltv"]
    assert (
        listed_features(
            SimpleNamespace(feature_names=["seats"]), SimpleNamespace(values=retail[:, 1:2])
        )
        == []
    )


def test_features_every_customer_shares_are_named_once_not_tabulated():
    """A retailer's customer page listed 13 subscription features, each 0 and "like every
    customer the model was trained on", above the few that said anything (a review)."""
    from service.ui.views import EVERYONE_ALIKE, FeatureLine, split_shared

    def line(name: str, standing: str | None, contribution: float) -> FeatureLine:
        return FeatureLine(name, "0", standing, "0", "towards", contribution)

    mrr = line("Monthly recurring revenue", EVERYONE_ALIKE, 0.0)
    events = line("Product events", "higher than 80% of customers", 0.4)
    # shared by everyone yet moving this customer (not possible with a constant column, but
    # said if it ever is), and a value most customers share: both stay in the table
    moved = line("Seats", EVERYONE_ALIKE, 0.1)
    common = line("Refunds", "like 96% of customers", 0.0)
    told, shared = split_shared([mrr, events, moved, common])
    assert (told, shared) == ([events, moved, common], [mrr])


def _read_by_ingestion(stream: str, event: dict) -> dict | None:
    validated = validate_events({stream: [event]})
    rows = validated.events[stream]
    # NaN is not equal to itself: missing values compare as None
    return None if rows.empty else {k: (None if pd.isna(v) else v) for k, v in rows.iloc[0].items()}


def _read_by_scoring(stream: str, event: dict) -> dict | None:
    try:
        request = CustomerEvents.model_validate({stream: [event]})
    except ValidationError:
        return None
    dumped = getattr(request, stream)[0].model_dump(exclude_none=True)
    return _read_by_ingestion(stream, {"customer_id": "c", **dumped})


_PAID = {"event_id": "b1", "customer_id": "c", "occurred_at": "2026-01-01", "amount": 10}


@pytest.mark.parametrize(
    ("stream", "changed", "stored"),
    [
        ("billing", {"type": "INVOICE_PAID", "currency": "usd"}, True),
        ("billing", {"type": "\u00a0invoice_paid\u3000", "currency": " usd\u202f"}, True),
        # a Turkish dotted capital I: DuckDB's lower() made it "i", Python's "i̇"
        ("billing", {"type": "İNVOICE_PAID", "currency": "USD"}, False),
        ("billing", {"type": "invoice_paid\t", "currency": "USD"}, False),
        ("billing", {"type": "invoice_paid", "currency": "uſd"}, False),  # long s: upper() is S
        ("billing", {"type": "invoice_paid", "currency": "ＵＳＤ"}, False),
        ("billing", {"type": "ınvoıce_paıd", "currency": "USD"}, False),  # dotless i: upper() is I
        # a cancellation's empty fields are missing, its fields of spaces alone are not
        (
            "billing",
            {"type": "subscription_canceled", "amount": None, "currency": "", "interval": ""},
            True,
        ),
        ("billing", {"type": "subscription_canceled", "amount": None, "interval": "   "}, False),
        ("billing", {"type": "subscription_canceled", "amount": None, "interval": "\u00a0"}, False),
        ("billing", {"type": "subscription_canceled", "amount": None, "currency": "  "}, False),
        # a plan of spaces alone is no plan, where one is required
        (
            "billing",
            {
                "type": "subscription_started",
                "amount": None,
                "plan": " ",
                "interval": "month",
                "seats": 3,
                "mrr": 30.0,
            },
            False,
        ),
        # numbers written as text, as a CSV-fed CRM sends them
        (
            "billing",
            {
                "type": "subscription_started",
                "amount": None,
                "plan": "team",
                "interval": "month",
                "seats": " 12 ",
                "mrr": "1e2",
            },
            True,
        ),
        ("billing", {"type": "invoice_paid", "amount": "+49.5"}, True),
        ("billing", {"type": "invoice_paid", "amount": "\u00a049\t"}, True),
        ("billing", {"type": "invoice_paid", "amount": "0x10"}, False),
        ("billing", {"type": "invoice_paid", "amount": "+-1"}, False),  # DuckDB's cast: -1
        # a type that is no text is refused, never a 500 (it was looked up as a key)
        ("billing", {"type": ["invoice_paid"]}, False),
        ("billing", {"type": {"a": 1}}, False),
        ("billing", {"type": ""}, False),
        # columns a type does not read, as one uniform export carries them
        (
            "billing",
            {"type": "invoice_paid", "plan": "team", "interval": None, "seats": "", "mrr": "n/a"},
            True,
        ),
        (
            "billing",
            {
                "type": "subscription_started",
                "amount": "",
                "plan": "team",
                "interval": "month",
                "seats": 3,
                "mrr": 30.0,
            },
            True,
        ),
        # ids and names as JSON numbers or booleans are stored as their JSON text
        ("billing", {"event_id": 5, "customer_id": 7, "plan": True}, True),
        ("usage", {"event_id": 5.5, "user_id": 12, "quantity": ""}, True),
        ("usage", {"quantity": "3"}, True),
        ("usage", {"event": "LOGIN"}, True),
        ("usage", {"event": "LOGİN"}, True),  # stored as written, a free-form name
        # a tool's word for no value is no id (pandas' "nan" was one customer of 3,710 invoices)
        ("billing", {"event_id": "nan"}, False),
        ("billing", {"customer_id": " N/A\u00a0"}, False),
        ("usage", {"event_id": "NULL"}, False),
        ("usage", {"customer_id": "#n/a"}, False),
        ("usage", {"customer_id": "None", "event_id": "undefined"}, False),
        ("billing", {"customer_id": "nancy", "event_id": "nan-1"}, True),
        ("usage", {"customer_id": "ＮＡＮ"}, True),  # full-width letters: ASCII case alone
        ("usage", {"event": "null"}, True),  # a name, not an id: stored as written by both
        # optional ids: missing, as blank ones are ("nan" made two subscriptions of one)
        ("usage", {"user_id": "nan"}, True),
        ("usage", {"user_id": " NULL "}, True),
        ("billing", {"type": "invoice_paid", "subscription_id": "None"}, True),
        ("billing", {"type": "invoice_paid", "subscription_id": "sub_nan"}, True),
    ],
)
def test_scoring_by_events_reads_a_spelling_as_ingestion_does(stream, changed, stored):
    """A CRM's probe: ingestion stored spellings that scoring by events refused, and the other
    way round. Both now read names in ASCII case alone, around the space separators alone."""
    base = (
        {**_PAID, "type": "invoice_paid", "currency": "USD"}
        if stream == "billing"
        else {"event_id": "u1", "customer_id": "c", "occurred_at": "2026-01-01", "event": "x"}
    )
    event = {name: value for name, value in {**base, **changed}.items() if value is not None}
    ingested = _read_by_ingestion(stream, event)
    scored = _read_by_scoring(stream, event)
    assert (ingested is not None) == stored
    assert scored == ingested
    for name in ("user_id", "subscription_id"):  # a placeholder for no value is no id
        if str(changed.get(name, "")).strip().lower() in ("nan", "null", "none"):
            assert ingested.get(name) is None, ingested
    if stream == "usage" and stored:
        assert ingested["event"] == {"LOGIN": "login", "LOGİN": "LOGİN", "null": "null"}.get(
            changed.get("event"), "x"
        )


@pytest.mark.parametrize("text", ["1_000", "1_0.5", "10e1_0"])
def test_a_number_written_with_underscores_is_no_contract_number(text):
    """DuckDB's cast reads "1_000" as 1000; ingestion stored it where scoring by events (a JSON
    number or nothing) has no such spelling."""
    validated = validate_events(
        {"billing": [{**_PAID, "type": "invoice_paid", "amount": text, "currency": "USD"}]}
    )
    assert validated.events["billing"].empty
    assert validated.rejected[0].reasons == ["invalid_amount"]


def test_the_space_separators_are_the_unicode_databases():
    import unicodedata

    from feature_store.schema import SPACE_SEPARATORS

    every = "".join(c for c in map(chr, range(0x110000)) if unicodedata.category(c) == "Zs")
    assert every == SPACE_SEPARATORS


def test_a_field_a_union_refused_is_one_error_named_by_the_field_alone():
    """A CRM read `events.billing[0].seats.literal['']` and two errors on one interval; an
    unknown or missing type named no field and quoted text the client never sent."""
    cancelled = {"event_id": "b", "occurred_at": "2026-01-01", "type": "subscription_canceled"}

    def errors(event: dict) -> list[tuple[str, str]]:
        with pytest.raises(ValidationError) as refused:
            CustomerEvents.model_validate({"billing": [event]})
        return [(e.field, e.message) for e in pydantic_errors(refused.value.errors(), "events")]

    assert errors({**cancelled, "seats": " ", "interval": "weekly"}) == [
        ("events.billing[0].interval", "Input should be 'month' or 'year' or ''"),
        ("events.billing[0].seats", "Input should be a valid integer"),
    ]
    assert errors({**cancelled, "type": "İNVOICE_PAID"})[0] == (
        "events.billing[0].type",
        "type is not one of subscription_started, subscription_changed, subscription_canceled, "
        "invoice_paid, payment_failed, refund_issued (unknown_type)",
    )
    for missing in ("", None):
        assert errors({**cancelled, "type": missing}) == [
            ("events.billing[0].type", "type is missing (missing_type)")
        ]
    assert errors({**cancelled, "literal[x": 1}) == [
        ("events.billing[0].literal[x", "Extra inputs are not permitted")
    ]


@pytest.mark.parametrize(
    ("keys", "said"),
    [
        ('{"crm-key-1": ["score"], ', "not JSON (Expecting property name enclosed in double "),
        ("", "not JSON (Expecting value at character 0)"),
        # set, yet read as unset: the keys of HOME/api_keys.json were served instead
        ("null", "null is no set of keys; give an object mapping each key to its scopes"),
        ('{"crm": ["score"], " ": ["score"]}', "key 2 is empty: no client can send it"),
        ('{"k": ["read"], "k": ["score"]}', "key 2 repeats an earlier key"),
        ('{"crm": ["score"], " k ": ["score"]}', "key 2 has spaces around it, or characters"),
        ('{"\u043a\u043b\u044e\u0447": ["score"]}', "key 1 has spaces around it, or characters"),
        ('{"a\\nb": ["score"]}', "key 1 has spaces around it, or characters other than"),
    ],
)
def test_api_keys_that_cannot_work_are_refused_in_one_line_naming_no_key(
    keys, said, monkeypatch, tmp_path
):
    """A truncated object read "Input should be a valid dictionary"; a key with no scopes, an
    empty key and a repeated key (the last silently won) were taken (an operator's review)."""
    from feature_store.errors import SegmentsError
    from service.server import check_settings

    monkeypatch.setenv("SEGMENTS_HOME", str(tmp_path))
    monkeypatch.setenv("SEGMENTS_API_KEYS", keys)
    with pytest.raises(SegmentsError) as refused:
        check_settings()
    message = str(refused.value)
    assert message.startswith(f"invalid service settings: SEGMENTS_API_KEYS: {said}")
    assert "\n" not in message
    assert "crm-key-1" not in message  # a secret, even half written
