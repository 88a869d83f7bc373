"""Browser sessions in a SQLite file of the data home (``service.ui.sessions.UiSessions``): what
one worker creates every other worker knows, the file never holds a token, sessions end, and a
changed key configuration (``ApiKeys.configuration``) ends them all."""

from __future__ import annotations

import os
import re
import sqlite3
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from service.keys import ApiKeys, read_key_file, write_key_file
from service.settings import Scope
from service.ui import sessions as ui_sessions
from service.ui.sessions import SessionStoreError, UiSessions

READ = frozenset({Scope.read})
KEYS = "configuration-1"
REPO = Path(__file__).resolve().parents[1]


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_a_session_one_worker_creates_is_known_to_another_and_ends_for_both(tmp_path):
    path = tmp_path / "service" / "ui_sessions.sqlite"
    first, second = (
        UiSessions(path, KEYS),
        UiSessions(path, KEYS),
    )  # two processes' stores on one file
    session = first.create(frozenset({Scope.read, Scope.discover}))
    seen = second.get(session.token)
    assert seen is not None
    assert seen.csrf == session.csrf
    assert seen.scopes == frozenset({Scope.read, Scope.discover})
    second.end(session.token)
    assert first.get(session.token) is None


def test_the_file_keeps_a_hash_of_each_token_never_the_token(tmp_path):
    path = tmp_path / "ui_sessions.sqlite"
    store = UiSessions(path, KEYS)
    tokens = [store.create(READ).token for _ in range(3)]
    stored = {row[0] for row in sqlite3.connect(path).execute("SELECT token_hash FROM ui_sessions")}
    assert len(stored) == 3
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.is_file())
    for token in tokens:
        assert token.encode() not in raw
        assert token not in stored
    assert store.get(stored.pop()) is None  # the hash is not a token


def test_a_session_expires_and_expired_ones_are_removed(tmp_path):
    clock = Clock()
    path = tmp_path / "ui_sessions.sqlite"
    store = UiSessions(path, KEYS, seconds=60, clock=clock)
    old = store.create(READ)
    clock.now += 59
    assert store.get(old.token) is not None
    clock.now += 1
    assert store.get(old.token) is None
    store.create(READ)
    assert sqlite3.connect(path).execute("SELECT count(*) FROM ui_sessions").fetchone() == (1,)


def test_the_oldest_sessions_make_room_beyond_the_cap(tmp_path, monkeypatch):
    monkeypatch.setattr(ui_sessions, "MAX_SESSIONS", 3)
    clock = Clock()
    store = UiSessions(tmp_path / "ui_sessions.sqlite", KEYS, clock=clock)
    made = []
    for _ in range(5):
        made.append(store.create(READ).token)
        clock.now += 1
    assert [store.get(token) is not None for token in made] == [False, False, True, True, True]


def test_one_key_signing_in_again_and_again_ends_only_its_own_sessions(tmp_path, monkeypatch):
    """Any key with `read` could sign in 10,000 times and end every other key's sessions (a
    hostile client's review): a key holds at most MAX_SESSIONS_PER_KEY, its oldest making room."""
    monkeypatch.setattr(ui_sessions, "MAX_SESSIONS_PER_KEY", 3)
    clock = Clock()
    store = UiSessions(tmp_path / "ui_sessions.sqlite", KEYS, clock=clock)
    other = store.create(READ, "team-key").token
    clock.now += 1
    hers = []
    for _ in range(20):
        hers.append(store.create(READ, "script-key").token)
        clock.now += 1
    assert store.get(other) is not None
    assert [store.get(token) is not None for token in hers] == [False] * 17 + [True] * 3


def test_a_session_file_of_the_earlier_shape_is_read_and_extended(tmp_path):
    """Files written before sessions named their key lack the column: it is added."""
    path = tmp_path / "ui_sessions.sqlite"
    con = sqlite3.connect(path)
    con.execute(
        "CREATE TABLE ui_sessions (token_hash TEXT PRIMARY KEY, csrf TEXT NOT NULL, "
        "scopes TEXT NOT NULL, expires_at REAL NOT NULL)"
    )
    con.commit()
    con.close()
    os.chmod(path, 0o600)
    store = UiSessions(path, KEYS)
    assert store.get(store.create(READ, "a-key").token) is not None


@pytest.mark.parametrize("token", [None, "", "x" * 5000, "\udcff", "' OR 1=1 --"])
def test_any_cookie_value_finds_no_session(tmp_path, token):
    store = UiSessions(tmp_path / "ui_sessions.sqlite", KEYS)
    store.create(READ)
    assert store.get(token) is None
    store.end(token)  # nothing to end, no error


