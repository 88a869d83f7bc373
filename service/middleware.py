"""Limits on the request before anything parses it: headers (431) and body (413)."""

from __future__ import annotations

from fastapi import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.problems import ProblemError, problem_response


class _TooLargeError(HTTPException):
    """Raised while the body streams in; FastAPI passes HTTP errors through to the handlers."""


class BodySizeLimitMiddleware:
    """Refuses bodies over ``max_bytes``: by Content-Length at once, else while streaming."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    def _too_large(self) -> ProblemError:
        return ProblemError(
            413, "payload_too_large", f"the request body exceeds {self.max_bytes} bytes"
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await problem_response(self._too_large())(scope, receive, send)
            return
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _TooLargeError(413, self._too_large().detail)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _TooLargeError:
            if started:
                raise
            await problem_response(self._too_large())(scope, receive, send)


class HeaderSizeLimitMiddleware:
    """Refuses requests whose path and headers together exceed ``max_bytes`` (431), before the
    API key is even looked at. The HTTP server bounds what it reads (``segments serve`` sets
    uvicorn's limit to the same number); this holds whatever server runs the app."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    def _size(self, scope: Scope) -> int:
        headers = sum(len(name) + len(value) + 4 for name, value in scope["headers"])
        return headers + len(scope.get("raw_path") or b"") + len(scope.get("query_string", b""))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self._size(scope) > self.max_bytes:
            error = ProblemError(
                431,
                "request_header_fields_too_large",
                f"the request line and headers exceed {self.max_bytes} bytes",
            )
            await problem_response(error)(scope, receive, send)
            return
        await self.app(scope, receive, send)


class HeadAsGetMiddleware:
    """Answers ``HEAD`` as ``GET`` without the body (RFC 9110, section 9.3.2: a server that
    answers GET answers HEAD). FastAPI's routes declare GET only, so a monitor's
    ``HEAD /health/live`` was a 405."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def without_body(message: Message) -> None:
            if message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        as_get = {**scope, "method": "GET"}
        try:
            await self.app(as_get, receive, without_body)
        finally:
            # What the latency metric is labelled by: the matched route, or a mount's path
            # (the docs assets), which routing writes into the scope it was given.
            for key in ("route", "root_path"):
                if key in as_get:
                    scope[key] = as_get[key]


class IngestionAdmissionMiddleware:
    """Bounds the bytes of ingestion request bodies a worker holds at once: a request to one of
    ``paths`` is answered ``503 ingestion_busy`` when the bodies the worker has received and not
    yet answered already fill ``max_bytes``, or as soon as its own would take them past it. A
    request holds what it has received of its body until it is answered; one alone always passes,
    since the body limit bounds it.

    Why: the route parses the whole body before the ingestion process's own bound on pending
    events (``IngestProcess``) can refuse it, so 360 concurrent requests of 4 MB held 1.6-2.3 GB
    per worker and slowed scoring to seconds (a CRM integrator's review). Received bytes, not
    declared ones: the Stripe webhook reads its body before it can check the signature, so a
    declared Content-Length let anyone hold the budget with connections that send nothing (a
    review of the first version).
    """

    def __init__(self, app: ASGIApp, paths: tuple[str, ...], max_bytes: int) -> None:
        self.app, self.paths, self.max_bytes = app, paths, max_bytes
        self.held = 0  # this worker's event loop alone changes it: no lock

    def _busy(self) -> ProblemError:
        return ProblemError(
            503,
            "ingestion_busy",
            f"this worker holds {self.held:,} bytes of ingestion requests not yet answered (at "
            f"most {self.max_bytes:,}); nothing of this request was stored, send again later",
            headers={"Retry-After": "1"},
        )

    def _path(self, scope: Scope) -> str:
        """The route's path: under a root path (``uvicorn --root-path``) uvicorn writes it first."""
        path, root = scope["path"], scope.get("root_path", "")
        return path[len(root) :] if root and path.startswith(root) else path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != "POST"
            or self._path(scope) not in self.paths
        ):
            await self.app(scope, receive, send)
            return
        if self.held >= self.max_bytes:
            await problem_response(self._busy())(scope, receive, send)
            return
        taken = 0

        async def counting_receive() -> Message:
            nonlocal taken
            message = await receive()
            if message["type"] == "http.request":
                size = len(message.get("body", b""))
                others = self.held - taken
                if others and self.held + size > self.max_bytes:
                    raise self._busy()  # the app answers it, as any problem
                taken += size
                self.held += size
            return message

        try:
            await self.app(scope, counting_receive, send)
        finally:
            self.held -= taken
