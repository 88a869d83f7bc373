"""HTTP ingestion with a real model and a real server: ``/v1/score`` by id reflects events sent
over HTTP within seconds (with ``features_as_of``), and a server killed mid-request loses and
doubles nothing when the request is sent again."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pandas as pd
import pytest
from ingest_http_support import in_process, settings_for
from service_support import AS_OF, free_port, trained_home

from feature_store.engine import connect
from feature_store.layout import StoreLayout

pytestmark = pytest.mark.anyio
INGEST = {"X-API-Key": "ingest-key"}
SCORE = {"X-API-Key": "score-key"}
READ = {"X-API-Key": "read-key"}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def home(shared_root, demo_files, tmp_path) -> Path:
    import shutil

    shared = trained_home(shared_root, demo_files)
    own = tmp_path / "home"
    shutil.copytree(shared, own)
    return own


def instant(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


async def until(check, seconds: float = 180.0):
    """Poll ``check`` until it returns something, with a deadline (no fixed sleeps). The deadline
    only bounds how long a failure takes: how fast the refresh is belongs to the benchmark."""
    import anyio

    deadline = time.monotonic() + seconds
    while (outcome := await check()) is None:
        assert time.monotonic() < deadline, "not reflected before the deadline"
        await anyio.sleep(0.05)
    return outcome


async def test_score_by_id_reflects_events_sent_over_http(home):
    features = pd.read_parquet(home / "features.parquet")
    paying = features[(features["mrr"] > 0) & (features["is_canceled"] == 0)].iloc[0]
    customer = str(paying["customer_id"])
    now = datetime.now(UTC)
    cancel = {
        "event_id": "http-cancel-1",
        "customer_id": customer,
        "occurred_at": instant(now - timedelta(minutes=1)),
        "type": "subscription_canceled",
    }
    newcomer = {
        "event_id": "http-new-1",
        "customer_id": "lead-over-http",
        "occurred_at": instant(now - timedelta(days=2)),
        "type": "subscription_started",
        "plan": "team",
        "interval": "month",
        "seats": 4,
        "mrr": 120.0,
        "currency": "USD",
    }
    async with in_process(settings_for(home), registry=True) as (_, http):

        async def ready():
            return True if (await http.get("/health/ready")).status_code == 200 else None

        await until(ready, 300)  # the champion loads from the embedded registry (slow when busy)

        async def score(customer_id: str):
            response = await http.post(
                "/v1/score", json={"customer_id": customer_id}, headers=SCORE
            )
            return None if response.status_code == 503 else response

        before = (await until(lambda: score(customer))).json()
        assert before["features_as_of"] == "2026-07-01T00:00:00Z"  # the batch run as of AS_OF
        assert AS_OF == "2026-06-30"
        assert (await score("lead-over-http")).status_code == 404
        segment = before["segment"]["id"]
        assert customer in await members(http, segment)
        body = {"billing": [cancel, newcomer]}
        # `features_as_of` has whole seconds: a refresh within the second the events were sent
        # stamps that very second, so "fresh" is "at or after the second they were sent in".
        sent = instant(datetime.now(UTC))
        assert (await http.post("/v1/events", json=body, headers=INGEST)).json()["accepted"] == 2

        async def fresh(customer_id: str):
            response = await score(customer_id)
            if response.status_code != 200 or response.json()["features_as_of"] < sent:
                return None
            return response.json()

        after = await until(lambda: fresh(customer))
        lead = await until(lambda: fresh("lead-over-http"))

        # The CRM's member listing follows the refreshed vectors as the scores do: it was placed
        # once per model version, and kept listing a cancelled customer until a restart. The
        # first listing once the scores show the refresh lists it so (it answered with the table
        # before, however long after the refresh: a hostile client's review).
        assert "lead-over-http" in await members(http, lead["segment"]["id"])
        assert customer not in await members(http, segment)

        # Asked to, the answer waits for the refresh: the very next score reads the events (it
        # read the vector before for ~0.6 s, and nothing said so: a hostile client's review)
        usage = {"event_id": "http-use-1", "customer_id": "lead-over-http",
                 "occurred_at": instant(datetime.now(UTC) - timedelta(minutes=1)),
                 "event": "report_viewed"}  # fmt: skip
        waited = await http.post(
            "/v1/events", params={"wait_for_refresh": "true"}, json={"usage": [usage]},
            headers=INGEST,
        )  # fmt: skip
        assert waited.json()["refreshed"] is True
        now_read = (await score("lead-over-http")).json()
        assert now_read["features"]["events_30d"] == lead["features"]["events_30d"] + 1
        # nothing new to refresh (a duplicate) is no wait, and not asking says nothing
        again = await http.post(
            "/v1/events", params={"wait_for_refresh": "true"}, json={"usage": [usage]},
            headers=INGEST,
        )  # fmt: skip
        assert (again.json()["duplicates"], again.json()["refreshed"]) == (1, True)
        plain = await http.post("/v1/events", json={"usage": [usage]}, headers=INGEST)
        assert plain.json()["refreshed"] is None
    assert after["features"].get("mrr", 0.0) == 0.0
    assert after["features"].get("is_canceled", 1.0) == 1.0
    assert lead["customer_id"] == "lead-over-http"
    assert lead["features"].get("mrr", 120.0) == 120.0


async def members(http: httpx.AsyncClient, segment_id: int) -> set[str]:
    """Every customer the listing puts in the segment, page by page."""
    found: set[str] = set()
    cursor = None
    while True:
        params = {"limit": 1000, **({"cursor": cursor} if cursor else {})}
        response = await http.get(
            f"/v1/segments/{segment_id}/customers", params=params, headers=READ
        )
        assert response.status_code == 200, response.text
        page = response.json()
        found |= {c["customer_id"] for c in page["customers"]}
        if (cursor := page["next_cursor"]) is None:
            return found


# ------------------------------------------------------------------ killed mid-request


def start_server(home: Path, port: int, log: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        "SEGMENTS_HOME": str(home),
        "SEGMENTS_API_KEYS": json.dumps({"ingest-key": ["ingest"]}),
        "SEGMENTS_IDEMPOTENCY_STALE_SECONDS": "2",
        "SEGMENTS_TRACKING_URI": "sqlite:///" + str(home / "no-registry.db"),
    }
    command = [sys.executable, "-m", "uvicorn", "--factory", "service.app:app_from_environment"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    server = subprocess.Popen(command, env=env, stdout=log.open("a"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert server.poll() is None, log.read_text()[-2000:]
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"http://127.0.0.1:{port}/health/live", timeout=2).status_code == 200:
                return server
        time.sleep(0.1)
    server.kill()
    raise AssertionError(f"server did not start:\n{log.read_text()[-2000:]}")


def in_progress(home: Path) -> bool:
    path = home / "service" / "idempotency.sqlite"
    if not path.exists():
        return False
    with contextlib.closing(sqlite3.connect(path, timeout=5)) as con:
        try:
            return bool(
                con.execute(
                    "SELECT count(*) FROM idempotency WHERE state = 'in_progress'"
                ).fetchone()[0]
            )
        except sqlite3.OperationalError:
            return False


def stored_ids(home: Path) -> tuple[int, int]:
    parts = sorted(StoreLayout(home).stream_dir("usage").glob("*.parquet"))
    con = connect(threads=1)
    try:
        files = ", ".join(f"'{p}'" for p in parts)
        return con.execute(
            f"SELECT count(*), count(DISTINCT event_id) FROM read_parquet([{files}])"
        ).fetchone()
    finally:
        con.close()


def five_thousand_events(prefix: str, key: str) -> tuple[bytes, dict[str, str]]:
    """A request of 5,000 usage events (ids ``{prefix}-0``...) and its headers, with ``key`` as
    its Idempotency-Key."""
    events = [
        {
            "event_id": f"{prefix}-{i}",
            "customer_id": f"cus_{i % 97}",
            "occurred_at": "2026-11-30T12:00:00Z",
            "event": "api_call",
            "quantity": 1 + i % 5,
        }
        for i in range(5000)
    ]
    headers = {**INGEST, "Idempotency-Key": key, "content-type": "application/json"}
    return json.dumps({"usage": events}).encode(), headers


def send_in_background(
    url: str, body: bytes, headers: dict[str, str]
) -> tuple[threading.Thread, list]:
    """POST on a thread of its own; the list receives the response or the error."""
    answers: list[object] = []
    sender = threading.Thread(
        target=lambda: answers.append(_post_catching(url, body, headers)), daemon=True
    )
    sender.start()
    return sender, answers


def test_a_server_killed_mid_request_stores_every_event_once_when_it_is_sent_again(tmp_path):
    home, log = tmp_path / "home", tmp_path / "server.log"
    body, headers = five_thousand_events("k", "kill-test-1")
    port = free_port()
    url = f"http://127.0.0.1:{port}/v1/events"
    server = start_server(home, port, log)
    try:
        sender, first = send_in_background(url, body, headers)
        deadline = time.monotonic() + 60
        while not in_progress(home):
            assert time.monotonic() < deadline, first
            assert sender.is_alive(), first
            time.sleep(0.005)
        server.send_signal(signal.SIGKILL)
        server.wait(timeout=30)
        sender.join(timeout=30)
        assert isinstance(first[0], httpx.HTTPError)  # the client never got an answer
        server = start_server(home, port, log)
        deadline = time.monotonic() + 60
        while (
            again := httpx.post(url, content=body, headers=headers, timeout=120)
        ).status_code == 409:
            assert time.monotonic() < deadline, (
                again.text
            )  # until the dead request's claim is stale
            time.sleep(0.2)
        answer = again.json()
        assert again.status_code == 200, again.text
        assert answer["accepted"] + answer["duplicates"] == 5000
        assert answer["quarantined"] == 0
        assert stored_ids(home) == (5000, 5000)
        replay = httpx.post(url, content=body, headers=headers, timeout=120)
        assert replay.content == again.content
        assert replay.headers["Idempotent-Replayed"] == "true"
    finally:
        server.kill()
        server.wait(timeout=30)
    assert stored_ids(home) == (5000, 5000)


def _post_catching(url: str, body: bytes, headers: dict[str, str]) -> object:
    try:
        return httpx.post(url, content=body, headers=headers, timeout=120)
    except httpx.HTTPError as error:
        return error


def ingestion_children(server_pid: int) -> list[int]:
    """The service's ingestion process (started with ``spawn``, so its command line says so)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            command = (stat.parent / "cmdline").read_bytes()
            if parent == server_pid and b"spawn_main" in command:
                found.append(int(stat.parent.name))
    return found


