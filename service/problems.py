"""RFC 9457 problem documents: the one shape of every error the service returns.

``ProblemError`` is raised anywhere a request cannot be answered; the handlers installed by
``install_problem_handlers`` turn it, FastAPI's validation errors, Starlette's HTTP errors and any
unexpected exception into ``application/problem+json``. A stack trace never reaches a client.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl
from uuid import uuid4

import duckdb
from asgi_correlation_id import correlation_id
from fastapi import FastAPI, Request
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field
from pydantic_core import PydanticSerializationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.routing import Match

from feature_store.schema import BILLING_TYPES

PROBLEM_MEDIA_TYPE = "application/problem+json"
TYPE_PREFIX = "urn:customer-segments:problem:"

logger = logging.getLogger("service")
# A problem document lists at most this many field errors and counts the rest, so a body of a
# million bad items cannot make a response of a hundred megabytes.
MAX_LISTED_ERRORS = 20
# Tags of the tagged unions in the request schemas, which pydantic puts into error locations.
_UNION_TAGS = frozenset(BILLING_TYPES)


class FieldError(BaseModel):
    field: str = Field(description="Where the problem is, e.g. `features.mrr` or `items[3].top_k`.")
    message: str = Field(description="What is wrong with it, for a person.")


class Problem(BaseModel):
    """An RFC 9457 problem document with a stable machine-readable ``code``."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(
        description="URI naming the kind of problem: urn:customer-segments:problem:<code>."
    )
    title: str = Field(description="Short summary of the kind of problem.")
    status: int = Field(ge=400, le=599, description="The HTTP status code.")
    detail: str = Field(description="What went wrong with this request.")
    code: str = Field(description="Stable, machine-readable code (validation_error, ...).")
    errors: list[FieldError] | None = Field(
        default=None,
        description=f"For validation errors: the offending fields, at most {MAX_LISTED_ERRORS}.",
    )
    errors_omitted: int | None = Field(
        default=None, ge=1, description="How many more field errors there were than listed."
    )


class ProblemError(Exception):
    """Raise to answer with a problem document."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        errors: Sequence[FieldError] | None = None,
        headers: Mapping[str, str] | None = None,
        errors_omitted: int = 0,
        extensions: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail = status, code, detail
        self.errors = list(errors[:MAX_LISTED_ERRORS]) if errors is not None else None
        self.errors_omitted = errors_omitted + max(0, len(errors or ()) - MAX_LISTED_ERRORS)
        self.headers = dict(headers or {})
        # RFC 9457 extension members: what a client acts on, as data rather than in ``detail``
        self.extensions = dict(extensions or {})

    def problem(self) -> Problem:
        return Problem(
            type=TYPE_PREFIX + self.code,
            title=HTTPStatus(self.status).phrase,
            status=self.status,
            detail=self.detail,
            code=self.code,
            errors=self.errors,
            errors_omitted=self.errors_omitted or None,
            **self.extensions,
        )


# Fields a 422's detail names; the rest are in ``errors`` (and ``errors_omitted``).
SUMMARISED_ERRORS = 3


def errors_summary(errors: Sequence[FieldError], omitted: int = 0) -> str:
    """A 422's detail when nothing more specific is said: its first three fields and messages,
    and how many more there are (a vector missing 24 features read as missing 3)."""
    shown = "; ".join(f"{e.field}: {e.message}" for e in errors[:SUMMARISED_ERRORS])
    more = max(0, len(errors) - SUMMARISED_ERRORS) + omitted
    return f"{shown}; and {more} more" if shown and more else shown


def invalid(
    errors: Sequence[FieldError], detail: str | None = None, omitted: int = 0
) -> ProblemError:
    """A 422 ``validation_error`` listing the offending fields (the first ones, and a count)."""
    summary = detail or errors_summary(errors, omitted)
    return ProblemError(
        422, "validation_error", summary or "the request is invalid", errors, errors_omitted=omitted
    )


def too_many(field: str, limit: int, got: int, what: str, setting: str) -> ProblemError:
    """A 422 for a list longer than a documented limit, found before any item is validated."""
    message = f"at most {limit} {what} ({setting}), got {got}"
    return invalid([FieldError(field=field, message=message)])


def field_path(loc: Iterable[Any]) -> str:
    """``("body", "items", 3, "top_k")`` -> ``items[3].top_k``."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path or "body"


