"""HTTP ingestion in process: the Stripe webhook, ``POST /v1/events`` (counts, quarantine, limits,
Idempotency-Key) and the online refresh that makes ``/v1/score`` by id see new events."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC
from multiprocessing.connection import Connection
from pathlib import Path

import anyio
import pandas as pd
import pytest
from concurrency_support import lock_held_elsewhere, wait_until
from ingest_http_support import KEYS, SECRET, in_process, settings_for, signed
from test_stripe import BASIL, history, stored

from feature_store import quarantine
from feature_store.engine import connect
from feature_store.layout import StoreLayout
from service.idempotency import Claim, IdempotencyStore, StoredAnswer, client_of, fingerprint
from service.ingest_process import IngestProcess
from service.problems import ProblemError

pytestmark = pytest.mark.anyio
PROBLEM = "application/problem+json"
INGEST = {"X-API-Key": "ingest-key"}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def assert_problem(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert (body["status"], body["code"]) == (status, code)
    assert "Traceback" not in response.text
    return body


def usage(event_id: str, customer: str | None = "cus_1", **extra) -> dict:
    event = {"event_id": event_id, "occurred_at": "2026-11-20T10:00:00Z", "event": "login"}
    return {**event, **({"customer_id": customer} if customer else {}), **extra}


def billing_started(event_id: str, customer: str = "cus_1", seats: object = 3) -> dict:
    return {
        "event_id": event_id,
        "customer_id": customer,
        "occurred_at": "2026-11-01T09:00:00Z",
        "type": "subscription_started",
        "plan": "team",
        "interval": "month",
        "seats": seats,
        "mrr": 90.0,
        "currency": "EUR",
    }


def stored_events(home: Path) -> int:
    parts = sorted((StoreLayout(home).events_dir).glob("*/*.parquet"))
    if not parts:
        return 0
    con = connect(threads=1)
    try:
        files = ", ".join(f"'{p}'" for p in parts)
        return con.execute(
            f"SELECT count(*) FROM read_parquet([{files}], union_by_name=true)"
        ).fetchone()[0]
    finally:
        con.close()


# ------------------------------------------------------------------ Stripe webhook


async def test_stripe_deliveries_repeated_and_out_of_order_store_what_one_delivery_does(tmp_path):
    events = history(BASIL)
    async with in_process(settings_for(tmp_path / "in-order")) as (_, http):
        for one in events:
            response = await http.post("/v1/webhooks/stripe", **signed(one))
            assert response.status_code == 200, response.text
    messy_home = tmp_path / "messy"
    async with in_process(settings_for(messy_home)) as (_, http):
        deliveries = [
            *random.Random(3).sample(events, len(events)),
            *sorted(events, key=lambda e: e["created"], reverse=True),
            *events[::-1],
        ]
        outcomes = []
        for one in deliveries:
            response = await http.post("/v1/webhooks/stripe", **signed(one))
            assert response.status_code == 200, response.text
            outcomes.append(response.json())
        metrics = (await http.get("/metrics")).text
    assert sum(o["outcome"] == "accepted" for o in outcomes) == 10
    assert sum(o["outcome"] == "duplicate" for o in outcomes) == 20
    ignored = [o for o in outcomes if o["outcome"] == "ignored"]
    assert {(o["type"], o["reasons"][0]) for o in ignored} == {
        ("customer.updated", "unhandled_type"),
        ("invoice.paid", "zero_amount"),
    }
    assert (
        'segments_stripe_webhook_events_total{outcome="ignored",type="customer.updated"} 3.0'
        in metrics
    )
    expected_events, expected_features = stored(StoreLayout(tmp_path / "in-order"))
    actual_events, actual_features = stored(StoreLayout(messy_home))
    pd.testing.assert_frame_equal(actual_events, expected_events)
    pd.testing.assert_frame_equal(actual_features, expected_features)


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("forged", "no_matching_signature"),
        ("stale", "timestamp_outside_tolerance"),
        ("unsigned", "missing_signature_header"),
        ("tampered", "no_matching_signature"),
    ],
)
async def test_forged_or_stale_signatures_are_400_and_store_nothing(tmp_path, case, reason):
    one = history(BASIL)[0]
    request = {
        "forged": signed(one, secret="whsec_not_ours"),
        "stale": signed(one, at=int(time.time()) - 301),
        "unsigned": {"content": signed(one)["content"]},
        "tampered": {**signed(one), "content": signed(one)["content"].replace(b"cus_A", b"cus_Z")},
    }[case]
    async with in_process(settings_for(tmp_path / "home")) as (_, http):
        assert_problem(await http.post("/v1/webhooks/stripe", **request), 400, reason)
    assert stored_events(tmp_path / "home") == 0
    assert not StoreLayout(tmp_path / "home").catalog_path.exists()


async def test_webhook_needs_no_api_key_but_a_configured_secret(tmp_path):
    one = history(BASIL)[0]
    async with in_process(settings_for(tmp_path / "a", stripe_webhook_secrets=None)) as (_, http):
        assert_problem(
            await http.post("/v1/webhooks/stripe", **signed(one)), 503, "webhook_not_configured"
        )
    rotated = f"whsec_old,{SECRET}"
    async with in_process(settings_for(tmp_path / "b", stripe_webhook_secrets=rotated)) as (
        app,
        http,
    ):
        ok = await http.post("/v1/webhooks/stripe", **signed(one))
        assert ok.json() == {
            "event_id": "evt_a1",
            "type": "customer.subscription.created",
            "outcome": "accepted",
            "reasons": [],
        }
        operation = app.openapi()["paths"]["/v1/webhooks/stripe"]["post"]
    assert operation["x-authenticated-by"] == "Stripe-Signature"
    assert operation["security"] == [{"StripeSignature": []}]


# ------------------------------------------------------------------ POST /v1/events


async def test_an_event_nested_too_deeply_is_a_422_not_a_503_to_retry_for_ever(tmp_path):
    """600 nested lists the JSON parser reads, but handing such an event to the ingestion
    process ran out of recursion while pickling it: a 503 "send again" with Retry-After, the
    same on every retry (a CRM integrator's review). It is refused as the body it is."""
    from service.bodies import NESTED_TOO_DEEPLY

    event = '{"event_id": "e", "customer_id": "c", "occurred_at": "2026-01-01", "event": "x"'
    body = f'{{"usage": [{event}, "user_id": {"[" * 600}{"]" * 600}}}]}}'.encode()
    headers = {**INGEST, "content-type": "application/json"}
    async with in_process(settings_for(tmp_path / "home")) as (_, http):
        response = await http.post("/v1/events", content=body, headers=headers)
        problem = assert_problem(response, 422, "validation_error")
        assert problem["errors"] == [{"field": "body", "message": NESTED_TOO_DEEPLY}]
        # the ingestion process is there for the next batch
        response = await http.post("/v1/events", json={"usage": [usage("ok")]}, headers=INGEST)
        assert response.status_code == 200, response.text


async def test_events_dated_after_now_are_stored_and_counted_in_the_answer(tmp_path):
    """`segments ingest` says when a file holds events dated after now (a wrong year?); the same
    events posted were stored without a word (a CRM integrator's review)."""
    body = {
        "usage": [
            usage("now-1", occurred_at="2026-01-01T00:00:00Z"),
            usage("late-1", occurred_at="9999-12-31T23:59:59Z"),
            usage("late-2", occurred_at="2999-01-01"),
        ]
    }
    async with in_process(settings_for(tmp_path / "home")) as (_, http):
        answer = await http.post("/v1/events", json=body, headers=INGEST)
        assert answer.status_code == 200, answer.text
        counted = answer.json()
        assert (counted["accepted"], counted["dated_after_now"]) == (3, 2)
        again = await http.post("/v1/events", json={"usage": [usage("now-2")]}, headers=INGEST)
        assert again.json()["dated_after_now"] == 0


async def test_events_are_counted_stored_and_quarantined_like_a_file(tmp_path):
    body = {
        "billing": [billing_started("b1"), billing_started("b2", seats=-1)],
        "usage": [
            usage("u1"),
            usage("u1"),  # the same event twice: a duplicate
            usage("u2", customer=None),
            usage("u3", occurred_at="yesterday"),
            usage("u1", event="logout"),  # the id of another event: a conflict
            "not an event",
        ],
    }
    async with in_process(settings_for(tmp_path / "home")) as (_, http):
        first = await http.post("/v1/events", json=body, headers=INGEST)
        assert first.status_code == 200, first.text
        again = await http.post("/v1/events", json=body, headers=INGEST)
    answer = first.json()
    assert (
        answer["received"],
        answer["accepted"],
        answer["duplicates"],
        answer["quarantined"],
    ) == (8, 2, 1, 5)
    assert answer["reasons"] == {
        "negative_seats": 1,
        "missing_customer_id": 1,
        "invalid_occurred_at": 1,
        "conflicting_duplicate": 1,
        "malformed_row": 1,
    }
    assert answer["streams"]["billing"]["accepted"] == 1
    resent = again.json()
    assert (resent["accepted"], resent["duplicates"], resent["quarantined"]) == (0, 3, 5)
    assert stored_events(tmp_path / "home") == 2
    con = connect(threads=1)
    try:
        quarantine.attach_catalog(con, StoreLayout(tmp_path / "home"))
        rows = con.execute(
            "SELECT source_file, reason, times_seen FROM catalog.quarantine ORDER BY reason"
        ).fetchall()
    finally:
        con.close()
    assert {r[0] for r in rows} == {"POST /v1/events"}
    assert {r[2] for r in rows} == {2}
    assert len(rows) == 5


async def test_unknown_fields_are_reported_and_a_field_named_twice_refuses_the_request(tmp_path):
    """A file's unknown columns are reported and one named twice refuses it; over HTTP the first
    were dropped unseen (`Quantity` read as nothing, the quantity stored as 1) and the second
    stored the lower-case copy."""
    home = tmp_path / "home"
    async with in_process(settings_for(home)) as (_, http):
        sent = await http.post(
            "/v1/events",
            json={
                "usage": [usage("u1", Quantity=2, browser="ff")],
                "billing": [billing_started("b1")],
            },
            headers=INGEST,
        )
        twice = await http.post(
            "/v1/events", json={"usage": [usage("u2", quantity=1, QUANTITY=5)]}, headers=INGEST
        )
    assert sent.status_code == 200, sent.text
    answer = sent.json()
    assert answer["accepted"] == 2
    assert answer["unknown_columns"] == ["Quantity", "browser"]
    assert answer["streams"]["usage"]["unknown_columns"] == ["Quantity", "browser"]
    assert answer["streams"]["billing"]["unknown_columns"] == []
    problem = assert_problem(twice, 422, "not_canonical_events")
    assert "names column 'quantity' twice" in problem["detail"]
    assert "request" in problem["detail"]
    assert stored_events(home) == 2


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"Foo": 1, "foo": 2}, "'Foo' and 'foo', which differ only in case"),
        ({"": 1}, "a field name is empty or holds a control character ('')"),
        ({"a\x00b": 1}, "holds a control character ('a\\x00b')"),
    ],
)
async def test_field_names_no_table_can_hold_refuse_their_request_alone(tmp_path, fields, words):
    """Two unknown names differing in case, an empty name or a NUL in one was a 500 inside the
    write, failing every request written with it (a hostile client stopped all ingestion)."""
    import asyncio

    home = tmp_path / "home"
    async with in_process(settings_for(home)) as (_, http):
        poisoned = http.post(
            "/v1/events",
            json={"usage": [usage("bad", quantity=-1, **fields), usage("bad2")]},
            headers=INGEST,
        )
        honest = [
            http.post("/v1/events", json={"usage": [usage(f"ok{i}")]}, headers=INGEST)
            for i in range(4)
        ]
        answers = await asyncio.gather(poisoned, *honest)
    problem = assert_problem(answers[0], 422, "not_canonical_events")
    assert words in problem["detail"]
    assert all(answer.status_code == 200 for answer in answers[1:])
    assert stored_events(home) == 4


