"""The HTTP protocol the server runs: uvicorn's h11 protocol with a deadline on request headers.

uvicorn times out a connection that stays idle *after* a response (keep-alive), but not one that
opens and never finishes its headers: a hostile-client probe held 3,000 connections open for 80 s
each by sending a request line and a header that never ended, no API key needed, and at 20,500 the
worker ran out of file descriptors (health checks and scoring failed until they were closed; the
"slowloris" attack). A reverse proxy usually bounds this (nginx's ``client_header_timeout``); the
service bounds it itself so it does not depend on one.
"""

from __future__ import annotations

import asyncio
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

# Seconds from a connection's opening, or from the first byte of each later request, to the end of
# its headers. A client on a slow mobile link sends a few hundred bytes of headers in well under a
# second; Apache's ``RequestReadTimeout`` allows 20-40 s, nginx 60 s.
HEADER_TIMEOUT_SECONDS = 20.0


class HeaderDeadlineProtocol(H11Protocol):
    """Closes a connection whose request line and headers are not complete within
    ``header_timeout`` seconds of its opening (or of the first byte of a request after a
    response). Sending slowly does not extend the deadline; a request whose headers have arrived
    is not affected (its body and response take as long as they take)."""

    header_timeout = HEADER_TIMEOUT_SECONDS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_deadline()

    def data_received(self, data: bytes) -> None:
        if self.conn.their_state is h11.IDLE:
            self._arm_header_deadline()  # a request begins (armed once: trickling gains nothing)
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:  # its headers are in
            self._cancel_header_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_deadline()
        super().connection_lost(exc)

    def _arm_header_deadline(self) -> None:
        if self._header_deadline is None:
            self._header_deadline = self.loop.call_later(self.header_timeout, self._headers_late)

    def _cancel_header_deadline(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _headers_late(self) -> None:
        self._header_deadline = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.close()