# What pydantic adds to a location for each member of a union it tried ("constrained-float",
# "literal['']", "function-before[...]"): a CRM read `events.billing[0].seats.literal['']`.
_UNION_MEMBER = re.compile(r"(function-|constrained-|literal\[).*")


def pydantic_errors(errors: Iterable[Mapping[str, Any]], prefix: str = "") -> list[FieldError]:
    """FastAPI / pydantic error dicts as ``FieldError``s; the raw input is never echoed."""
    out = []
    for error in one_per_union(errors):
        loc = _location(error)
        path = field_path([*([prefix] if prefix else []), *loc])
        message = str(error.get("msg", "invalid value"))
        if error.get("type") == "value_error":  # our own validators: their message as written
            message = str(error.get("ctx", {}).get("error", message))
        if error.get("type") == "json_invalid":
            path, message = "body", f"not valid JSON: {error.get('ctx', {}).get('error', '')}"
        if error.get("type") in _TAG_ERRORS:
            # the union's tag is the event's `type`: named as the field, with ingestion's reason
            # (the message quoted the text after its reading, which the client never sent)
            path = field_path([*([prefix] if prefix else []), *loc, "type"])
            message = _TAG_ERRORS[str(error["type"])]
        out.append(FieldError(field=path, message=message))
    return out


