"""Who is in each segment: every active customer of the online store, placed by the served model.

Customers whose subscription is cancelled are not members of any segment (they are reported
beside the segments, as in training: ``GET /v1/segments``' ``churned``); a listing of a segment
that counted them would also disagree with the segment's size. They keep a row, for the pages
that show one customer.

The CRM's member listing and the browser pages read one ``MemberTable`` per model version and
state of the online store: the store's vectors are placed at once (one vectorised
``SegmentModel.place``; 10,000 customers take milliseconds) and kept until the model changes or
vectors are written (the store's ``generation``: a refresh after ``POST /v1/events``, or
``segments features`` in another process). A model swap recomputes before answering, so a request
never mixes two versions; new vectors are placed in the background while the table before them
keeps answering, so a listing follows the store within seconds without making a request wait.
(Until 2026-12-06 the table was kept until the model changed: after a refresh the listing
disagreed with ``POST /v1/score`` for most customers until a restart, as a CRM's walkthrough found.)
The 2-D map of the customers is derived from the same table on first use.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import os
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated

import numpy as np
from fastapi import Depends, Request
from filelock import FileLock
from starlette.concurrency import run_in_threadpool

from models.business import CANCELED
from models.charts import MapPoints, project_2d
from models.summaries import segment_ids
from service.catalog import retired_note, retirement
from service.lifecycle import LoadedModel
from service.online import OnlineVectors
from service.problems import ProblemError
from service.schemas.catalog import ModelRefPublic
from service.schemas.members import MemberPublic, SegmentMembersPage


@dataclass(frozen=True)
class MemberTable:
    """One row per customer, ordered by ``customer_id``; ``segment`` holds model positions."""

    version: str
    customer_ids: np.ndarray  # str objects, sorted
    values: np.ndarray  # (customers, features) in the model's feature order
    segment: np.ndarray
    confidence: np.ndarray
    is_outlier: np.ndarray
    skipped: int = 0  # stored vectors that lack a model feature (an older `segments features`)
    # how typical a member each row is (``models.bundle.Placement.typicality``); None: the model
    # does not record it
    typicality: np.ndarray | None = None
    # Per row: the subscription is not cancelled. Cancelled customers keep a row (a customer page
    # shows them, said to be beside the segments) but are members of no segment and not mapped.
    active: np.ndarray | None = None
    # the online store's generation the vectors were read at (None: unknown, an older store)
    generation: int | None = None

    def __len__(self) -> int:
        return len(self.customer_ids)

    def rows_of(self, position: int) -> np.ndarray:
        """Row numbers of the segment at ``position``, in ``customer_id`` order."""
        member = self.segment == position
        return np.flatnonzero(member if self.active is None else member & self.active)

    def active_rows(self) -> np.ndarray:
        """Row numbers of the customers segmented (every row when nothing is cancelled)."""
        return np.arange(len(self)) if self.active is None else np.flatnonzero(self.active)

    def row_of(self, customer_id: str) -> int | None:
        row = int(np.searchsorted(self.customer_ids, customer_id))
        found = row < len(self.customer_ids) and self.customer_ids[row] == customer_id
        return row if found else None


def place_members(
    loaded: LoadedModel,
    stored: list[tuple[str, dict[str, float]]],
    generation: int | None = None,
) -> MemberTable:
    """Place every stored customer that has the model's features (``stored`` sorted by id, read
    at the store's ``generation``)."""
    names = loaded.feature_names
    usable = [(cid, vector) for cid, vector in stored if all(n in vector for n in names)]
    values = np.array([[vector[n] for n in names] for _, vector in usable], dtype=float)
    values = values.reshape(len(usable), len(names))
    typicality: np.ndarray | None = None
    if len(usable):
        placed = loaded.model.place(values)
        segment, confidence, outlier = placed.segment, placed.confidence, placed.is_outlier
        typicality = placed.typicality
    else:
        segment, confidence = np.zeros(0, dtype=int), np.zeros(0)
        outlier = np.zeros(0, dtype=bool)
    return MemberTable(
        version=loaded.version,
        customer_ids=np.array([cid for cid, _ in usable], dtype=object),
        values=values,
        segment=np.asarray(segment, dtype=int),
        confidence=np.asarray(confidence, dtype=float),
        is_outlier=np.asarray(outlier, dtype=bool),
        skipped=len(stored) - len(usable),
        active=np.array([vector.get(CANCELED, 0) != 1 for _, vector in usable], dtype=bool),
        typicality=None if typicality is None else np.asarray(typicality, dtype=float),
        generation=generation,
    )