async def test_a_request_naming_too_many_distinct_fields_is_refused_before_any_work(tmp_path):
    """300,000 distinct names took 151 s of the ingestion process (a column per name, built
    over every event) and held up every other request."""
    from feature_store.readers import MAX_REQUEST_NAMES

    events = [usage(f"u{i}", **{f"x{i}_{j}": 0 for j in range(10)}) for i in range(60)]
    assert 10 * len(events) > MAX_REQUEST_NAMES
    async with in_process(settings_for(tmp_path / "home")) as (_, http):
        answer = await http.post("/v1/events", json={"usage": events}, headers=INGEST)
    problem = assert_problem(answer, 422, "not_canonical_events")
    assert f"more than {MAX_REQUEST_NAMES:,} distinct fields" in problem["detail"]


async def test_a_signed_event_of_any_type_text_adds_no_metric_series_of_its_own(tmp_path):
    """The Stripe type was a label as sent: 10,000 characters or a line feed made a series kept
    for ever on /metrics, which needs no key."""
    odd = {**history(BASIL)[0], "id": "evt_odd", "type": "x" * 10_000}
    async with in_process(settings_for(tmp_path / "home")) as (_, http):
        answer = await http.post("/v1/webhooks/stripe", **signed(odd))
        metrics = (await http.get("/metrics")).text
    assert answer.status_code == 200, answer.text
    assert "x" * 100 not in metrics
    assert 'segments_stripe_webhook_events_total{outcome="ignored",type="other"} 1.0' in metrics