def one_per_union(errors: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The errors with one per field whose union's members each refused it: the first that says
    more than "Input should be ''" (the empty text a cancellation's fields may be), or, when every
    member is a set of values, one naming them all ("Input should be 'month' or 'year' or ''").
    A cancellation's bad interval read as two errors on one field, and eight bad cancellations as
    "and 54 more" (a review). In the order the fields first appear."""
    out: list[Mapping[str, Any]] = []
    chosen: dict[tuple[Any, ...], int] = {}  # field -> its place in ``out``
    expected: dict[tuple[Any, ...], list[str]] = {}
    for error in errors:
        if not _from_union_member(error):
            out.append(error)
            continue
        loc = _location(error)
        literal = error.get("type") == "literal_error"
        if loc not in chosen:
            chosen[loc] = len(out)
            out.append(error)
        elif not literal and out[chosen[loc]].get("type") == "literal_error":
            out[chosen[loc]] = error
        if literal:
            expected.setdefault(loc, []).append(str(error.get("ctx", {}).get("expected", "")))
    for loc, place in chosen.items():
        if out[place].get("type") == "literal_error" and len(expected[loc]) > 1:
            out[place] = {**out[place], "msg": f"Input should be {' or '.join(expected[loc])}"}
    return out


def _from_union_member(error: Mapping[str, Any]) -> bool:
    return any(
        isinstance(part, str) and _UNION_MEMBER.fullmatch(part) for part in error.get("loc", ())
    )


_TAG_ERRORS = {
    "union_tag_invalid": f"type is not one of {', '.join(BILLING_TYPES)} (unknown_type)",
    "union_tag_not_found": "type is missing (missing_type)",
}


def _location(error: Mapping[str, Any]) -> tuple[Any, ...]:
    # FastAPI starts locations with "body"; a tagged union adds the tag, a union each member.
    # An unknown field's own name is kept, whatever it looks like ("literal[x" was dropped).
    loc = tuple(error.get("loc", ()))
    named = loc[-1:] if error.get("type") == "extra_forbidden" else ()
    return (
        tuple(
            part
            for part in loc[: len(loc) - len(named)]
            if part != "body"
            and part not in _UNION_TAGS
            and not (isinstance(part, str) and _UNION_MEMBER.fullmatch(part))
        )
        + named
    )


def problem_response(error: ProblemError) -> Response:
    problem = error.problem()
    try:
        body = problem.model_dump_json(exclude_none=True).encode()
    except (PydanticSerializationError, UnicodeEncodeError):
        # A message quoting client text that holds a lone surrogate (a cursor's decoded JSON):
        # no UTF-8 holds it, so it is written as JSON's escape, as ``ensure_ascii`` does (this
        # was a 500 in place of the 4xx it describes).
        body = json.dumps(problem.model_dump(exclude_none=True)).encode()
    return Response(body, error.status, error.headers, media_type=PROBLEM_MEDIA_TYPE)


async def _problem_handler(request: Request, error: Exception) -> Response:
    assert isinstance(error, ProblemError)
    return problem_response(error)


def no_repeated_query_parameter(request: Request) -> None:
    """Every route's dependency: a query parameter given twice is refused (422 naming it), not
    read as the last one (``?limit=5&limit=1000`` listed 1,000; a proxy or a cache in front may
    read the first). On the API (``/v1/``), so is one the route does not take, as an unknown
    body field is: ``?limti=5`` listed the default 100 unseen (a CRM walkthrough, 2026-12-06).
    The browser's pages take any: a shared link may carry a campaign's parameters; so do the
    webhooks, whose endpoint address the sender is given whole (``?source=live`` to tell
    environments apart: a signed Stripe delivery was refused, and retried for days)."""
    seen: set[str] = set()
    route = request.scope.get("route")
    taken = (
        _query_names(route.dependant)
        if isinstance(route, APIRoute)
        and request.url.path.startswith("/v1/")
        and not request.url.path.startswith(WEBHOOKS_PREFIX)
        else None
    )
    for name, _ in parse_qsl(request.url.query, keep_blank_values=True):
        if name in seen:
            raise RequestValidationError(
                [
                    {
                        "loc": ("query", name),
                        "msg": "given more than once: send it once",
                        "type": "repeated",
                    }
                ]
            )
        if taken is not None and name not in taken:
            takes = ", ".join(sorted(taken)) or "none"
            raise RequestValidationError(
                [
                    {
                        "loc": ("query", name),
                        "msg": f"not a parameter of this route (it takes: {takes})",
                        "type": "unknown",
                    }
                ]
            )
        seen.add(name)


WEBHOOKS_PREFIX = "/v1/webhooks/"


def _query_names(dependant: Dependant) -> set[str]:
    """The query parameters a route takes: its own and its dependencies'."""
    names = {param.alias for param in dependant.query_params}
    for dependency in dependant.dependencies:
        names |= _query_names(dependency)
    return names


def validation_problem(errors: Sequence[Mapping[str, Any]], prefix: str = "") -> ProblemError:
    """A 422 from pydantic's errors; only the listed ones are converted."""
    merged = one_per_union(errors)
    listed = pydantic_errors(merged[:MAX_LISTED_ERRORS], prefix)
    return invalid(listed, omitted=max(0, len(merged) - MAX_LISTED_ERRORS))


async def validation_handler(request: Request, error: Exception) -> Response:
    assert isinstance(error, RequestValidationError)
    return problem_response(validation_problem(error.errors()))


_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "payload_too_large",
    415: "unsupported_media_type",
    431: "request_header_fields_too_large",
}


def slash_redirect(request: Request, error: StarletteHTTPException) -> Response | None:
    """``/v1/segments/`` for ``/v1/segments``: a redirect to the address without the slash, by
    path alone. Starlette's own (turned off in ``create_app``) wrote the request's ``Host`` into
    an absolute ``Location``, so ``Host: evil.example`` was sent to evil.example, no key needed
    (a cache in front would keep that)."""
    path = request.url.path
    if error.status_code != 404 or path == "/" or not path.endswith("/"):
        return None
    # "//evil.example/" would be a scheme-relative address: only one leading slash is kept
    target = "/" + path.strip("/")
    query = f"?{request.url.query}" if request.url.query else ""
    return RedirectResponse(target + query, status_code=307)


# What FastAPI's HTTPException says of a JSON body whose bytes do not decode.
_FASTAPI_UNREADABLE_BODY = "There was an error parsing the body"


async def http_handler(request: Request, error: Exception) -> Response:
    assert isinstance(error, StarletteHTTPException)
    redirect = slash_redirect(request, error)
    if redirect is not None:
        return redirect
    code = _HTTP_CODES.get(error.status_code, "http_error")
    detail = error.detail if isinstance(error.detail, str) else HTTPStatus(error.status_code).phrase
    if error.status_code == 404:
        detail = f"no route {request.url.path}; see /docs for the API"
    if error.status_code == 400 and detail == _FASTAPI_UNREADABLE_BODY:
        # FastAPI's words when the bytes do not decode (JSON's syntax errors are 422s): say so
        detail = "the body is not UTF-8 text, which JSON must be (RFC 8259)"
    headers = error.headers
    allowed = allowed_methods(request) if error.status_code == 405 else []
    if allowed:  # none found (a mount's own 405): its header stays
        headers = {**(error.headers or {}), "Allow": ", ".join(allowed)}
        # the header says it to a client; the detail says it to whoever reads the problem
        detail = f"{request.method} is not taken by {request.url.path}: send {' or '.join(allowed)}"
    return problem_response(ProblemError(error.status_code, code, detail, headers=headers))


def allowed_methods(request: Request) -> list[str]:
    """Every method some route takes at the request's path. Starlette's 405 names those of the
    first route whose path matches, and FastAPI makes a route per method: ``PUT
    /v1/discoveries`` said ``Allow: POST``, leaving out GET (RFC 9110, 15.5.6, asks for all)."""
    methods = {
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] == Match.FULL
            for route in request.app.router.routes
        )
    }
    if "GET" in methods:
        methods.add("HEAD")  # answered as GET by ``service.middleware``
    return sorted(methods)


