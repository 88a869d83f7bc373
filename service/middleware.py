"""A limit on the request body (413 ``payload_too_large``), before anything parses it."""

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