async def test_an_event_that_corrects_a_quarantined_one_says_so(tmp_path):
    """An event carrying an entry's `quarantine_id` resolves it (as a corrected export row
    does); the answer said nothing, so a client could close an entry unseen."""
    home = tmp_path / "home"
    async with in_process(settings_for(home)) as (_, http):
        bad = await http.post(
            "/v1/events", json={"usage": [usage("u1", quantity=-1)]}, headers=INGEST
        )
        assert bad.json()["quarantined"] == 1
        con = connect(threads=1)
        try:
            quarantine.attach_catalog(con, StoreLayout(home))
            [entry] = con.execute("SELECT quarantine_id FROM catalog.quarantine").fetchall()
        finally:
            con.close()
        fixed = usage("u1", quantity=1, quarantine_id=entry[0])
        answer = await http.post("/v1/events", json={"usage": [fixed]}, headers=INGEST)
    body = answer.json()
    assert (body["accepted"], body["resolved_from_quarantine"]) == (1, 1)
    assert body["streams"]["usage"]["resolved_from_quarantine"] == 1


async def test_a_webhook_address_may_carry_a_query_string(tmp_path):
    """A Stripe endpoint configured as `…/stripe?source=live` (to tell environments apart) was
    refused as an unknown query parameter, and Stripe retries a refused delivery for days; the
    API's own routes still refuse one they do not take."""
    async with in_process(settings_for(tmp_path / "home")) as (_, http):
        answer = await http.post("/v1/webhooks/stripe?source=live", **signed(history(BASIL)[0]))
        assert answer.status_code == 200, answer.text
        assert answer.json()["outcome"] == "accepted"
        typo = await http.post(
            "/v1/events?verbose=1", json={"usage": [usage("u1")]}, headers=INGEST
        )
        assert_problem(typo, 422, "validation_error")


async def test_event_limits_scope_and_shape(tmp_path):
    settings = settings_for(tmp_path / "home", max_ingest_events=3)
    four = {"usage": [usage(f"u{i}") for i in range(4)]}
    async with in_process(settings) as (_, http):
        assert_problem(
            await http.post("/v1/events", json=four, headers=INGEST), 413, "too_many_events"
        )
        assert_problem(await http.post("/v1/events", json={}, headers=INGEST), 422, "no_events")
        assert_problem(
            await http.post("/v1/events", json={"usage": [], "orders": []}, headers=INGEST),
            422,
            "validation_error",
        )
        assert_problem(
            await http.post("/v1/events", json={"usage": "x"}, headers=INGEST),
            422,
            "validation_error",
        )
        # half of a UTF-16 pair, which no text holds: the write failed with a 500
        lone = (
            b'{"usage": [{"event_id": "e", "customer_id": "\\ud800", '
            b'"occurred_at": "2026-06-01T00:00:00Z", "event": "login"}]}'
        )
        headers = {**INGEST, "content-type": "application/json"}
        problem = assert_problem(
            await http.post("/v1/events", content=lone, headers=headers), 422, "validation_error"
        )
        assert "lone UTF-16 surrogate" in problem["errors"][0]["message"]
        assert_problem(await http.post("/v1/events", json=four), 401, "unauthorized")
        for key in ("read-key", "score-key"):
            assert_problem(
                await http.post("/v1/events", json=four, headers={"X-API-Key": key}),
                403,
                "forbidden",
            )
    assert stored_events(tmp_path / "home") == 0
    assert "ingest" in KEYS["ingest-key"]


# ------------------------------------------------------------------ Idempotency-Key


async def test_idempotency_key_replays_refuses_another_body_and_a_running_request(tmp_path):
    body = {"usage": [usage("u1"), usage("u2")]}
    keyed = {**INGEST, "Idempotency-Key": '"3f1c2a9e-7d1b-4c55-9a8e-1b2c3d4e5f60"'}
    async with in_process(settings_for(tmp_path / "home")) as (app, http):
        first = await http.post("/v1/events", json=body, headers=keyed)
        replay = await http.post("/v1/events", json=body, headers=keyed)
        assert replay.status_code == 200
        assert replay.content == first.content
        assert replay.headers["Idempotent-Replayed"] == "true"
        other = {"usage": [usage("u3")]}
        assert_problem(
            await http.post("/v1/events", json=other, headers=keyed), 422, "idempotency_key_reused"
        )
        # A first request still running: its entry is in progress.
        running = {"usage": [usage("u9")]}
        store: IdempotencyStore = app.state.idempotency
        content = (await http.post("/v1/events", json=running, headers=INGEST)).request.content
        store.begin(client_of("ingest-key"), "k-running", fingerprint(content))
        busy = await http.post(
            "/v1/events",
            content=content,
            headers={**INGEST, "Idempotency-Key": "k-running", "content-type": "application/json"},
        )
        assert_problem(busy, 409, "idempotency_key_in_progress")
        assert_problem(
            await http.post("/v1/events", json=body, headers={**INGEST, "Idempotency-Key": ""}),
            400,
            "invalid_idempotency_key",
        )
        # sent twice: which one counts would be a guess (a proxy may keep the other)
        twice = [*INGEST.items(), ("Idempotency-Key", "k-one"), ("Idempotency-Key", "k-two")]
        assert_problem(
            await http.post("/v1/events", json=body, headers=twice), 400, "invalid_idempotency_key"
        )
        folded = {**INGEST, "Idempotency-Key": "k-one, k-two"}  # the same, through a proxy
        assert_problem(
            await http.post("/v1/events", json=body, headers=folded), 400, "invalid_idempotency_key"
        )
        # A request refused whole stores nothing and keeps no answer: the corrected request may
        # use its key (a 422 no_events held the key for 24 h: a hostile client's review).
        fixed = {**INGEST, "Idempotency-Key": "k-fixed"}
        empty = await http.post("/v1/events", json={"usage": []}, headers=fixed)
        assert_problem(empty, 422, "no_events")
        corrected = await http.post("/v1/events", json={"usage": [usage("u5")]}, headers=fixed)
        assert corrected.status_code == 200, corrected.text
        assert "Idempotent-Replayed" not in corrected.headers
    assert first.json()["accepted"] == 2
    assert stored_events(tmp_path / "home") == 4  # u1, u2, u9 sent once without a key, u5