_METHODS = ("DELETE", "GET", "PATCH", "POST", "PUT")


async def _unexpected_handler(request: Request, error: Exception) -> Response:
    request_id = correlation_id.get()
    logger.exception(
        "unexpected error on %s %s (request %s)", request.method, request.url.path, request_id
    )
    said = f" with request id {request_id}" if request_id else ""
    # Starlette answers a 500 outside every middleware, so the id's middleware adds no header to
    # it: the handler does
    headers = {REQUEST_ID_HEADER: request_id} if request_id else None
    return problem_response(
        ProblemError(
            500,
            "internal_error",
            f"an unexpected error occurred; it has been logged{said}",
            headers=headers,
        )
    )


# What a failed write says when the data home cannot be written: no space, no permission, a
# read-only mount. Such a request cannot succeed until the operator acts, so it is a 503 naming
# the cause, not a 500 with a traceback (a read-only or full volume made POST /v1/events, the
# discovery routes and the first member listing 500s: an operator's review).
_STORAGE_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT}
# sqlite3 and DuckDB say the same in words (their errors carry no errno)
_STORAGE_WORDS = {
    "no space left": "No space left on device",
    "disk is full": "No space left on device",
    "database or disk is full": "No space left on device",
    "read-only file system": "Read-only file system",
    "readonly database": "Read-only file system or database",
    "permission denied": "Permission denied",
    "unable to open database file": "Permission denied or missing folder",
    "disk i/o error": "Input/output error",
}
STORAGE_RETRY_SECONDS = 60
STORE_BUSY_DETAIL = "a store of the service is held by another process; send the request again"


def storage_reason(error: BaseException) -> str | None:
    """Why the data home could not be written, in the system's words, when ``error`` says so
    (an ``OSError`` of no space, no permission or a read-only mount; sqlite3's and DuckDB's
    errors of the same); None for any other error. Never a path: the reason alone."""
    if isinstance(error, OSError) and error.errno in _STORAGE_ERRNOS:
        return os.strerror(error.errno)
    if isinstance(
        error, sqlite3.OperationalError | duckdb.IOException | duckdb.PermissionException
    ):
        text = str(error).lower()
        return next((reason for words, reason in _STORAGE_WORDS.items() if words in text), None)
    return None


