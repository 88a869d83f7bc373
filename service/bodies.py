"""Bounds on a request body, checked on the parsed JSON before pydantic validates anything.

Validating costs time per item and an error per bad item: a 2 MB body of a million wrong-typed
items once held the event loop for 20 s and built a 100 MB answer. So the counts a request may
carry (batch items, events, distinct ``as_of`` values) are checked first, on plain lists, and a
body over a limit is refused at once with a 422 naming the limit. A route declares the bound of its
body with ``ScoreBodyBounds`` or ``BatchBodyBounds``; FastAPI solves dependencies before it
validates the body.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from feature_store.formats import (
    NotJsonConstantError,
    holds_unencodable_text,
    refuse_json_constant,
)
from feature_store.timeutil import InvalidAsOfError, parse_as_of
from service.problems import FieldError, ProblemError, invalid, too_many
from service.settings import Settings

STREAMS = ("billing", "usage")


@dataclass(frozen=True)
class BodyLimits:
    max_batch_items: int
    max_events: int
    max_batch_as_of: int

    @classmethod
    def from_settings(cls, settings: Settings) -> BodyLimits:
        return cls(settings.max_batch_items, settings.max_events, settings.max_batch_as_of)


def event_count(spec: object) -> int:
    """How many events a score request (or batch item) carries, without looking inside them."""
    events = spec.get("events") if isinstance(spec, dict) else None
    if not isinstance(events, dict):
        return 0
    return sum(len(rows) for s in STREAMS if isinstance(rows := events.get(s), list))


# Names a ``features`` object may carry: every registry feature (28) several times over, and any
# name beyond the model's is refused anyway. Validating 300,000 unknown names held the event loop
# for 1.9 s a request (a 4 MB body; health checks stalled), and a review then sent 385 batch items
# of 999 names (0.57 s); past this they are refused before validation, as the counts above are
# (a full batch: at most 100,000 names).
MAX_FEATURE_NAMES = 100


def feature_count(spec: object) -> int:
    features = spec.get("features") if isinstance(spec, dict) else None
    return len(features) if isinstance(features, dict) else 0


def check_score_body(data: object, limits: BodyLimits) -> None:
    events = event_count(data)
    if events > limits.max_events:
        raise too_many("events", limits.max_events, events, "events", "SEGMENTS_MAX_EVENTS")
    _check_feature_names(feature_count(data), "features")


def _check_feature_names(names: int, field: str) -> None:
    if names > MAX_FEATURE_NAMES:
        message = f"at most {MAX_FEATURE_NAMES} feature names, got {names}"
        raise invalid([FieldError(field=field, message=message)])


def check_batch_body(data: object, limits: BodyLimits) -> None:
    items = data.get("items") if isinstance(data, dict) else None
    if not isinstance(items, list):
        return  # validation says what is wrong, in one error
    if len(items) > limits.max_batch_items:
        setting = "SEGMENTS_MAX_BATCH_ITEMS"
        raise too_many("items", limits.max_batch_items, len(items), "items per batch", setting)
    specs = [item for item in items if isinstance(item, dict)]
    for position, spec in enumerate(items):
        _check_feature_names(feature_count(spec), f"items[{position}].features")
    events = sum(event_count(spec) for spec in specs)
    if events > limits.max_events:
        setting = "SEGMENTS_MAX_EVENTS"
        raise too_many("items", limits.max_events, events, "events per batch", setting)
    # Each distinct as_of instant costs one pass of the feature SQL; a missing one means "now".
    # Instants, not spellings: "2026-06-30" and "2026-07-01T00:00:00Z" are one pass, and ten
    # spellings of one instant are not ten.
    # An as_of that names no instant costs no pass: its item is refused on its own (a typo among
    # ten good dates failed the whole batch as an eleventh instant: a hostile client's review).
    instants = {_instant(spec.get("as_of")) for spec in specs if "events" in spec}
    instants.discard(_NO_INSTANT)
    if len(instants) > limits.max_batch_as_of:
        setting = "SEGMENTS_MAX_BATCH_AS_OF"
        what = "distinct as_of instants among the events items"
        raise too_many("items", limits.max_batch_as_of, len(instants), what, setting)


_NO_INSTANT = object()


def _instant(as_of: object) -> object:
    """The instant an item's ``as_of`` names (None: now), or ``_NO_INSTANT`` when it names none
    (validation refuses that item, naming the field)."""
    if as_of is None:
        return None
    if not isinstance(as_of, str):
        return _NO_INSTANT
    try:
        return parse_as_of(as_of)
    except InvalidAsOfError:
        return _NO_INSTANT


def is_json_media_type(content_type: str) -> bool:
    """``application/json`` or a ``+json`` type, in any case, with any parameters."""
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )


def _charset(content_type: str) -> str | None:
    """The ``charset`` parameter of a media type, lower case and unquoted; None without one."""
    for parameter in content_type.split(";")[1:]:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset":
            return value.strip().strip('"').lower()
    return None


async def require_json_body(request: Request) -> None:
    """A body sent as something else than JSON is a 415 naming the type to send: read as JSON
    anyway it was a 422 "Input should be a valid dictionary", which sent an integrator looking at
    the body rather than at the header (``curl -d`` sends ``application/x-www-form-urlencoded``,
    and many CRM HTTP steps ``text/plain``). A body announced empty (no framing, or a
    ``Content-Length`` of 0) is left to validation ("Field required"); a chunked one is judged
    by its type, since knowing it is empty would mean waiting for it."""
    coding = request.headers.get("content-encoding", "identity").strip().lower()
    if coding not in ("", "identity"):
        # never decoded: a gzipped body was "There was an error parsing the body", and a plain
        # one labelled gzip was read as if the label were not there
        raise _unsupported(
            f"send the body uncompressed: Content-Encoding {coding[:40]!r} is not read"
        )
    if len(request.headers.getlist("content-type")) > 1:
        raise _unsupported("send one Content-Type header: it was sent more than once")
    content_type = request.headers.get("content-type")
    if content_type is not None and is_json_media_type(content_type):
        charset = _charset(content_type)
        if charset in (None, "utf-8", "utf8"):
            return
        # RFC 8259, 8.1: JSON between systems is UTF-8; a Latin-1 body got FastAPI's bare
        # "There was an error parsing the body"
        raise _unsupported(f"send JSON in UTF-8 (RFC 8259), not charset={charset[:40]!r}")
    # decided from the framing, not by reading the body: a client announcing 1,000 bytes and
    # sending 5 waited for the body deadline (60 s) for its 415
    length = request.headers.get("content-length")
    if "transfer-encoding" not in request.headers and (length is None or length.strip("0") == ""):
        return  # no body: left to validation ("Field required")
    got = f"got {content_type[:100]!r}" if content_type else "got no Content-Type"
    raise _unsupported(f"send the body as JSON, with Content-Type: application/json ({got})")


def _unsupported(detail: str) -> ProblemError:
    return ProblemError(415, "unsupported_media_type", detail)


async def parse_json_off_loop(request: Request) -> None:
    """Parse a JSON body in a worker thread: FastAPI would parse it on the event loop (tens of ms
    for a 4 MB body). Starlette keeps the result on the request (``Request._json``, which
    ``Request.json()`` returns when set) and FastAPI takes it from there. A body that is not JSON
    is left for FastAPI, which reports where it breaks."""
    # case-insensitive, as FastAPI reads it: "Application/Json" skipped this parse (and its
    # checks) while FastAPI still parsed the body as JSON
    if not is_json_media_type(request.headers.get("content-type", "")):
        return
    body = await request.body()
    if body:
        try:
            request._json = await run_in_threadpool(_unicode_json, body)
        except _RefusedBodyError as error:
            raise invalid([FieldError(field="body", message=str(error))]) from None
        except ValueError:
            return
        except RecursionError:
            # A few kilobytes of "[[[[…" exhaust the parser's recursion; FastAPI's own parse
            # would fail the same way, as a 500.
            raise invalid([FieldError(field="body", message=NESTED_TOO_DEEPLY)]) from None


# No request the API takes nests deeper than a few levels (a batch, its events, their fields).
# Deeper bodies that the parser still read (a user_id of 600 nested lists) reached the ingestion
# process, whose hand-over (pickling) ran out of recursion: a 503 "send again" that could never
# succeed, retried for ever by a client that obeys Retry-After (a CRM integrator's review).
MAX_DEPTH = 32
NESTED_TOO_DEEPLY = (
    f"not valid for this API: arrays or objects nested more than {MAX_DEPTH} levels deep"
)
# JSON may escape half of a UTF-16 pair ("\udfff") that no Unicode text holds: a feature name or
# an event id holding one failed every write (the problem document itself, the event store) with
# a 500. Refused as a JSON Lines file's line holding one is set aside (``formats``).
LONE_SURROGATE = (
    "not valid JSON text: it escapes a lone UTF-16 surrogate (such as \\udfff), which no "
    "Unicode text holds"
)


# Python converts at most this many digits of an integer (``sys.get_int_max_str_digits``, a
# guard against quadratic conversion); a longer one failed the parse, and FastAPI's own parse
# then answered 400, which the service keeps for a body that is not UTF-8.
LONG_INTEGER = "not valid JSON: a number of more than 4,300 digits"


# RFC 8259 (4): names within an object SHOULD be unique, and parsers differ on which of two
# counts. Python's keeps the last, so {"explain": false, "explain": true} was read as true here
# while a proxy or log reading the first saw false: refused rather than guessed.
DUPLICATE_NAME = "not valid JSON for this API: the name {name!r} appears twice in one object"


class _RefusedBodyError(Exception):
    """A body refused while it is parsed; the message says why (a 422 on ``body``)."""


# The most arrays and objects a body may hold, counted as brackets and braces before parsing
# (those inside strings too: an over-count, cheap, which no request the API takes comes near;
# 10,000 events are 10,000 objects). Parsing holds the GIL even in a worker thread: 4 MB of a
# million one-element lists stalled the event loop, health checks included, for 0.9 s.
MAX_CONTAINERS = 50_000
TOO_MANY_CONTAINERS = (
    f"not valid for this API: more than {MAX_CONTAINERS:,} arrays and objects in one body"
)
# The most names any object of a request may hold: the largest object the API reads is a
# feature vector (at most ``MAX_FEATURE_NAMES``); an object of 380,000 names was a 422 built
# with one validation error per name on the event loop (2.5 s, during which even the health
# check waited), in a score, a batch item, an event or a discovery alike.
MAX_OBJECT_NAMES = 1_000
TOO_MANY_NAMES = f"not valid for this API: an object with more than {MAX_OBJECT_NAMES:,} names"


def _unique_names(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    if len(pairs) > MAX_OBJECT_NAMES:
        raise _RefusedBodyError(TOO_MANY_NAMES)
    value = dict(pairs)
    if len(value) != len(pairs):
        seen: set[str] = set()
        twice = next(n for n, _ in pairs if n in seen or seen.add(n))
        raise _RefusedBodyError(DUPLICATE_NAME.format(name=twice[:100]))
    return value


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:  # the only way JSON's integer syntax fails here: too many digits
        raise _RefusedBodyError(LONG_INTEGER) from None


def _unicode_json(body: bytes) -> Any:
    # Decoded as ``json.loads`` decodes bytes (UTF-8, -16 or -32, by the first bytes), so the
    # surrogate check reads the text the parser read: a UTF-16 body hid its escapes from a check
    # that decoded it as UTF-8.
    try:
        text = body.decode(json.detect_encoding(body))
    except UnicodeDecodeError:
        raise ValueError("not valid text in its encoding") from None
    if text.count("[") + text.count("{") > MAX_CONTAINERS:
        raise _RefusedBodyError(TOO_MANY_CONTAINERS)
    try:
        # the hook costs about 40% more parse time (3 MB batch: 28 ms against 20 ms), in the
        # worker thread, which holds the GIL while it parses (hence the bounds above)
        value = json.loads(
            text, object_pairs_hook=_unique_names, parse_constant=refuse_json_constant
        )
    except NotJsonConstantError as error:
        raise _RefusedBodyError(str(error)) from None
    except ValueError:
        # Only a body that fails is parsed again, with a hook that names an integer past the
        # limit (the hook costs a Python call per integer, so not on every body).
        json.loads(text, parse_int=_integer)
        raise
    if holds_unencodable_text(text, value):
        raise _RefusedBodyError(LONE_SURROGATE)
    if _nested_deeper_than(value, MAX_DEPTH):
        raise _RefusedBodyError(NESTED_TOO_DEEPLY)
    return value


def _nested_deeper_than(value: Any, limit: int) -> bool:
    """Whether arrays and objects in ``value`` nest more than ``limit`` levels deep; walked with
    a stack, since the value may be as deep as the parser allows."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = (
            item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        )
        for child in children:
            if isinstance(child, (dict, list)):
                if depth + 1 > limit:
                    return True
                stack.append((child, depth + 1))
    return False


async def _parsed_body(request: Request) -> Any:
    try:
        return await request.json()  # parsed already: by ``parse_json_off_loop`` or FastAPI
    except (ValueError, UnicodeDecodeError):
        return None


async def _bound_score(request: Request) -> None:
    check_score_body(await _parsed_body(request), request.app.state.body_limits)


async def _bound_batch(request: Request) -> None:
    check_batch_body(await _parsed_body(request), request.app.state.body_limits)


ScoreBodyBounds = Annotated[None, Depends(_bound_score)]
BatchBodyBounds = Annotated[None, Depends(_bound_batch)]