def test_idempotency_entries_are_forgotten_through_indexes(tmp_path):
    """Forgetting expired entries read every entry of the last 24 hours on each request (55 ms a
    request at 300,000 entries, under the write lock): each of its statements uses an index, in a
    store made now and in one made before the indexes."""
    import sqlite3

    path = tmp_path / "i.sqlite"
    con = sqlite3.connect(path)  # a store written before the indexes existed
    con.execute(
        "CREATE TABLE idempotency (client TEXT NOT NULL, key TEXT NOT NULL, fingerprint TEXT "
        "NOT NULL, state TEXT NOT NULL, status INTEGER, media_type TEXT, body BLOB, created_at "
        "REAL NOT NULL, updated_at REAL NOT NULL, PRIMARY KEY (client, key))"
    )
    con.close()
    store = IdempotencyStore(path, ttl_seconds=100, stale_seconds=10)
    store.begin("c", "k", "f")
    plans: list[str] = []
    con = store._connect()
    for statement in ("DELETE FROM idempotency WHERE created_at < 1",
                      "DELETE FROM idempotency WHERE state = 'in_progress' AND updated_at < 1"):  # fmt: skip
        plans += [row[3] for row in con.execute(f"EXPLAIN QUERY PLAN {statement}")]
    con.close()
    assert plans == [
        "SEARCH idempotency USING INDEX idempotency_created (created_at<?)",
        "SEARCH idempotency USING INDEX idempotency_stale (updated_at<?)",
    ]


def test_idempotency_entries_expire_and_a_stale_one_does_not_block(tmp_path):
    now = [1000.0]
    store = IdempotencyStore(
        tmp_path / "i.sqlite", ttl_seconds=100, stale_seconds=10, clock=lambda: now[0]
    )
    assert isinstance(store.begin("c", "k", "f1"), Claim)
    now[0] += 11  # the process that claimed it died: taken to be stale
    claim = store.begin("c", "k", "f1")
    assert isinstance(claim, Claim)
    store.finish(claim, StoredAnswer(200, "application/json", b"{}"))
    now[0] += 50
    assert store.begin("c", "k", "f1") == StoredAnswer(200, "application/json", b"{}")
    now[0] += 100  # past the time to live: forgotten
    assert isinstance(store.begin("c", "k", "f2"), Claim)
    assert isinstance(store.begin("other-client", "k", "f3"), Claim)  # keys are per client


def test_a_running_request_keeps_its_key_and_only_it_finishes_or_releases_it(tmp_path):
    """A request held longer than the stale time (behind a long write) was taken for a dead
    process's: the client's retry ran it again, the first one's failure then deleted the retry's
    entry, and the last to finish set the replayed answer. A running request renews its entry;
    and a claim taken over when its process did die is finished only by its new holder."""
    now = [1000.0]
    store = IdempotencyStore(
        tmp_path / "i.sqlite", ttl_seconds=1000, stale_seconds=10, clock=lambda: now[0]
    )
    running = store.begin("c", "k", "f")
    assert isinstance(running, Claim)
    for _ in range(3):  # 24 s in all, renewed every 8
        now[0] += 8
        store.keep_alive(running)
    with pytest.raises(ProblemError) as busy:
        store.begin("c", "k", "f")
    assert busy.value.code == "idempotency_key_in_progress"
    now[0] += 11  # not renewed: its process died
    retry = store.begin("c", "k", "f")
    assert isinstance(retry, Claim)
    store.abandon(running)  # the first one's failure, had it lived: not the retry's entry
    store.finish(running, StoredAnswer(500, "application/json", b"first"))
    with pytest.raises(ProblemError):
        store.begin("c", "k", "f")  # the retry still holds it
    store.finish(retry, StoredAnswer(200, "application/json", b"retry"))
    assert store.begin("c", "k", "f") == StoredAnswer(200, "application/json", b"retry")


async def test_a_request_held_behind_a_long_write_is_not_run_again_by_its_retry(tmp_path):
    """Held behind another process's write for longer than the stale time, a request is still
    running: the client's retry with the same key is told so (409), and gets its answer after."""
    home = tmp_path / "home"
    keyed = {**INGEST, "Idempotency-Key": "k-held"}
    body = {"usage": [usage("h1")]}
    async with in_process(settings_for(home, idempotency_stale_seconds=1.5)) as (_, http):
        await http.post("/v1/events", json={"usage": [usage("h0")]}, headers=INGEST)  # started
        # a large `segments ingest` holding the store
        with lock_held_elsewhere(StoreLayout(home).lock_path, 5):
            first = asyncio.create_task(http.post("/v1/events", json=body, headers=keyed))
            await asyncio.sleep(3.2)  # more than twice the stale time
            retry = await http.post("/v1/events", json=body, headers=keyed)
            assert_problem(retry, 409, "idempotency_key_in_progress")
            answered = await first  # once the lock is let go
        assert answered.status_code == 200, answered.text
        assert answered.json()["accepted"] == 1
        replay = await http.post("/v1/events", json=body, headers=keyed)
        assert replay.headers["Idempotent-Replayed"] == "true"
        assert replay.json() == answered.json()


async def test_events_beyond_the_pending_bound_are_a_503_ingestion_busy(tmp_path):
    """The route's side of the pending bound: a problem document with Retry-After, at once."""
    home = tmp_path / "home"
    settings = settings_for(home, ingest_max_pending_events=2)
    async with in_process(settings) as (_, http):
        await http.post("/v1/events", json={"usage": [usage("b0")]}, headers=INGEST)  # started
        with lock_held_elsewhere(StoreLayout(home).lock_path, 3):
            body = {"usage": [usage("b1"), usage("b2")]}
            first = asyncio.create_task(http.post("/v1/events", json=body, headers=INGEST))
            await asyncio.sleep(0.5)
            busy = await http.post("/v1/events", json={"usage": [usage("b3")]}, headers=INGEST)
            problem = assert_problem(busy, 503, "ingestion_busy")
            assert "holds 2 events not yet stored (at most 2)" in problem["detail"]
            assert busy.headers["Retry-After"] == "5"
            answered = await first
        assert answered.status_code == 200, answered.text
        again = await http.post("/v1/events", json={"usage": [usage("b3")]}, headers=INGEST)
        assert again.json()["accepted"] == 1