async def _storage_handler(request: Request, error: Exception) -> Response:
    reason = storage_reason(error)
    if isinstance(error, sqlite3.OperationalError) and "database is locked" in str(error):
        # held by another process past the wait (a shell left open on a store): it passes
        logger.warning("store busy on %s %s: %s", request.method, request.url.path, error)
        return problem_response(
            ProblemError(
                503,
                "store_busy",
                STORE_BUSY_DETAIL,
                headers={"Retry-After": "5"},
            )
        )
    if reason is None:
        return await _unexpected_handler(request, error)
    request_id = correlation_id.get()
    # one line, with the file: the operator's cue (handled here, the error is not raised on to
    # the server, which logged its traceback a second time)
    logger.error(
        "storage error on %s %s (request %s): %s: %s",
        request.method,
        request.url.path,
        request_id,
        type(error).__name__,
        error,
    )
    headers = {"Retry-After": str(STORAGE_RETRY_SECONDS)}
    if request_id:
        headers[REQUEST_ID_HEADER] = request_id
    return problem_response(
        ProblemError(
            503,
            "storage_unavailable",
            f"the service cannot use its data ({reason}); its operator must free space or "
            "give it write access (the service's log says where)",
            headers=headers,
        )
    )


REQUEST_ID_HEADER = "X-Request-ID"
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:/+=-]{1,128}")


def request_id_or_new(value: str) -> str:
    """A client's own request id is kept when it is a short token (a UUID, a trace id, a CRM's
    job id), not any text: it is echoed in a header and written to the log. Anything else gets a
    new random id, as a request without one does."""
    return value if _REQUEST_ID.fullmatch(value) else uuid4().hex


# nginx's code for a request its client closed: nobody reads the answer, and the metrics count
# it apart from the server's own failures.
CLIENT_CLOSED_REQUEST = 499


async def _client_disconnect_handler(request: Request, error: Exception) -> Response:
    # The client went away while its body was being read: not the server's error, nothing to log
    # as one (it was an "unexpected error" with a traceback, counted as a 500).
    logger.info("client disconnected during %s %s", request.method, request.url.path)
    return Response(status_code=CLIENT_CLOSED_REQUEST)


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ClientDisconnect, _client_disconnect_handler)
    app.add_exception_handler(ProblemError, _problem_handler)
    app.add_exception_handler(RequestValidationError, validation_handler)
    app.add_exception_handler(StarletteHTTPException, http_handler)
    for storage_error in (
        OSError,
        sqlite3.OperationalError,
        duckdb.IOException,
        duckdb.PermissionException,
    ):
        app.add_exception_handler(storage_error, _storage_handler)
    app.add_exception_handler(Exception, _unexpected_handler)


def unknown_customer(customer_id: str) -> ProblemError:
    # The CRM integrator's walkthrough met this for a customer created a moment before: say
    # what the store holds and how to score one it lacks, so a typo and a new customer are both
    # actionable from the detail alone.
    return ProblemError(
        404,
        "unknown_customer",
        f"no feature vector for customer {customer_id!r} in the online store, which holds the "
        "customers of the last `segments features` run and those whose events were posted "
        "since (within seconds of `POST /v1/events`); to score a customer it lacks, send "
        "its `features` or `events` in the request",
    )


def problem_example(status: int, code: str, detail: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": TYPE_PREFIX + code,
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "code": code,
        **extra,
    }


