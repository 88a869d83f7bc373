"""The HTTP protocol the server runs: uvicorn's h11 protocol with deadlines on reading a request.

uvicorn times out a connection that stays idle *after* a response (keep-alive), but not one that
opens and never finishes its request: a hostile-client probe held 3,000 connections open for 80 s
each by sending a request line and a header that never ended, no API key needed, and at 20,500 the
worker ran out of file descriptors (health checks and scoring failed until they were closed; the
"slowloris" attack). A review then held one open past the headers: a body announced in full and
sent a byte a second, answered 401 at once but read to its end. A reverse proxy usually bounds
these (nginx's ``client_header_timeout`` and ``client_body_timeout``); the service bounds them
itself so it does not depend on one.

A request h11 cannot parse (a NUL in a header, two ``Content-Length`` headers), or one it
would parse ambiguously (framed both by ``Transfer-Encoding`` and ``Content-Length``), is
answered with a problem document like every other refusal, where uvicorn answers plain text.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any, NoReturn

import h11
from uvicorn.protocols.http.h11_impl import DEFAULT_MAX_INCOMPLETE_EVENT_SIZE, H11Protocol

from service.problems import PROBLEM_MEDIA_TYPE, ProblemError

# Seconds from a connection's opening, or from the first byte of each later request, to the end of
# its headers. A client on a slow mobile link sends a few hundred bytes of headers in well under a
# second; Apache's ``RequestReadTimeout`` allows 20-40 s, nginx 60 s.
HEADER_TIMEOUT_SECONDS = 20.0
# Seconds from the end of the headers to the end of the body: the largest body taken (4 MiB,
# ``SEGMENTS_MAX_BODY_BYTES``) at 1 Mbit/s takes about 34 s.
BODY_TIMEOUT_SECONDS = 60.0
# Seconds a client may leave the answer unread (the transport's write buffer full) before the
# connection is dropped: as long as a body may take to arrive.
WRITE_TIMEOUT_SECONDS = 60.0
# A CR followed by anything but LF: only a CR that ends the buffer may still be followed by one.
_BARE_CR = re.compile(rb"\r[^\n]")
# Characters of h11's reason quoted in a refusal's detail (it may quote the offending line).
MAX_REASON = 200


class StrictConnection(h11.Connection):
    """h11's server side, refusing what it lets through: a request framed both by
    ``Transfer-Encoding`` and by ``Content-Length`` (RFC 9112, 6.1: the server must close the
    connection after it; h11 reads it by the chunks and keeps the connection, so the bytes past
    them read as a second request a proxy framing by length never saw: request smuggling). The
    last refusal is kept (``refusal``) for the answer to name."""

    refusal: h11.RemoteProtocolError | None = None
    method: bytes | None = None  # of the last request read (a HEAD's answer has no body)
    # How much of the unparsed headers the bare-CR check has read: each check reads only what
    # came since (less one byte, a CR that may be followed by LF), so headers trickled a byte at
    # a time cost linear time, not a rescan of the whole buffer per byte.
    _scanned: int = 0

    def next_event(self) -> Any:
        if self.their_state is h11.IDLE:
            self.method = None  # a request begins: not read yet
        try:
            event = super().next_event()
        except h11.RemoteProtocolError as error:
            self.refusal = error
            raise
        # h11 ends lines at LF and reads a bare CR as part of a line, so a request whose lines
        # end in CR alone waited for the header deadline (20 s); RFC 9112, 2.2 lets a server
        # refuse it
        if event is h11.NEED_DATA and self.their_state is h11.IDLE:
            if self._bare_cr_since_last_check():
                self._refuse("a bare CR (not followed by LF) in the request line or headers", 400)
        else:
            self._scanned = 0  # h11 consumed what it parsed: the next headers start afresh
        if isinstance(event, h11.Request):
            self.method = event.method
            if not event.http_version.startswith(b"1."):
                # h11 reads "HTTP/3.0" as a version of its own; the server speaks 1.x only (a
                # higher 1.x minor version is read as 1.1, as RFC 9112, 2.3 asks)
                version = event.http_version.decode("ascii", "replace")
                self._refuse(f"HTTP/{version} is not served; send HTTP/1.1", 505)
            names = {name.lower() for name, _ in event.headers}
            if b"transfer-encoding" in names and b"content-length" in names:
                self._refuse("both Transfer-Encoding and Content-Length", 400)
        return event

    def send(self, event: Any) -> bytes | None:
        # A response that starts before the request's body has all arrived (a 401, a 403 or a
        # 413 reads none of it) ends the connection (``HeaderDeadlineProtocol``): said in the
        # response, so that a client keeping its connections knows. Without it a CRM's next
        # request on the pooled connection was sometimes reset (3 in 400 after a 403).
        if isinstance(event, h11.Response) and self.their_state is h11.SEND_BODY:
            closes = any(
                name.lower() == b"connection" and b"close" in value.lower()
                for name, value in event.headers
            )
            if not closes:
                event = h11.Response(
                    status_code=event.status_code,
                    headers=[*event.headers, (b"connection", b"close")],
                    reason=event.reason,
                    http_version=event.http_version,
                )
        return super().send(event)

    def _bare_cr_since_last_check(self) -> bool:
        # h11 keeps the unparsed bytes in a bytearray (``ReceiveBuffer._data``, private): read in
        # place from where the last check stopped; the public ``trailing_data`` copies it whole
        buffer = getattr(getattr(self, "_receive_buffer", None), "_data", None)
        if not isinstance(buffer, bytearray):
            buffer, self._scanned = bytearray(self.trailing_data[0]), 0
        found = _BARE_CR.search(buffer, max(self._scanned - 1, 0)) is not None
        self._scanned = len(buffer)
        return found

    def _refuse(self, reason: str, status: int) -> NoReturn:
        self.refusal = h11.RemoteProtocolError(reason, error_status_hint=status)
        # as h11 does with its own refusals: it then reads nothing more of the request
        self._process_error(self.their_role)
        raise self.refusal


def _unquoted(reason: str) -> str:
    """h11's reason without the request bytes it quotes ("illegal header line:
    bytearray(b'Authorization Bearer <key>')"): a malformed header line may hold a credential,
    which the answer must not echo."""
    return _QUOTED_BYTES.sub("(the line is not quoted back)", reason)


_QUOTED_BYTES = re.compile(r"(bytearray\()?b(['\"]).*", re.DOTALL)


class _QuietLogger:
    """uvicorn's logger for one connection, with the warnings anyone can make it write, no key
    needed, moved to debug: "Invalid HTTP request received." for each malformed request (which
    the 400 problem document answers) and the two lines for each request with an ``Upgrade``
    header the server does not take. Everything else goes to uvicorn's logger as it is; nothing
    process-wide changes."""

    _DEMOTED = (
        "Invalid HTTP request received.",
        "Unsupported upgrade request.",
        "No supported WebSocket library detected.",
    )

    def __init__(self, logger: logging.Logger) -> None:
        self._logger = logger

    def warning(self, msg: object, *args: Any, **kwargs: Any) -> None:
        if isinstance(msg, str) and msg.startswith(self._DEMOTED):
            self._logger.debug(msg, *args, **kwargs)
        else:
            self._logger.warning(msg, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._logger, name)


class HeaderDeadlineProtocol(H11Protocol):
    """Closes a connection whose request line and headers are not complete within
    ``header_timeout`` seconds of its opening (or of the first byte of a request after a
    response), or whose body is not complete within ``body_timeout`` seconds of its headers.
    Sending slowly does not extend either. A connection whose response is sent before its request
    body has arrived (a refusal that does not read the body: a 401, a 413) is closed: the rest of
    the body is no use, and reading it kept the connection open for as long as the client liked.
    A client that stops reading the answers is dropped after ``write_timeout`` seconds."""

    header_timeout = HEADER_TIMEOUT_SECONDS
    body_timeout = BODY_TIMEOUT_SECONDS
    write_timeout = WRITE_TIMEOUT_SECONDS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        limit = self.config.h11_max_incomplete_event_size or DEFAULT_MAX_INCOMPLETE_EVENT_SIZE
        self.conn = self._strict = StrictConnection(h11.SERVER, limit)
        self.logger = _QuietLogger(self.logger)  # type: ignore[assignment]
        self._deadline: asyncio.TimerHandle | None = None
        self._deadline_state: object | None = None  # the h11 state it bounds
        self._write_deadline: asyncio.TimerHandle | None = None

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to a request that is not HTTP h11 can parse, as a problem document
        (``service.problems``) rather than plain text, with the reason h11 gave; 431 when the
        headers outgrew h11's buffer. The connection is closed after it, as uvicorn closes it.

        The request may already have a task answering it (its headers were fine, its chunked
        body is not): that task's sends are dropped and it reads a disconnect, or it answered
        a second time and h11's refusal logged two tracebacks a request, no key needed. When
        an answer is already under way (streaming, or complete while the body still came), a
        400 cannot follow it: the connection is dropped."""
        cycle = self.cycle if self.cycle is not None and not self.cycle.response_complete else None
        if cycle is not None:
            cycle.disconnected = True
            cycle.message_event.set()
        started = cycle is not None and cycle.response_started
        if started or self.conn.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            self.transport.abort()
            return
        refusal = self._strict.refusal
        status, code = (400, "malformed_request")
        # h11's buffer overflowing before any request was read is headers that never end; the
        # same overflow in a chunked body (a chunk-size line of 40 KB) is a malformed body
        if refusal is not None and refusal.error_status_hint == 431 and cycle is None:
            status, code = (431, "request_header_fields_too_large")
        elif refusal is not None and refusal.error_status_hint == 505:
            status, code = (505, "http_version_not_supported")
        reason = (
            _unquoted(str(refusal))[:MAX_REASON] if refusal is not None and str(refusal) else msg
        )
        detail = (
            reason
            if status == 505
            else f"malformed HTTP request: {reason.rstrip('.')}; the request was refused"
        )
        body = ProblemError(status, code, detail).problem()
        payload = body.model_dump_json(exclude_none=True).encode()
        headers = [
            *self.server_state.default_headers,  # Date (and Server, when configured)
            (b"content-type", PROBLEM_MEDIA_TYPE.encode()),
            (b"content-length", str(len(payload)).encode()),
            (b"connection", b"close"),
        ]
        events = [h11.Response(status_code=status, headers=headers, reason=body.title.encode())]
        if self._strict.method != b"HEAD":  # an answer to HEAD has no body
            events.append(h11.Data(data=payload))
        events.append(h11.EndOfMessage())
        try:
            for event in events:
                self.transport.write(self.conn.send(event))
        except h11.LocalProtocolError:
            self.transport.abort()  # a state no answer can be written in: drop the connection
            return
        self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._bound(h11.IDLE)

    def data_received(self, data: bytes) -> None:
        if self.conn.their_state is h11.IDLE:
            self._bound(h11.IDLE)  # a request begins (armed once: trickling gains nothing)
        super().data_received(data)
        self._follow()

    def on_response_complete(self) -> None:
        # Judged before the parent starts the next pipelined request, whose body may still be on
        # its way: only the request just answered decides (a re-probe found a pipelined request
        # dropped when this was judged after).
        unread = self.conn.their_state is h11.SEND_BODY
        super().on_response_complete()
        if unread and not self.transport.is_closing():
            self.transport.close()  # answered before its body arrived: nothing more to read
        elif self.conn.their_state is h11.IDLE and self.conn.trailing_data[0]:
            # part of the next request came with this one: its headers' deadline runs from now,
            # not from a byte that may never come (it ran to the keep-alive timeout, 75 s)
            self._bound(h11.IDLE)
        else:
            self._follow()  # the next pipelined request, parsed by the parent, may be mid-body

    def pause_writing(self) -> None:
        """The client stopped reading (the transport's buffer is full): it has ``write_timeout``
        seconds to read on before the connection is dropped. Pipelining large answers to a
        client that never reads held connections open indefinitely, no key needed."""
        super().pause_writing()
        if self._write_deadline is None:
            self._write_deadline = self.loop.call_later(self.write_timeout, self._stalled)

    def resume_writing(self) -> None:
        super().resume_writing()
        if self._write_deadline is not None:
            self._write_deadline.cancel()
            self._write_deadline = None

    def _stalled(self) -> None:
        self._write_deadline = None
        # abort, not close: close would wait for the buffer the client does not read to drain
        self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel()
        if self._write_deadline is not None:
            self._write_deadline.cancel()
            self._write_deadline = None
        super().connection_lost(exc)

    def _follow(self) -> None:
        """After the bytes just read: headers in, the body is bounded; body in, nothing is."""
        state = self.conn.their_state
        if state is h11.SEND_BODY:
            self._bound(h11.SEND_BODY)
        elif state is not h11.IDLE:
            self._cancel()

    def _bound(self, state: object) -> None:
        if self._deadline is not None and self._deadline_state is state:
            return
        self._cancel()
        timeout = self.header_timeout if state is h11.IDLE else self.body_timeout
        self._deadline_state = state
        self._deadline = self.loop.call_later(timeout, self._late, state)

    def _cancel(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._deadline, self._deadline_state = None, None

    def _late(self, state: object) -> None:
        self._deadline, self._deadline_state = None, None
        if self.conn.their_state is state and not self.transport.is_closing():
            self.transport.close()
