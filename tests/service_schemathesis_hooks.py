"""A schemathesis check of our own, loaded with ``SCHEMATHESIS_HOOKS``: every error the service
sends is an RFC 9457 problem document, and no response ever carries a stack trace."""

from __future__ import annotations

import json

import schemathesis

PROBLEM_KEYS = {"type", "title", "status", "detail", "code"}


@schemathesis.check
def errors_are_problem_documents(ctx, response, case) -> None:
    if b"Traceback" in response.content:
        raise AssertionError("a stack trace in the response")
    if response.status_code < 400:
        return
    content_type = response.headers.get("content-type", [""])[0]
    if content_type != "application/problem+json":
        raise AssertionError(f"an error answered as {content_type!r}, not a problem document")
    body = json.loads(response.content)
    missing = PROBLEM_KEYS - set(body)
    if missing:
        raise AssertionError(f"a problem document without {sorted(missing)}")
    if body["status"] != response.status_code:
        raise AssertionError(f"status {body['status']} in a {response.status_code} response")