_EXAMPLES: dict[int, dict[str, Any]] = {
    400: problem_example(
        400, "bad_request", "the body is not UTF-8 text, which JSON must be (RFC 8259)"
    ),
    401: problem_example(
        401, "unauthorized", "missing or unknown API key (X-API-Key, or Authorization: Bearer)"
    ),
    403: problem_example(403, "forbidden", "this API key lacks the 'score' scope"),
    404: problem_example(404, "unknown_customer", unknown_customer("cus_404").detail),
    413: problem_example(413, "payload_too_large", "the request body exceeds 4194304 bytes"),
    415: problem_example(
        415,
        "unsupported_media_type",
        "send the body as JSON, with Content-Type: application/json (got 'text/plain')",
    ),
    409: problem_example(
        409, "stale_cursor", "cursor belongs to model version 2, now 3 is served; start again"
    ),
    422: problem_example(
        422,
        "validation_error",
        "features.mrr: Input should be a finite number",
        errors=[{"field": "features.mrr", "message": "Input should be a finite number"}],
    ),
    429: problem_example(
        429,
        "discovery_queue_full",
        "10 discoveries are already waiting (at most 10); send this one when one of them has "
        "run, or cancel one",
    ),
    503: problem_example(
        503,
        "model_unavailable",
        "no model is loaded yet: no champion is registered yet; train one with `segments train`",
    ),
}


# The problems of a body, as every JSON route answers them (``service.bodies``).
NOT_UTF8 = (400, "bad_request", "the body is not UTF-8 text, which JSON must be (RFC 8259)")
TOO_LARGE = (413, "payload_too_large", "the request body exceeds 4194304 bytes")
BODY_PROBLEMS: tuple[tuple[int, str, str], ...] = (NOT_UTF8, TOO_LARGE)


# The 503s of any route that reads or writes the data home (``_storage_handler``).
STORAGE_PROBLEMS: tuple[tuple[int, str, str], ...] = (
    (
        503,
        "storage_unavailable",
        "the service cannot use its data (No space left on device); its operator must free "
        "space or give it write access (the service's log says where)",
    ),
    (503, "store_busy", STORE_BUSY_DETAIL),
)


def problem_responses(
    *entries: int | tuple[int, str, str], storage: bool = False
) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for error statuses: a status alone takes the usual example,
    a (status, code, detail) triple its own. Several triples of one status (two reasons for a 503)
    become that status's named ``examples``, one per code, so a client sees every code it may get.
    429 and 503 declare their ``Retry-After``. ``storage``: the route reads or writes the data
    home, so it may answer ``STORAGE_PROBLEMS`` too (those a triple names already are kept)."""
    if storage:
        named = {
            _EXAMPLES[503]["code"] if entry == 503 else entry[1]
            for entry in entries
            if entry == 503 or (isinstance(entry, tuple) and entry[0] == 503)
        }
        entries = (*entries, *(problem for problem in STORAGE_PROBLEMS if problem[1] not in named))
    by_status: dict[int, list[dict[str, Any]]] = {}
    for entry in entries:
        if isinstance(entry, int):
            by_status.setdefault(entry, []).append(_EXAMPLES[entry])
        else:
            by_status.setdefault(entry[0], []).append(problem_example(*entry))
    out: dict[int | str, dict[str, Any]] = {}
    for status, found in by_status.items():
        content: dict[str, Any] = {"schema": {"$ref": "#/components/schemas/Problem"}}
        if len(found) == 1:
            content["example"] = found[0]
        else:
            codes = [example["code"] for example in found]
            if len(set(codes)) != len(codes):  # keyed by code: a second one would be lost
                raise ValueError(f"status {status} lists a problem code twice: {codes}")
            content["examples"] = {
                code: {"summary": code.replace("_", " "), "value": example}
                for code, example in zip(codes, found, strict=True)
            }
        response: dict[str, Any] = {
            "description": HTTPStatus(status).phrase,
            "content": {PROBLEM_MEDIA_TYPE: content},
        }
        if status in (429, 503):
            response["headers"] = {"Retry-After": RETRY_AFTER_HEADER}
        out[status] = response
    return out


RETRY_AFTER_HEADER = {
    "description": "Seconds to wait before sending the request again.",
    "schema": {"type": "integer", "minimum": 0},
}