def test_a_file_that_cannot_be_opened_is_an_error_of_its_own_for_every_call(tmp_path):
    (tmp_path / "service").write_text("a file where the folder should be")
    store = UiSessions(tmp_path / "service" / "ui_sessions.sqlite", KEYS)
    for call in (lambda: store.create(READ), lambda: store.get("t"), lambda: store.end("t")):
        with pytest.raises(SessionStoreError, match="browser sessions cannot be kept in"):
            call()


def test_something_other_than_a_file_at_the_path_is_refused_at_once(tmp_path):
    """A directory or a FIFO where the file should be: an error that says so, not SQLite's
    "disk I/O error" (or, where opening a FIFO waits for a writer, a blocked worker)."""
    fifo, folder = tmp_path / "fifo.sqlite", tmp_path / "folder.sqlite"
    os.mkfifo(fifo)
    folder.mkdir()
    for path in (fifo, folder):
        store = UiSessions(path, KEYS)
        outcome: list[BaseException | None] = []

        def create(store: UiSessions = store, outcome: list = outcome) -> None:
            try:
                store.create(READ)
                outcome.append(None)
            except BaseException as error:  # handed to the test's thread below
                outcome.append(error)

        worker = threading.Thread(target=create, daemon=True)
        worker.start()
        worker.join(timeout=20)
        assert outcome, f"creating a session blocked on {path.name}"
        assert isinstance(outcome[0], SessionStoreError)
        assert "is not a regular file" in str(outcome[0])


def test_the_file_is_readable_by_its_owner_only_even_one_made_before(tmp_path):
    path = tmp_path / "ui_sessions.sqlite"
    UiSessions(path, KEYS).create(READ)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    older = tmp_path / "older.sqlite"
    sqlite3.connect(older).close()
    older.chmod(0o644)
    UiSessions(older, KEYS).create(READ)
    assert stat.S_IMODE(older.stat().st_mode) == 0o600


def test_the_file_holds_nothing_derived_from_the_keys_alone(tmp_path):
    path = tmp_path / "ui_sessions.sqlite"
    UiSessions(path, "pbkdf2-of-the-keys").create(READ, "sk_local_the-key-itself")
    columns = [row[1] for row in sqlite3.connect(path).execute("PRAGMA table_info(ui_sessions)")]
    assert columns == ["token_hash", "csrf", "scopes", "expires_at", "key_hash"]
    written = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.is_file())
    assert b"sessions" in written  # the schema: the files were read
    assert b"pbkdf2-of-the-keys" not in written
    assert b"sk_local_the-key-itself" not in written  # the key only as its keyed hash


def test_a_session_made_under_another_key_configuration_is_not_known(tmp_path):
    path = tmp_path / "ui_sessions.sqlite"
    session = UiSessions(path, KEYS).create(READ)
    assert UiSessions(path, "configuration-2").get(session.token) is None
    assert UiSessions(path, KEYS).get(session.token) is not None


def test_the_key_configuration_is_the_same_in_every_process_and_changes_with_any_key(tmp_path):
    keys = {"key-a": [Scope.read], "key-b": [Scope.read, Scope.discover]}
    # from the environment: a salt per process, the same fingerprint
    assert ApiKeys.of(keys).configuration == ApiKeys.of(dict(reversed(keys.items()))).configuration
    assert ApiKeys.of(keys).configuration != ApiKeys.of({"key-a": [Scope.read]}).configuration
    other_scopes = {"key-a": [Scope.read], "key-b": [Scope.read]}
    assert ApiKeys.of(keys).configuration != ApiKeys.of(other_scopes).configuration
    # from the key file: the same file, the same fingerprint; rewritten (a new salt), another
    path = tmp_path / "api_keys.json"
    write_key_file(path, keys)
    assert read_key_file(path).configuration == read_key_file(path).configuration
    before = read_key_file(path).configuration
    write_key_file(path, keys)
    assert read_key_file(path).configuration != before
    assert "key-a" not in read_key_file(path).configuration