# How long a listing waits for the members to be placed again after the online store changed,
# before it answers with the table before (placing 10,000 customers takes well under a second).
STALE_TABLE_WAIT_SECONDS = 3.0


class SegmentMembers:
    """The member table of the model in service and the online store's current vectors."""

    def __init__(self, online: OnlineVectors, cursor_key_path: Path) -> None:
        self._online = online
        self._cursor_key_path = cursor_key_path
        self._cursor_key: bytes | None = None
        self._lock = threading.Lock()
        self._table: MemberTable | None = None
        self._map: tuple[MemberTable, MapPoints] | None = None
        self._warming: tuple[str, int | None] | None = None
        # the model version the latest request was served by: a placing started in the
        # background for an earlier one is dropped rather than replace a newer model's table
        self._serving: str | None = None

    async def cursor_key(self) -> bytes:
        """The key member cursors are signed with (``cursor_secret``): read (made, the first
        time) off the event loop on first use, a file and a lock another worker may hold; kept
        after that."""
        if self._cursor_key is None:
            self._cursor_key = await run_in_threadpool(cursor_secret, self._cursor_key_path)
        return self._cursor_key

    def _compute(self, loaded: LoadedModel) -> MemberTable:
        with self._lock:  # two first requests must not both place 10,000 customers
            # the generation before the vectors: a write in between makes the table newer than
            # its label, which costs one more placing, never a stale table kept
            generation = self._online.generation()
            table = self._table
            if table is None or (table.version, table.generation) != (loaded.version, generation):
                table = place_members(loaded, self._online.all(), generation)
                self._table = table
            return table

    def _compute_in_background(self, loaded: LoadedModel) -> None:
        try:
            if loaded.version == self._serving:  # else a swap came since: the next request places
                self._compute(loaded)
        finally:
            self._warming = None  # a failed placing is tried again by the next request

    def _refresh(self, loaded: LoadedModel, generation: int | None) -> None:
        """Place the members in the background unless under way for this version and
        generation."""
        if self._warming == (loaded.version, generation):
            return
        self._warming = (loaded.version, generation)
        threading.Thread(target=self._compute_in_background, args=(loaded,), daemon=True).start()

    def warm(self, loaded: LoadedModel) -> None:
        """Place the members in the background unless done or under way (the Segments page calls
        it, so the segment a reader opens next need not wait)."""
        self._serving = loaded.version
        generation = self._online.generation()  # a primary-key read of one row: microseconds
        table = self._table
        if table is None or (table.version, table.generation) != (loaded.version, generation):
            self._refresh(loaded, generation)

    async def table(self, loaded: LoadedModel) -> MemberTable:
        self._serving = loaded.version
        table = self._table
        if table is None or table.version != loaded.version:
            return await run_in_threadpool(self._compute, loaded)
        generation = await run_in_threadpool(self._online.generation)
        if table.generation == generation:
            return table
        # Placed again in the background; this request waits for it a little (the first listing
        # after a refresh answered with the table before, however long ago the refresh was: a
        # CRM's sync a minute after ingesting missed its new customers, a hostile client's
        # review), then answers with the table before rather than hold a large store's listing.
        self._refresh(loaded, generation)
        deadline = time.monotonic() + STALE_TABLE_WAIT_SECONDS
        while time.monotonic() < deadline:
            await asyncio.sleep(0.02)
            newer = self._table
            if newer is not None and newer.version == loaded.version and newer is not table:
                return newer
            if self._warming is None:  # the placing ended (or failed) without a newer table
                break
        return table

    async def values_of(self, loaded: LoadedModel, customer_id: str) -> np.ndarray | None:
        """One customer's vector in the model's feature order (a 1-row matrix), or None when the
        online store has none with every model feature. From the member table when it holds the
        customer, else from the online store itself: the table follows the store within seconds,
        and a customer whose events arrived since (``POST /v1/events``) is scored by the API at
        once, so its page must not wait for the table ("No customer ... in the online store")."""
        table = await self.table(loaded)
        row = table.row_of(customer_id)
        if row is not None:
            return table.values[row : row + 1]
        vector = await run_in_threadpool(self._online.get, customer_id)
        names = loaded.feature_names
        if vector is None or not all(name in vector for name in names):
            return None
        return np.array([[vector[name] for name in names]], dtype=float)

    async def as_of_of(self, customer_id: str) -> datetime | None:
        """The instant the online store's vector of ``customer_id`` is as of; None without one."""
        entry = await run_in_threadpool(self._online.get_with_as_of, customer_id)
        return None if entry is None else entry[1]

    async def map_points(self, loaded: LoadedModel) -> MapPoints:
        """The customers projected to 2-D (first two principal components of the model's
        preprocessed matrix), computed on first use for each member table (a model version and
        state of the online store)."""
        table = await self.table(loaded)
        cached = self._map
        if cached is None or cached[0] is not table:
            cached = (table, await run_in_threadpool(_project, loaded, table))
            self._map = cached
        return cached[1]