async def test_a_worker_refuses_ingestion_bodies_beyond_its_bytes_in_flight_before_reading(
    tmp_path,
):
    """360 concurrent requests of 4 MB held 1.6-2.3 GB per worker: each body was parsed before
    the ingestion process's bound on pending events could refuse it (a CRM integrator's review).
    Beyond the worker's bytes in flight a request is refused before its body is read."""
    home = tmp_path / "home"
    held_body = {"usage": [usage(f"f{i}") for i in range(1, 41)]}
    second_body = {"usage": [usage(f"g{i}") for i in range(60)]}
    one = {"usage": [usage("h0")]}
    sent = {"headers": {**INGEST, "Content-Type": "application/json"}}
    held_body, second_body, one = (
        json.dumps(body).encode() for body in (held_body, second_body, one)
    )
    sizes = [len(body) for body in (held_body, second_body, one)]
    # room for the first and the small one, not for the first and the second
    settings = settings_for(home, ingest_max_bytes_in_flight=sizes[0] + sizes[2] + 10)
    assert sizes[1] > sizes[2] + 10
    async with in_process(settings) as (app, http):
        await http.post("/v1/events", json={"usage": [usage("f0")]}, headers=INGEST)  # started
        with lock_held_elsewhere(StoreLayout(home).lock_path, 3):
            first = asyncio.create_task(http.post("/v1/events", content=held_body, **sent))
            await asyncio.sleep(0.5)
            busy = await http.post("/v1/events", content=second_body, **sent)
            problem = assert_problem(busy, 503, "ingestion_busy")
            assert "nothing of this request was stored" in problem["detail"]
            assert busy.headers["Retry-After"] == "1"
            small = asyncio.create_task(  # within what is left: goes through, and waits
                http.post("/v1/events", content=one, **sent)
            )
            await asyncio.sleep(0.3)
            assert not small.done()
            answered = await first
        assert answered.status_code == 200, answered.text
        assert (await small).status_code == 200
        again = await http.post("/v1/events", content=second_body, **sent)
        assert again.json()["accepted"] == 60
        admission = app.middleware_stack
        while not hasattr(admission, "held"):  # the middleware, inside the others
            admission = admission.app
        assert admission.held == 0  # every reservation given back


async def test_webhook_bodies_held_without_a_signature_leave_keyed_senders_their_budget(
    tmp_path,
):
    """Stalled Stripe webhook bodies, sent by anyone (the body is read before its signature can
    be checked), filled the one budget of bytes in flight: every keyed POST /v1/events was a
    503 for as long as they were held (a hostile client's review). The webhook has a budget of
    its own; the keyed route keeps its."""
    home = tmp_path / "home"
    settings = settings_for(
        home, ingest_max_bytes_in_flight=32 * 1024, webhook_max_bytes_in_flight=32 * 1024
    )
    released = asyncio.Event()

    async def stalled():  # all but 64 bytes of a budget, then nothing until the test lets it go
        yield b" " * (32 * 1024 - 64)
        await released.wait()
        yield b"{}"

    forged = {"Stripe-Signature": "t=1,v1=00", "Content-Type": "application/json"}
    async with in_process(settings) as (_, http):
        held = asyncio.create_task(
            http.post("/v1/webhooks/stripe", content=stalled(), headers=forged)
        )
        await asyncio.sleep(0.3)
        assert not held.done()
        more = await http.post("/v1/webhooks/stripe", content=b" " * 4096, headers=forged)
        assert_problem(more, 503, "ingestion_busy")  # the webhook's own budget is full
        keyed = await http.post("/v1/events", json={"usage": [usage("k0")]}, headers=INGEST)
        assert keyed.status_code == 200, keyed.text
        assert keyed.json()["accepted"] == 1
        released.set()
        assert_problem(await held, 400, "no_matching_signature")


def test_online_refreshes_of_one_store_take_turns_across_processes(tmp_path):
    """Two workers refreshing a customer in the same second stamped their vectors alike, and the
    one that had read before the other's events were stored could write last and win. A refresh
    holds the store's lock from its read to its write; one waiting here starts after the other."""
    from feature_store.online_store import SqliteOnlineStore
    from service.group_commit import GroupWriter

    home = tmp_path / "home"
    online = SqliteOnlineStore(home / "online.sqlite")
    writer = GroupWriter(StoreLayout(home))
    try:
        with lock_held_elsewhere(f"{online.path}.lock", 2) as released:  # another worker's
            writer.refresh(["cus_1"], online)
            finished = time.monotonic()
    finally:
        writer.close()
    assert finished > released[0]


# ------------------------------------------------------------------ fresh online features


async def poll(check, deadline_seconds: float = 30.0):
    deadline = time.monotonic() + deadline_seconds
    while True:
        outcome = await check()
        if outcome is not None:
            return outcome
        assert time.monotonic() < deadline, "not reflected before the deadline"
        await anyio.sleep(0.05)


async def test_features_of_customers_sent_over_http_reach_the_online_store(tmp_path):
    """No model needed: the online vector itself is checked, with its as-of."""
    from feature_store.online_store import SqliteOnlineStore

    settings = settings_for(tmp_path / "home")
    online = SqliteOnlineStore(settings.online_store_path)
    # padded, as a hand-written export pads it: stored as cus_new, and refreshed as cus_new
    # (the refresh looked for " cus_new " and wrote nothing: a review)
    body = {
        "billing": [billing_started("b1", customer=" cus_new ")],
        "usage": [usage("u1", customer="cus_new ")],
    }
    async with in_process(settings) as (_app, http):
        started = time.time()
        assert (await http.post("/v1/events", json=body, headers=INGEST)).status_code == 200

        async def refreshed():
            return online.read("cus_new") if settings.online_store_path.exists() else None

        vector, as_of = await poll(refreshed)
    assert vector["mrr"] == 90.0
    assert vector["seats"] == 3
    assert vector["active_days_30d"] == 1
    assert as_of.replace(tzinfo=UTC).timestamp() == pytest.approx(started, abs=30)


# ------------------------------------------------------------------ requests written together


