"""``Idempotency-Key`` (draft-ietf-httpapi-idempotency-key-header) for ``POST /v1/events``.

An entry per (client, key) lives in SQLite under the data home, with the sha256 fingerprint of the
request body, so that every worker process of the service sees the same entries:

- first use: the entry is written *in progress* before the request runs, and *done* with the
  answer (status and body) after it; a request that fails unexpectedly, or is refused whole (a
  4xx: nothing stored), removes its entry so it can be retried (corrected);
- the same key and the same body again: the first answer, replayed (``Idempotent-Replayed: true``);
- the same key and another body: ``422 idempotency_key_reused``;
- the same key while the first request is still running: ``409 idempotency_key_in_progress``.

Entries are kept ``ttl_seconds`` (24 h by default). A request in progress renews its entry while
it runs (``keep_alive``, from the route); an entry not renewed for ``stale_seconds`` belongs to a
process that died mid-request, and is dropped so the request runs again, which is safe because
ingestion drops re-sent events by ``event_id``. Only the request that claimed an entry finishes or
releases it (``Claim``): before, a request held more than a minute (behind a long write) was
claimed again by the client's retry, and the first one's failure deleted the retry's entry, or its
answer replaced the retry's.
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from service.problems import ProblemError

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
MAX_KEY_LENGTH = 255
# An sf-string (RFC 8941) is quoted; a bare token is accepted too, as most clients send one. A
# bare one holds no comma or space: "k1, k2" is what a proxy makes of the header sent twice.
_CHARACTERS = "{1," + str(MAX_KEY_LENGTH) + "}"
_KEY = re.compile(
    r'^(?:"([\x20-\x21\x23-\x5b\x5d-\x7e]' + _CHARACTERS + r')"'
    r"|([\x21\x23-\x2b\x2d-\x5b\x5d-\x7e]" + _CHARACTERS + r"))$"
)

_SCHEMA = """CREATE TABLE IF NOT EXISTS idempotency (
    client TEXT NOT NULL, key TEXT NOT NULL, fingerprint TEXT NOT NULL,
    state TEXT NOT NULL, status INTEGER, media_type TEXT, body BLOB,
    created_at REAL NOT NULL, updated_at REAL NOT NULL,
    PRIMARY KEY (client, key));
CREATE INDEX IF NOT EXISTS idempotency_created ON idempotency (created_at);
CREATE INDEX IF NOT EXISTS idempotency_stale ON idempotency (updated_at)
    WHERE state = 'in_progress';"""


@dataclass(frozen=True)
class StoredAnswer:
    """The answer given to the first request of a key."""

    status: int
    media_type: str
    body: bytes


@dataclass(frozen=True)
class Claim:
    """A key claimed by the request running now: the entry it wrote, told apart from a later
    claim of the same key by when it was written."""

    client: str
    key: str
    claimed_at: float


def fingerprint(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def client_of(api_key: str) -> str:
    """Keys are per client: two clients may pick the same key without seeing each other's answer."""
    return hashlib.sha256(api_key.encode("utf-8", "surrogatepass")).hexdigest()


def key_from_headers(headers: Mapping[str, str]) -> str | None:
    """The request's idempotency key, ``None`` without one; 400 when it is not a valid key, or
    when the header is sent more than once (which one counts would be a guess: a proxy may keep
    the last where this reads the first)."""
    every = headers.getlist(HEADER) if hasattr(headers, "getlist") else [headers.get(HEADER)]
    if len([v for v in every if v is not None]) > 1:
        raise ProblemError(
            400, "invalid_idempotency_key", f"{HEADER} sent more than once; send it once"
        )
    value = headers.get(HEADER)
    if value is None:
        return None
    match = _KEY.match(value.strip())
    if match is None:
        raise ProblemError(
            400,
            "invalid_idempotency_key",
            f"{HEADER} must be 1 to {MAX_KEY_LENGTH} printable ASCII characters, e.g. a UUID "
            "(quoted, when it holds a comma or a space), sent once",
        )
    return match.group(1) or match.group(2)


