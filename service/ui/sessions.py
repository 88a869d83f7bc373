"""Browser sign-in: an API key with the ``read`` scope is exchanged for a server-side session.

The browser never keeps the key: it gets a random session token in an HttpOnly, SameSite=Strict
cookie scoped to ``/ui``, and the key is forgotten once checked. Forms are CSRF-safe twice over:
SameSite=Strict keeps the cookie off cross-site requests, and every form that changes state carries
a token: the sign-in form a double-submit token (a cookie and a hidden field that must match,
since there is no session yet), signed-in forms the session's own synchronizer token.

Sessions live in a SQLite file of the data home (``UiSessions``), so every worker of
``segments serve --workers N`` knows them and a restart signs nobody out. The file keeps an HMAC
of each token, never the token, so reading it does not let anyone sign in (``docs/ui.md``).
"""

from __future__ import annotations

import contextlib
import hmac
import logging
import os
import secrets
import sqlite3
import stat
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated
from urllib.parse import unquote, urlsplit

from fastapi import Depends, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from service.settings import Scope

SESSION_COOKIE = "segments_ui_session"
CSRF_COOKIE = "segments_ui_csrf"
COOKIE_PATH = "/ui"
SESSION_SECONDS = 8 * 3600
SIGN_IN_FORM_SECONDS = 3600
MAX_SESSIONS = 10_000
# Sessions one API key may hold at once; its oldest make room for a new one. Without it, one key
# signing in 10,000 times (a script, a leaked read-only key) ended every other key's sessions.
MAX_SESSIONS_PER_KEY = 100
_SCHEMA = """CREATE TABLE IF NOT EXISTS ui_sessions (
    token_hash TEXT PRIMARY KEY,
    csrf TEXT NOT NULL,
    scopes TEXT NOT NULL,
    expires_at REAL NOT NULL,
    key_hash TEXT
)"""

logger = logging.getLogger("service")


@dataclass(frozen=True)
class UiSession:
    token: str
    csrf: str
    scopes: frozenset[Scope]
    expires_at: float


class SessionStoreError(Exception):
    """The session file cannot be read or written (a read-only or full data home)."""