def test_requests_written_together_are_each_counted_as_if_sent_alone(tmp_path):
    """Group commit: new-only requests share one batch; a request repeating an id of an earlier
    one, or reusing it for another event, is settled against it like a file would be; a request
    that is not events at all is refused alone."""
    from feature_store.errors import InputFileError
    from feature_store.event_index import EventIdIndex
    from feature_store.ingest import ingest_files
    from feature_store.offline_store import OfflineStore
    from feature_store.records import Request, ingest_requests

    layout = StoreLayout(tmp_path / "home")
    index = EventIdIndex(OfflineStore(layout))
    canceled = {
        "event_id": "b0",
        "customer_id": "cus_1",
        "occurred_at": "2026-11-02T09:00:00Z",
        "type": "subscription_canceled",
    }
    requests = [
        Request({"usage": [usage("u1"), usage("u2"), usage("u3"), usage("u9", None)]}, "a"),
        Request({"usage": [usage("u4"), usage("u1")]}, "b"),  # u1 as sent by a: a re-send
        Request({"usage": [usage("u5"), usage("u2", event="logout")]}, "c"),  # u2 reused
        Request({"billing": [{"colour": "red"}]}, "d"),  # not events at all
        # The first item lacks columns a later one has: judged like a JSON Lines file.
        Request({"usage": [usage("u6")], "billing": [canceled, billing_started("b1")]}, "e"),
    ]
    a, b, c, d, e = ingest_requests(layout, requests, index=index)
    assert isinstance(d, InputFileError)
    counts = [
        (r.streams["usage"].accepted, r.streams["usage"].duplicates, r.streams["usage"].quarantined)
        for r in (a, b, c, e)
    ]
    assert counts == [(3, 0, 1), (1, 1, 0), (1, 0, 1), (1, 0, 0)]
    assert c.streams["usage"].reasons == {"conflicting_duplicate": 1}
    assert a.batch_id == e.batch_id != b.batch_id  # a and e: one batch, one part per stream
    assert e.streams["billing"].accepted == 2
    assert stored_events(layout.home) == 8
    # Written by someone else meanwhile (the CLI): the index catches up from the parts on disk.
    (tmp_path / "more.jsonl").write_text(
        '{"event_id": "v1", "customer_id": "cus_2", '
        '"occurred_at": "2026-11-20T10:00:00Z", "event": "x"}\n'
    )
    ingest_files(layout, {"usage": tmp_path / "more.jsonl"})
    again = ingest_requests(
        layout, [*requests, Request({"usage": [usage("v1", "cus_2", event="x")]}, "f")], index=index
    )
    assert [r.streams["usage"].accepted for r in again if not isinstance(r, InputFileError)] == [
        0
    ] * 5
    assert stored_events(layout.home) == 9


def test_the_event_index_holds_exactly_the_union_of_what_was_added_across_merges():
    """The sorted insert that replaced ``np.union1d`` keeps the same set and sorted, unique arrays
    (which membership's binary search needs), before and after a merge into the main array."""
    import numpy as np

    from feature_store import event_index

    rng = np.random.default_rng(7)
    ids, expected = event_index._StreamIds(), np.empty(0, np.uint64)
    while len(expected) < event_index._MERGE_AT + 20_000:  # crosses one merge
        batch = rng.integers(0, 2**63, 5_000, dtype=np.uint64)
        batch = np.concatenate([batch, batch[:50], expected[:30]])  # repeats within and across
        ids.add(batch)
        expected = np.union1d(expected, batch)
        assert np.array_equal(np.union1d(ids.main, ids.recent), expected)
        assert np.array_equal(ids.main, np.unique(ids.main))  # sorted, each hash once
        assert np.array_equal(ids.recent, np.unique(ids.recent))
        assert ids.contains(batch).all()
    assert len(ids.main) > 0  # the merge happened
    assert not ids.contains(rng.integers(0, 2**63, 100, dtype=np.uint64)).any()


def test_a_cancelled_ingestion_leaves_the_ingestion_process_answering(tmp_path):
    """A request cancelled while its events are written (a client gone, a shutdown) must not
    break the pipe's reader: the next request is answered, and the cancelled one's events are
    stored all the same (a write is not undone)."""
    import asyncio

    from feature_store.records import Request
    from service.ingest_process import IngestProcess

    def events(first: int, count: int) -> list[dict]:
        return [
            {
                "event_id": f"c-{i}",
                "customer_id": f"cus_{i % 13}",
                "event": "login",
                "occurred_at": "2026-11-30T12:00:00Z",
            }
            for i in range(first, first + count)
        ]

    home = tmp_path / "home"
    process = IngestProcess(StoreLayout(home), home / "online.sqlite")

    async def scenario() -> None:
        first = asyncio.create_task(process.ingest(Request({"usage": events(0, 3000)}, "test")))
        await asyncio.sleep(0)  # handed over; the child (a second of imports) cannot answer yet
        assert not first.done()
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        second = process.ingest(Request({"usage": events(3000, 10)}, "test"))
        report = await asyncio.wait_for(second, 120)
        assert report.streams["usage"].accepted == 10

    try:
        asyncio.run(scenario())
    finally:
        process.close()
    from feature_store.offline_store import OfflineStore

    con = connect(threads=1)
    try:
        (stored,) = con.execute(
            f"SELECT count(*) FROM ({OfflineStore(StoreLayout(home)).events_sql('usage')})"
        ).fetchone()
    finally:
        con.close()
    assert stored == 3010


def test_the_ingestion_process_starts_with_the_service_when_asked_and_on_demand_otherwise(
    tmp_path,
):
    """`segments serve` asks for it at start, so that the first request does not wait for the
    child's imports; an app that never ingests (most tests) starts none."""

    async def started(at_start: bool) -> int | None:
        settings = settings_for(tmp_path / "home", ingest_process_at_start=at_start)
        async with in_process(settings) as (app, _):
            return app.state.ingestion.process.pid

    assert anyio.run(started, True) is not None
    assert anyio.run(started, False) is None


def test_closing_does_not_wait_a_minute_for_an_ingestion_process_that_holds_nothing(
    tmp_path, caplog
):
    """A stop of the service reached a child still starting (importing at low priority on a busy
    machine) and the shutdown waited the full minute for a child with nothing to finish. With no
    request held, closing ends it after a short wait; the child here is stopped (SIGSTOP), so it
    cannot read the stop at all."""
    import logging
    import os
    import signal

    from service.ingest_process import IngestProcess

    home = tmp_path / "home"
    process = IngestProcess(StoreLayout(home), home / "online.sqlite")
    process.start()
    pid = process.pid
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)
    with caplog.at_level(logging.INFO, logger="service"):
        process.close()
    assert "held no request; ended after 5 s" in caplog.text
    assert "did not stop" not in caplog.text
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_an_ingestion_process_that_answers_nothing_is_ended_and_the_next_request_served(
    tmp_path, caplog
):
    """A child that was stopped (SIGSTOP here; stuck, in the wild) held every ingestion request
    for ever: each waited with no answer and no timeout. Now a request that waited the answer
    timeout with no answer from the child fails as ingestion_unavailable (503, send again), the
    child is ended, and the next request starts another and is stored. (Silence is judged over
    at least three heartbeats, 6 s, from the child's start: hence a timeout of 8 s here.)"""
    import logging

    from feature_store.records import Request
    from service.ingest_process import IngestionUnavailableError

    home = tmp_path / "home"
    process = IngestProcess(StoreLayout(home), home / "online.sqlite", answer_timeout=8)
    process.start()
    stopped = process.pid
    assert stopped is not None
    os.kill(stopped, signal.SIGSTOP)

    async def scenario() -> None:
        waited = time.monotonic()
        with pytest.raises(IngestionUnavailableError, match="did not answer in 8 s; send again"):
            await process.ingest(Request({"usage": [usage("w1")]}, "test"))
        assert time.monotonic() - waited < 60
        wait_until(lambda: process.pid is None, "the reader seeing the ended child")
        process.answer_timeout = 120  # a new child's imports may take a while on a busy machine
        report = await process.ingest(Request({"usage": [usage("w1"), usage("w2")]}, "test"))
        assert report.streams["usage"].accepted == 2
        assert process.pid not in (None, stopped)

    try:
        with caplog.at_level(logging.ERROR, logger="service"):
            asyncio.run(scenario())
    finally:
        process.close()
    assert "said nothing in 8 s; ending it" in caplog.text
    with pytest.raises(ProcessLookupError):
        os.kill(stopped, 0)


