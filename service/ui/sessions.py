"""Browser sign-in: an API key with the ``read`` scope is exchanged for a server-side session.

The browser never keeps the key: it gets a random session token in an HttpOnly, SameSite=Strict
cookie scoped to ``/ui``, and the key is forgotten once checked. Forms are CSRF-safe twice over:
SameSite=Strict keeps the cookie off cross-site requests, and every form that changes state carries
a token: the sign-in form a double-submit token (a cookie and a hidden field that must match,
since there is no session yet), signed-in forms the session's own synchronizer token.

Sessions live in this process's memory (``UiSessions``), so a restart signs everyone out and
several workers do not share them (``docs/ui.md``).
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.responses import Response

from service.settings import Scope

SESSION_COOKIE = "segments_ui_session"
CSRF_COOKIE = "segments_ui_csrf"
COOKIE_PATH = "/ui"
SESSION_SECONDS = 8 * 3600
SIGN_IN_FORM_SECONDS = 3600
MAX_SESSIONS = 10_000


@dataclass(frozen=True)
class UiSession:
    token: str
    csrf: str
    scopes: frozenset[Scope]
    expires_at: float


class UiSessions:
    """Session token -> session, with expiry; the tokens are 256-bit random strings."""

    def __init__(
        self, seconds: float = SESSION_SECONDS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.seconds = seconds
        self._clock = clock
        self._sessions: dict[str, UiSession] = {}
        self._lock = threading.Lock()

    def _now(self) -> float:
        return self._clock()

    def create(self, scopes: frozenset[Scope]) -> UiSession:
        session = UiSession(
            secrets.token_urlsafe(32), secrets.token_urlsafe(32), scopes, self._now() + self.seconds
        )
        with self._lock:
            self._prune()
            self._sessions[session.token] = session
        return session

    def get(self, token: str | None) -> UiSession | None:
        session = self._sessions.get(token) if token else None
        if session is None or session.expires_at <= self._now():
            return None
        return session

    def end(self, token: str | None) -> None:
        with self._lock:
            self._sessions.pop(token or "", None)

    def _prune(self) -> None:
        now = self._now()
        for token in [t for t, s in self._sessions.items() if s.expires_at <= now]:
            del self._sessions[token]
        while len(self._sessions) >= MAX_SESSIONS:  # oldest first: dicts keep insertion order
            del self._sessions[next(iter(self._sessions))]


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


def safe_next(path: str | None) -> str:
    """Where to go after signing in: a page of this UI, never another site."""
    if not path or not path.startswith("/ui") or path.startswith("//") or "\\" in path:
        return "/ui"
    return path


async def current_session(request: Request) -> UiSession:
    sessions: UiSessions = request.app.state.ui.sessions
    session = sessions.get(request.cookies.get(SESSION_COOKIE))
    if session is None or Scope.read not in session.scopes:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise SignInRequiredError(target)
    return session


SessionDep = Annotated[UiSession, Depends(current_session)]