def test_a_killed_ingestion_process_is_a_503_and_the_next_attempt_stores_every_event_once(
    tmp_path,
):
    home, log = tmp_path / "home", tmp_path / "server.log"
    body, headers = five_thousand_events("p", "child-kill-1")
    port = free_port()
    url = f"http://127.0.0.1:{port}/v1/events"
    server = start_server(home, port, log)
    try:
        assert ingestion_children(server.pid) == []  # not asked to start it: on the first request
        sender, first = send_in_background(url, body, headers)
        deadline = time.monotonic() + 60
        while not (children := ingestion_children(server.pid)):
            assert time.monotonic() < deadline, first
            assert sender.is_alive(), first
            time.sleep(0.005)
        os.kill(children[0], signal.SIGKILL)
        sender.join(timeout=60)
        refused = first[0]
        assert isinstance(refused, httpx.Response), refused
        assert refused.status_code == 503, refused.text
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["code"] == "ingestion_unavailable"
        assert refused.headers["Retry-After"] == "1"
        assert server.poll() is None  # the service itself goes on
        again = httpx.post(url, content=body, headers=headers, timeout=120)  # same key: new try
        assert again.status_code == 200, again.text
        assert again.json()["accepted"] == 5000
        assert "Idempotent-Replayed" not in again.headers
        assert stored_ids(home) == (5000, 5000)
        assert len(ingestion_children(server.pid)) == 1  # a new one
    finally:
        server.kill()
        server.wait(timeout=30)