def test_a_live_ingestion_process_waiting_for_the_data_home_is_not_ended(tmp_path, caplog):
    """A write waits for the data home's lock while a long `segments ingest` holds it: the child
    is alive (its event loop says so every 2 s), so a request that waited the answer timeout
    answers 503 and the child is left to finish, not killed and restarted with every request (a
    review). Once the lock is free, the write it held is stored, and the next request too."""
    import logging

    from filelock import FileLock

    from feature_store.records import Request
    from service.ingest_process import IngestionUnavailableError

    home = tmp_path / "home"
    layout = StoreLayout(home)
    process = IngestProcess(layout, home / "online.sqlite")

    async def scenario() -> None:
        first = await process.ingest(Request({"usage": [usage("h1")]}, "test"))  # started, warm
        assert first.streams["usage"].accepted == 1
        child = process.pid
        process.answer_timeout = 5
        with FileLock(str(layout.lock_path)):
            with pytest.raises(
                IngestionUnavailableError, match="has not stored this request in 5 s"
            ):
                await process.ingest(Request({"usage": [usage("h2")]}, "test"))
            assert process.pid == child
        process.answer_timeout = 120
        report = await process.ingest(Request({"usage": [usage("h2"), usage("h3")]}, "test"))
        assert (report.streams["usage"].accepted, report.streams["usage"].duplicates) == (1, 1)
        assert process.pid == child

    try:
        with caplog.at_level(logging.ERROR, logger="service"):
            asyncio.run(scenario())
    finally:
        process.close()
    assert "ending it" not in caplog.text


def test_requests_beyond_the_pending_bound_are_refused_at_once_and_nothing_is_lost(tmp_path):
    """While the child's write waits for the data home's lock, clients' retries piled up in both
    processes' memory without bound (a note's open item). Beyond ``max_pending_events`` a request
    is refused before it is handed over (``IngestionBusyError``, 503 ingestion_busy); the ones
    held are stored once the lock is free, and a refused one sent again then is stored too."""
    from filelock import FileLock

    from feature_store.records import Request
    from service.ingest_process import IngestionBusyError

    home = tmp_path / "home"
    layout = StoreLayout(home)
    process = IngestProcess(layout, home / "online.sqlite", max_pending_events=3)

    async def scenario() -> None:
        warm = await process.ingest(Request({"usage": [usage("p0")]}, "test"))
        assert warm.streams["usage"].accepted == 1
        with FileLock(str(layout.lock_path)):
            held = asyncio.ensure_future(
                process.ingest(Request({"usage": [usage("p1"), usage("p2")]}, "test"))
            )
            await asyncio.sleep(0.5)
            assert not held.done()
            refused = time.monotonic()
            with pytest.raises(IngestionBusyError, match="holds 2 events not yet stored"):
                await process.ingest(Request({"usage": [usage("p3"), usage("p4")]}, "test"))
            assert time.monotonic() - refused < 1  # at once, not after the answer timeout
            # within the bound: handed over, and waits with the first
            also = asyncio.ensure_future(process.ingest(Request({"usage": [usage("p5")]}, "test")))
            await asyncio.sleep(0.2)
            assert not also.done()
        assert (await held).streams["usage"].accepted == 2
        assert (await also).streams["usage"].accepted == 1
        again = await process.ingest(Request({"usage": [usage("p3"), usage("p4")]}, "test"))
        assert again.streams["usage"].accepted == 2
        assert process._pending_events == 0
        # one request alone is never refused, whatever its size
        alone = [usage(f"q{i}") for i in range(5)]
        assert (await process.ingest(Request({"usage": alone}, "test"))).streams[
            "usage"
        ].accepted == 5

    try:
        asyncio.run(scenario())
    finally:
        process.close()


class _Unreadable:
    """A request the ingestion process cannot unpickle (unpickling calls int("not a number"))."""

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (int, ("not a number",))


def test_a_request_the_ingestion_process_cannot_read_ends_it_and_the_next_is_served(tmp_path):
    """The child's reader thread died on such a request while its event loop went on sending
    heartbeats: the service never saw the process as silent, every request after it waited
    out its timeout, and closing waited a minute (a review). Now the process ends: the request
    fails at once (503) and the next starts a new process."""
    from feature_store.records import Request
    from service.ingest_process import IngestionUnavailableError

    home = tmp_path / "home"
    process = IngestProcess(StoreLayout(home), home / "online.sqlite", answer_timeout=60)

    async def scenario() -> None:
        warm = await process.ingest(Request({"usage": [usage("r1")]}, "test"))
        assert warm.streams["usage"].accepted == 1
        first = process.pid
        waited = time.monotonic()
        with pytest.raises(IngestionUnavailableError, match="ended; send again"):
            await asyncio.wrap_future(process._call("ingest", _Unreadable()))
        assert time.monotonic() - waited < 30  # not the 60 s timeout
        report = await process.ingest(Request({"usage": [usage("r2")]}, "test"))
        assert report.streams["usage"].accepted == 1
        assert process.pid not in (None, first)

    try:
        asyncio.run(scenario())
    finally:
        process.close()