def test_a_store_never_drops_the_sqlite_locks_another_connection_of_its_process_holds(tmp_path):
    """SQLite's locks belong to the process and go when any handle on the file closes: a store
    that opened and closed the file itself while another request's connection was live let a
    second worker take that connection for the last one, checkpoint and delete the WAL, and a
    later commit then brought a signed-out session back."""
    path = tmp_path / "ui_sessions.sqlite"
    first = UiSessions(path, KEYS)
    victim = first.create(READ)
    other_worker = (
        "import pathlib, sys\n"
        "from service.ui.sessions import UiSessions\n"
        f"store = UiSessions(pathlib.Path({str(path)!r}), {KEYS!r})\n"
        "action = sys.argv[1]\n"
        f"store.get('x') if action == 'look' else store.end({victim.token!r})\n"
    )
    request = sqlite3.connect(path, isolation_level=None)  # a request of this worker, still open
    request.execute("PRAGMA journal_mode = WAL")
    try:
        UiSessions(path, KEYS).get("another cookie")  # another request of the same worker
        subprocess.run([sys.executable, "-c", other_worker, "look"], check=True, cwd=REPO)
        request.execute(
            "INSERT INTO ui_sessions (token_hash, csrf, scopes, expires_at) "
            "VALUES ('h', 'c', 'read', 9e12)"
        )
        subprocess.run([sys.executable, "-c", other_worker, "end"], check=True, cwd=REPO)
    finally:
        request.close()
    assert first.get(victim.token) is None  # signed out stays signed out
    assert sqlite3.connect(path).execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_a_file_deleted_while_the_service_runs_is_made_again_after_one_refusal(tmp_path):
    path = tmp_path / "ui_sessions.sqlite"
    store = UiSessions(path, KEYS)
    session = store.create(READ)
    for made in tmp_path.iterdir():
        made.unlink()
    with pytest.raises(SessionStoreError):
        store.get(session.token)  # an empty file without the table
    assert store.get(store.create(READ).token) is not None
    assert store.get(session.token) is None


@pytest.mark.parametrize(
    ("asked", "taken"),
    [
        ("/ui/segments/3?q=a", "/ui/segments/3?q=a"),
        ("/ui", "/ui"),
        ("/ui/../../etc", "/ui"),
        ("/ui/%2e%2e/metrics", "/ui"),
        ("/ui/./segments", "/ui"),
        ("/uinope", "/ui"),
        ("//evil.example/ui", "/ui"),
        ("https://evil.example/ui", "/ui"),
        ("/ui\\\\evil", "/ui"),
        (None, "/ui"),
    ],
)
def test_sign_in_returns_only_to_pages_of_the_explorer(asked, taken):
    from service.ui.sessions import safe_next

    assert safe_next(asked) == taken


def test_a_browser_waiting_for_the_model_gets_a_page_that_loads_again(tmp_path):
    """Right after a start the service has no model for a few seconds: a signed-in browser got the
    503 problem document as raw JSON. It now gets a page saying so, which reloads itself; an API
    client keeps the problem document."""
    import anyio
    from ingest_http_support import in_process, settings_for

    async def scenario() -> None:
        async with in_process(settings_for(tmp_path / "home")) as (_, http):
            form = await http.get("/ui/sign-in")
            token = re.search(r'name="csrf_token" value="([^"]+)"', form.text).group(1)
            signed = await http.post(
                "/ui/sign-in", data={"csrf_token": token, "api_key": "read-key"}
            )
            assert signed.status_code == 303, signed.text
            page = await http.get("/ui", headers={"Accept": "text/html,*/*;q=0.8"})
            assert page.status_code == 503
            assert page.headers["content-type"].startswith("text/html")
            assert page.headers["refresh"] == page.headers["retry-after"] == "5"
            assert "No model is loaded yet" in page.text
            assert 'href="/ui"' in page.text
            problem = await http.get("/ui", headers={"Accept": "application/json"})
            assert problem.status_code == 503
            assert problem.json()["code"] == "model_unavailable"
            # once the registry was asked, it says why and what to do: "retry shortly" never
            # helps a registry with no champion (a new user's walkthrough)
            deadline = anyio.current_time() + 60
            while "segments promote VERSION" not in problem.json()["detail"]:
                assert anyio.current_time() < deadline, problem.json()
                await anyio.sleep(0.1)
                problem = await http.get("/ui", headers={"Accept": "application/json"})
            assert "the registry has no 'champion' model yet" in problem.json()["detail"]
            # htmx swaps no 5xx: a fragment asked for then reloads the whole page instead
            fragment = await http.get("/ui/segments/0/members", headers={"HX-Request": "true"})
            assert (fragment.status_code, fragment.headers["hx-refresh"]) == (503, "true")

    anyio.run(scenario)