def _project(loaded: LoadedModel, table: MemberTable) -> MapPoints:
    rows = table.active_rows()  # cancelled customers are not on the map of segments
    values = table.values[rows]
    matrix = loaded.model.segmenter.transform(values) if len(rows) else values
    return project_2d(matrix, table.segment[rows], table.customer_ids[rows].tolist())


def segment_position(loaded: LoadedModel, segment_id: int) -> int:
    """The model position of the public ``segment_id``; a 404 problem when there is none, saying
    where a retired one went (the catalog, the listing and the pages alike)."""
    ids = segment_ids(loaded.model)
    if segment_id in ids:
        return ids.index(segment_id)
    # in words and as data, so that a CRM holding the id need not read ``detail``: the segments
    # served, and where the id went when the history knows
    where = retirement(loaded.model, segment_id)
    retired = retired_note(segment_id, where)
    extensions: dict[str, object] = {"segments": sorted(ids)}
    if where is not None:
        extensions |= {"retired_in": where[0], "successors": where[1]}
    # served by a version this model's lineage does not know (rolled back past, or replaced by
    # an older one): it read as an id that never existed
    served_by = getattr(loaded, "served_by_others", {}).get(segment_id)
    if where is None and served_by is not None:
        retired = (
            f"segment {segment_id} was served by version {served_by}, which another version "
            "was promoted over; the next version trained gives the id back if its segment is "
            "the same customers again"
        )
        extensions["served_by"] = served_by
    raise ProblemError(
        404,
        "unknown_segment",
        f"{retired + '; ' if retired else ''}model version {loaded.version} has no segment "
        f"{segment_id}; its segments are {', '.join(map(str, sorted(ids)))}",
        extensions=extensions,
    )


async def members(request: Request) -> SegmentMembers:
    return request.app.state.members


MembersDep = Annotated[SegmentMembers, Depends(members)]


# A cursor carries its listing's place and a signature of it: ``payload.signature``, each
# base64url. Unsigned, a cursor made up by a client (a model version that never existed, an id the
# listing never reached) was taken as given out, and a version never served was told "stale"
# (409) where it is not one this listing gave out (400; a CRM integrator's review). The key is
# the data home's (``cursor_secret``), so every worker, and the service after a restart, reads the
# cursors the others gave out. 16 bytes of HMAC-SHA256: forging one is 2^128 guesses.
CURSOR_SIGNATURE_BYTES = 16
CURSOR_KEY_BYTES = 32
# How long a worker waits for another making the key (a write of 32 bytes and a sync).
CURSOR_KEY_LOCK_SECONDS = 10.0
# The longest cursor given out: a customer id of 255 characters, each escaped to six in JSON
# (``\u0000``) or four bytes of UTF-8, in base64, with the version and the signature. A limit of
# 1,000 refused the cursors of ids of 240 emoji that the listing itself gave out.
MAX_CURSOR_LENGTH = 4096