def test_customers_are_refreshed_under_the_ids_they_are_stored_as():
    """`"customer_id": true` was stored as `true` and looked for as `True`; a float id
    (604520097.0) was not looked for at all: their vectors were never refreshed."""
    from feature_store.ingest import StreamReport
    from feature_store.records import _touched_customers

    records = {"usage": [usage("a", customer=True), usage("b", customer=604520097.0),
                         usage("c", customer=7), usage("d", customer="x"), {"customer_id": [1]}]}  # fmt: skip
    report = StreamReport("usage", "POST /v1/events", accepted=4)
    assert _touched_customers(records, {"usage": report}) == ["604520097.0", "7", "true", "x"]
    # as stored: without the spaces around them; one of spaces alone is no customer
    padded = {"usage": [usage("e", customer=" y "), usage("f", customer="   ")]}
    assert _touched_customers(padded, {"usage": report}) == ["y"]


def _a_child_with_a_send_under_way(
    tmp_path: Path,
) -> tuple[IngestProcess, int, Connection, threading.Event]:
    """An ingestion process with its child started, and its sender thread busy until the event
    is set, as with a large request still being written into the pipe: (process, the child's
    pid, the pipe, the event)."""
    home = tmp_path / "home"
    process = IngestProcess(StoreLayout(home), home / "online.sqlite")
    process.start()
    pid, pipe = process.pid, process._connection
    assert pid is not None
    assert pipe is not None
    sending = threading.Event()
    process._sender.submit(sending.wait, 60)
    return process, pid, pipe, sending


def test_the_pipe_of_an_ended_ingestion_process_is_closed_only_after_the_sends_before_it(
    tmp_path,
):
    """The reader closed the pipe of a child that had died while the sender thread was still
    writing a request into it: between two writes the descriptor's number was free, the
    idempotency store's SQLite file opened by the next request took it, and the rest of the
    pickled request went into that file ("file is not a database" to every request after). The
    pipe is now closed on the sender's thread, after what was queued before; held up here by a
    send that has not finished, it stays open until that send is done."""
    process, pid, pipe, sending = _a_child_with_a_send_under_way(tmp_path)
    try:
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: process.pid is None, "the reader seeing the child end")
        time.sleep(0.2)  # what the reader does next, it has done by now
        assert not pipe.closed
        sending.set()
        wait_until(lambda: pipe.closed, "the pipe closed once the send is done")
    finally:
        sending.set()
        process.close()


def test_a_child_ending_while_the_service_closes_leaves_the_pipe_to_the_sends_before(tmp_path):
    """The same, when the service is stopping: its close no longer takes new sends, but those
    queued before still run, so the reader that sees the child end waits for them too."""
    process, pid, pipe, sending = _a_child_with_a_send_under_way(tmp_path)
    closer = threading.Thread(target=process.close)  # the service stopping
    try:
        closer.start()
        time.sleep(0.3)  # closing waits for the sender now
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: process.pid is None, "the reader seeing the child end")
        time.sleep(0.2)  # what the reader does next, it has done by now
        assert not pipe.closed
    finally:
        sending.set()
        closer.join(60)
    wait_until(lambda: pipe.closed, "the pipe closed by the reader once the send is done")


def _hold_the_catalog(home: Path) -> subprocess.Popen:
    """Another process with the data home's catalog open, as a DuckDB shell left open on it would
    hold it; returns once it holds it."""
    StoreLayout(home).home.mkdir(parents=True, exist_ok=True)
    script = (
        "import duckdb, sys, time\n"
        "con = duckdb.connect(); con.execute('ATTACH ? AS c'.replace('?', repr(sys.argv[1])))\n"
        "print('holding', flush=True); time.sleep(120)\n"
    )
    catalog = str(StoreLayout(home).catalog_path)
    holder = subprocess.Popen(
        [sys.executable, "-c", script, catalog], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "holding"
    holder.stdout.close()
    return holder


async def test_a_catalog_held_by_a_process_outside_the_lock_is_a_503_not_a_500(tmp_path):
    """A DuckDB lock error from the catalog answered 500 to every request of the group: a client
    read it as a bug, not as "send again". It is a 503 naming the file, and once the holder has
    let go the same request is stored."""
    home = tmp_path / "home"
    body = {"usage": [usage("u1"), usage("u2")]}
    async with in_process(settings_for(home)) as (_, http):
        holder = _hold_the_catalog(home)
        try:
            busy = await http.post("/v1/events", json=body, headers=INGEST)
        finally:
            holder.kill()
            holder.wait()
        problem = assert_problem(busy, 503, "store_busy")
        assert "catalog.duckdb is open in another process" in problem["detail"]
        assert busy.headers["Retry-After"] == "5"
        stored = await http.post("/v1/events", json=body, headers=INGEST)
        assert stored.status_code == 200, stored.text
        assert stored.json()["accepted"] == 2


async def test_admission_counts_the_bytes_received_not_the_bytes_declared():
    """Reserving the declared Content-Length let anyone hold a worker's whole budget with Stripe
    webhook connections that send nothing (the webhook reads its body before it can check the
    signature; a review). What a request holds is what it has received."""
    from service.middleware import IngestionAdmissionMiddleware

    async def reads_its_body(scope, receive, send):
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    admission = IngestionAdmissionMiddleware(
        reads_its_body, ("/v1/events", "/v1/webhooks/stripe"), max_bytes=1000
    )
    answered: list[int] = []

    async def record(message):
        if message["type"] == "http.response.start":
            answered.append(message["status"])

    def post(path: str, root: str = "") -> dict:
        declared = [(b"content-length", b"4194304")]
        return {"type": "http", "method": "POST", "path": root + path, "root_path": root,
                "headers": declared}  # fmt: skip

    async def never() -> dict:
        await asyncio.Event().wait()
        return {}

    stalled = [asyncio.create_task(admission(post("/v1/webhooks/stripe"), never, record))]
    await asyncio.sleep(0.05)
    assert admission.held == 0  # declared 4 MiB, sent nothing: holds nothing

    chunks = iter([{"type": "http.request", "body": b"x" * 600, "more_body": True}])

    async def half_sent() -> dict:
        return next(chunks, None) or await never()

    # under a root path (uvicorn --root-path /segments) the route's path is still bounded
    stalled.append(
        asyncio.create_task(admission(post("/v1/events", "/segments"), half_sent, record))
    )
    await asyncio.sleep(0.05)
    assert admission.held == 600

    async def whole() -> dict:
        return {"type": "http.request", "body": b"y" * 300, "more_body": False}

    await admission(post("/v1/events"), whole, record)  # fits beside the 600: answered
    assert answered == [200]
    assert admission.held == 600
    for task in stalled:
        task.cancel()
    await asyncio.gather(*stalled, return_exceptions=True)
    assert admission.held == 0  # given back when the connections went