class UiSessions:
    """Session token -> session, with expiry, in a SQLite file shared by the service's workers.

    The tokens are 256-bit random strings. The file keeps each one's HMAC-SHA256 keyed with the
    key configuration the session was made under (``ApiKeys.configuration``, given as ``keys``),
    never the token and nothing derived from the keys alone: once a key is removed, rotated or
    given other scopes, a service started with the new configuration finds none of the old
    sessions. The file is readable by its owner only, as the key file is. Expiry is by the wall
    clock (``time.time``), the one clock the processes share.

    Every method raises ``SessionStoreError`` when the file cannot be read or written; the pages
    then ask to sign in, and signing in or out answers 503 (``service.ui.routes``)."""

    def __init__(
        self,
        path: Path,
        keys: str,
        seconds: float = SESSION_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path, self.seconds = path, seconds
        self._key = keys.encode()
        self._clock = clock
        self._prepared = False

    def _prepare(self) -> None:
        """Once per store: make the file owner-only before SQLite first opens it here, then the
        table and the WAL mode (kept by the file), so that a page load only connects and reads.
        The mode is never set by opening the file: a process's SQLite locks go when any of its
        handles on the file closes, so a raw open and close while a connection is live would let
        another worker's commit overwrite this one's."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):  # a new file: no connection holds it yet
            os.close(
                os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            )
        if not stat.S_ISREG(self.path.stat().st_mode):
            # SQLite says "disk I/O error" (or waits on a FIFO for a writer): say what is there
            raise OSError(f"{self.path} is not a regular file")
        for path in (
            self.path,
            *(self.path.with_name(self.path.name + s) for s in ("-wal", "-shm")),
        ):
            if path.exists() and stat.S_IMODE(path.stat().st_mode) != 0o600:
                path.chmod(0o600)
        con = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            con.execute("PRAGMA journal_mode = WAL")
            con.execute(_SCHEMA)
            columns = {row[1] for row in con.execute("PRAGMA table_info(ui_sessions)")}
            if "key_hash" not in columns:  # a file written before sessions named their key
                con.execute("ALTER TABLE ui_sessions ADD COLUMN key_hash TEXT")
        finally:
            con.close()
        self._prepared = True

    @contextlib.contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        try:
            if not self._prepared:
                self._prepare()
            con = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            try:
                yield con
            finally:
                con.close()
        except (sqlite3.Error, OSError) as error:
            self._prepared = False  # a file deleted or replaced meanwhile is prepared again
            raise SessionStoreError(
                f"browser sessions cannot be kept in {self.path}: {error}"
            ) from error

    def _hashed(self, token: str) -> str:
        return hmac.new(self._key, token.encode("utf-8", "surrogatepass"), "sha256").hexdigest()

    def create(self, scopes: frozenset[Scope], key: str | None = None) -> UiSession:
        """A new session with ``scopes``, for the API key ``key`` signed in with (kept as its
        keyed hash): a key holds at most ``MAX_SESSIONS_PER_KEY``, the store ``MAX_SESSIONS``,
        the oldest making room."""
        now = self._clock()
        session = UiSession(
            secrets.token_urlsafe(32), secrets.token_urlsafe(32), scopes, now + self.seconds
        )
        names = ",".join(sorted(scope.value for scope in scopes))
        key_hash = None if key is None else self._hashed("key:" + key)
        with self._connection() as con:
            con.execute("BEGIN IMMEDIATE")
            con.execute("DELETE FROM ui_sessions WHERE expires_at <= ?", (now,))
            if key_hash is not None:  # this key's oldest first, so that it evicts only its own
                con.execute(
                    "DELETE FROM ui_sessions WHERE token_hash IN (SELECT token_hash FROM "
                    "ui_sessions WHERE key_hash = ? ORDER BY expires_at LIMIT max(0, (SELECT "
                    "count(*) FROM ui_sessions WHERE key_hash = ?) - ?))",
                    (key_hash, key_hash, MAX_SESSIONS_PER_KEY - 1),
                )
            # at most MAX_SESSIONS: the ones that end soonest (the oldest) make room
            con.execute(
                "DELETE FROM ui_sessions WHERE token_hash IN (SELECT token_hash FROM ui_sessions "
                "ORDER BY expires_at LIMIT max(0, (SELECT count(*) FROM ui_sessions) - ?))",
                (MAX_SESSIONS - 1,),
            )
            con.execute(
                "INSERT INTO ui_sessions (token_hash, csrf, scopes, expires_at, key_hash) "
                "VALUES (?, ?, ?, ?, ?)",
                (self._hashed(session.token), session.csrf, names, session.expires_at, key_hash),
            )
            con.execute("COMMIT")
        return session

    def get(self, token: str | None) -> UiSession | None:
        """The session of ``token``; None when there is none, it has expired, or it was made
        under another key configuration (its hash is then another)."""
        if not token:
            return None
        with self._connection() as con:
            row = con.execute(
                "SELECT csrf, scopes, expires_at FROM ui_sessions WHERE token_hash = ?",
                (self._hashed(token),),
            ).fetchone()
        if row is None or row[2] <= self._clock():
            return None
        scopes = frozenset(Scope(name) for name in row[1].split(",") if name in _SCOPE_NAMES)
        return UiSession(token, row[0], scopes, row[2])

    def end(self, token: str | None) -> None:
        if not token:
            return
        with self._connection() as con:
            con.execute("DELETE FROM ui_sessions WHERE token_hash = ?", (self._hashed(token),))


_SCOPE_NAMES = frozenset(scope.value for scope in Scope)


def tokens_match(expected: str | None, given: str | None) -> bool:
    """Constant-time comparison of two CSRF tokens; a missing one never matches."""
    return bool(expected) and bool(given) and hmac.compare_digest(str(expected), str(given))


def set_cookie(response: Response, request: Request, name: str, value: str, seconds: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=seconds,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def clear_cookie(response: Response, request: Request, name: str) -> None:
    response.delete_cookie(
        name,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


class SignInRequiredError(Exception):
    """Raised by page dependencies without a session; answered with a redirect to sign in."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


def under_ui(path: str) -> bool:
    """Whether ``path`` is an address of the explorer (``/ui`` or below it, not ``/uinope``)."""
    return path == "/ui" or path.startswith("/ui/")


def safe_next(path: str | None) -> str:
    """Where to go after signing in: a page of this UI, never another site nor another path of
    this one. ``/ui/../../etc`` (dot segments, also percent-encoded, which browsers resolve)
    led to ``/etc``, and ``/uinope`` passed the prefix test (a hostile-client probe)."""
    if not path or path.startswith("//") or "\\" in path:
        return "/ui"
    parts = urlsplit(path)
    if parts.scheme or parts.netloc or not under_ui(parts.path):
        return "/ui"
    if any(segment in (".", "..") for segment in unquote(parts.path).split("/")):
        return "/ui"
    return path


async def current_session(request: Request) -> UiSession:
    sessions: UiSessions = request.app.state.ui.sessions
    try:
        session = await run_in_threadpool(sessions.get, request.cookies.get(SESSION_COOKIE))
    except SessionStoreError as error:  # logged; signing in then says it is unavailable
        logger.warning("%s", error)
        session = None
    if session is None or Scope.read not in session.scopes:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise SignInRequiredError(target)
    return session


SessionDep = Annotated[UiSession, Depends(current_session)]