class IdempotencyStore:
    """Entries in a SQLite file; every method is a short transaction, safe across processes."""

    def __init__(
        self,
        path: Path,
        *,
        ttl_seconds: float,
        stale_seconds: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path, self.ttl, self.stale, self.clock = path, ttl_seconds, stale_seconds, clock
        self._ready = False  # the file's mode and schema, set by the first connection

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        con = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        # NORMAL: in WAL mode a commit is not synced on its own, only at checkpoints; a power cut
        # may forget the last answers, and their retries then run again, which is safe (events
        # are kept once by their ids, as for a process that died mid-request, above). A sync per
        # request was most of what a key cost.
        con.execute("PRAGMA synchronous = NORMAL")
        if not self._ready:
            con.execute("PRAGMA journal_mode = WAL")
            con.executescript(_SCHEMA)
            self._ready = True
        return con

    def begin(self, client: str, key: str, print_: str) -> StoredAnswer | Claim:
        """Claim the key for a new request, or return the answer to replay; raises the 409 or 422
        problem when the key is busy or was used for another body."""
        now = self.clock()
        con = self._connect()
        try:
            con.execute("BEGIN IMMEDIATE")
            self._forget_expired(con, now)
            row = con.execute(
                "SELECT fingerprint, state, status, media_type, body FROM idempotency "
                "WHERE client = ? AND key = ?",
                (client, key),
            ).fetchone()
            if row is None:
                con.execute(
                    "INSERT INTO idempotency VALUES (?, ?, ?, 'in_progress', NULL, NULL, NULL, ?, ?)",
                    (client, key, print_, now, now),
                )
            con.execute("COMMIT")
        finally:
            con.close()
        return Claim(client, key, now) if row is None else _existing(key, print_, *row)

    def _forget_expired(self, con: sqlite3.Connection, now: float) -> None:
        # Two statements, each on its index: one with OR, on no index, read every entry of the
        # last 24 h on every request (55 ms a request at 300,000 entries, under the write lock:
        # keyed ingestion slowed to under 20 requests a second after two hours of traffic).
        con.execute("DELETE FROM idempotency WHERE created_at < ?", (now - self.ttl,))
        con.execute(
            "DELETE FROM idempotency WHERE state = 'in_progress' AND updated_at < ?",
            (now - self.stale,),
        )

    def finish(self, claim: Claim, answer: StoredAnswer) -> None:
        """Record the answer of the claim's request (not of a later claim of the same key)."""
        self._update_claim(
            claim,
            "UPDATE idempotency SET state = 'done', status = ?, media_type = ?, body = ?, "
            "updated_at = ?",
            (answer.status, answer.media_type, answer.body, self.clock()),
        )

    def keep_alive(self, claim: Claim) -> None:
        """Renew the claim's entry, so that it is not taken for a dead process's."""
        self._update_claim(claim, "UPDATE idempotency SET updated_at = ?", (self.clock(),))

    def abandon(self, claim: Claim) -> None:
        """Forget a key whose request failed, so that the client may retry it."""
        self._update_claim(claim, "DELETE FROM idempotency", ())

    def _update_claim(self, claim: Claim, statement: str, values: tuple[object, ...]) -> None:
        con = self._connect()
        try:
            con.execute(
                f"{statement} WHERE client = ? AND key = ? AND created_at = ? "
                "AND state = 'in_progress'",
                (*values, claim.client, claim.key, claim.claimed_at),
            )
        finally:
            con.close()


def _existing(
    key: str,
    print_: str,
    stored_print: str,
    state: str,
    status: int | None,
    media_type: str | None,
    body: bytes | None,
) -> StoredAnswer:
    if stored_print != print_:
        raise ProblemError(
            422,
            "idempotency_key_reused",
            f"{HEADER} {key!r} was used for a request with another body; use a new key",
        )
    if state != "done" or status is None or body is None:
        raise ProblemError(
            409,
            "idempotency_key_in_progress",
            f"a request with {HEADER} {key!r} is still being processed; retry later",
            headers={"Retry-After": "1"},
        )
    return StoredAnswer(status, media_type or "application/json", bytes(body))