def cursor_secret(path: Path) -> bytes:
    """The key that signs member cursors: read from ``path``, or made there on first use,
    readable by the owner only. Under a file lock, so two workers starting at once agree on one
    key; a file shorter than a key (emptied, cut short by a crash) is replaced, since signing with
    it would let anyone forge cursors. Written to a draft created owner-only and synced, then
    moved into place: the key is never readable by others, nor half there."""
    key = _read_key(path)
    if len(key) >= CURSOR_KEY_BYTES:  # read without the lock: a read-only home serves as is
        return key
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path.with_name(f".{path.name}.lock")), timeout=CURSOR_KEY_LOCK_SECONDS):
        key = _read_key(path)
        if len(key) >= CURSOR_KEY_BYTES:  # another worker made it meanwhile
            return key
        key = secrets.token_bytes(CURSOR_KEY_BYTES)
        draft = path.with_name(f".{path.name}.{os.getpid()}.draft")
        draft.unlink(missing_ok=True)  # a crash's leftover keeps its mode: never reuse it
        try:
            descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "wb") as file:
                file.write(key)
                file.flush()
                os.fsync(file.fileno())
            os.replace(draft, path)
        finally:
            draft.unlink(missing_ok=True)
        return key


def _read_key(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return b""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    if not text or not set(text) <= _BASE64URL:
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


_BASE64URL = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def _signature(key: bytes, payload: str) -> bytes:
    return hmac.new(key, payload.encode("ascii"), hashlib.sha256).digest()[:CURSOR_SIGNATURE_BYTES]


def encode_cursor(key: bytes, version: str, segment_id: int, after: str) -> str:
    raw = json.dumps(
        {"v": version, "s": segment_id, "a": after}, separators=(",", ":"), ensure_ascii=False
    )
    payload = _b64(raw.encode("utf-8"))
    return f"{payload}.{_b64(_signature(key, payload))}"


def decode_cursor(key: bytes, cursor: str, version: str, segment_id: int) -> str:
    """The last customer id of the previous page; a problem document when the cursor is not one
    this listing gave out (400: a signature that does not match, whatever it says) or was given
    out for another model version (409)."""
    try:
        if len(cursor) > MAX_CURSOR_LENGTH:
            raise ValueError("longer than any cursor given out")
        payload, _, signature = cursor.partition(".")
        if not hmac.compare_digest(_unb64(signature), _signature(key, payload)):
            raise ValueError("not signed with this listing's key")
        data = json.loads(_unb64(payload))
        given_version, given_segment, after = data["v"], data["s"], data["a"]
        if not (
            isinstance(after, str) and type(given_segment) is int and isinstance(given_version, str)
        ):
            raise TypeError("malformed cursor")
    except (ValueError, TypeError, KeyError, UnicodeError):
        raise ProblemError(
            400, "invalid_cursor", "cursor is not one this listing gave out; start without it"
        ) from None
    if given_segment != segment_id:
        raise ProblemError(400, "invalid_cursor", "cursor belongs to another segment's listing")
    if given_version != version:
        raise ProblemError(
            409,
            "stale_cursor",
            f"cursor belongs to model version {given_version}, now {version} is served; "
            "start the listing again without a cursor",
        )
    return after


def member_page(
    loaded: LoadedModel,
    table: MemberTable,
    segment_id: int,
    limit: int,
    cursor: str | None,
    key: bytes,
) -> SegmentMembersPage:
    """One page of the segment's members in ``customer_id`` order, after ``cursor``. The cursor
    is judged first: a listing of a segment that a model swap retired midway is a 409 (start
    again), as for any other segment, not a 404."""
    after = None if cursor is None else decode_cursor(key, cursor, loaded.version, segment_id)
    position = segment_position(loaded, segment_id)
    rows = table.rows_of(position)
    ids = table.customer_ids[rows]
    start = 0 if after is None else int(np.searchsorted(ids, after, side="right"))
    chosen = rows[start : start + limit]
    more = start + limit < len(rows)
    return SegmentMembersPage(
        model=ModelRefPublic(name=loaded.ref.name, version=loaded.version),
        segment_id=segment_id,
        segment_name=loaded.model.profiles[position].name,
        total=len(rows),
        customers=[
            MemberPublic(
                customer_id=str(table.customer_ids[r]),
                confidence=float(np.clip(table.confidence[r], 0.0, 1.0)),
                is_outlier=bool(table.is_outlier[r]),
            )
            for r in chosen
        ],
        next_cursor=encode_cursor(key, loaded.version, segment_id, str(ids[start + limit - 1]))
        if more
        else None,
    )
