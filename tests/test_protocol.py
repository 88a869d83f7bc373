"""The server's HTTP protocol on a real uvicorn on loopback: reading a request has deadlines."""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn

from service.protocol import HeaderDeadlineProtocol

DEADLINE = 1.0


class QuickDeadlines(HeaderDeadlineProtocol):
    header_timeout = DEADLINE
    body_timeout = DEADLINE
    write_timeout = DEADLINE


async def app(scope, receive, send) -> None:
    """``/read`` reads the whole body before answering; any other path answers at once (as a
    refusal does, a 401 before the body)."""
    if scope["type"] != "http":
        return
    if scope["path"] == "/read":
        while (await receive()).get("more_body", False):
            pass
    body = BIG if scope["path"] == "/big" else b"hello"
    length = str(len(body)).encode()
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", length)]}
    )
    await send({"type": "http.response.body", "body": body})


BIG = b"x" * 2_000_000


@pytest.fixture
def port() -> Iterator[int]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    config = uvicorn.Config(
        app, host="127.0.0.1", port=free, http=QuickDeadlines, log_level="error", lifespan="off"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    yield free
    server.should_exit = True
    thread.join(10)


def trickle_until_closed(connection: socket.socket, start: bytes, seconds: float) -> float | None:
    """Send ``start``, then a byte every 0.2 s for ``seconds``; when the server closed the
    connection, the seconds it took (None: still open at the end). What the server answers is
    read and dropped."""
    began = time.monotonic()
    connection.sendall(start)
    connection.setblocking(False)
    while time.monotonic() - began < seconds:
        time.sleep(0.2)
        try:
            while connection.recv(4096) == b"":
                return time.monotonic() - began
        except BlockingIOError:
            pass
        except OSError:
            return time.monotonic() - began
        try:
            connection.sendall(b"a")
        except OSError:
            return time.monotonic() - began
    return None


def test_headers_that_never_end_are_cut_off_however_slowly_they_trickle(port):
    """A slowloris client: the request line and a header that never ends, a byte at a time
    for three times the deadline; each byte must not restart it."""
    with socket.create_connection(("127.0.0.1", port)) as connection:
        took = trickle_until_closed(connection, b"GET / HTTP/1.1\r\nHost: x\r\nX-Pad: a", 3.0)
    assert took is not None
    assert took < DEADLINE + 1.0
    with socket.create_connection(("127.0.0.1", port)) as silent:  # opens and sends nothing
        silent.settimeout(3.0)
        assert silent.recv(1024) == b""


def test_a_body_that_never_ends_is_cut_off_and_one_not_read_is_not_waited_for(port):
    """Past the headers: a body announced in full and sent a byte at a time (a review held the
    connection open for as long as it trickled, 401 answered at once)."""
    announced = b"POST /%s HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\nx"
    with socket.create_connection(("127.0.0.1", port)) as connection:
        took = trickle_until_closed(connection, announced % b"read", 3.0)
    assert took is not None
    assert took < DEADLINE + 1.0
    with socket.create_connection(("127.0.0.1", port)) as connection:  # answered unread
        took = trickle_until_closed(connection, announced % b"refuse", 3.0)
    assert took is not None
    assert took < 0.9  # at the first check after the answer, not at the deadline


def test_an_answer_sent_before_the_body_arrived_says_the_connection_closes(port):
    """Such a connection is closed once answered; without `Connection: close` a client keeping
    its connections (a CRM's pool) sent its next request on it and was sometimes reset."""
    with socket.create_connection(("127.0.0.1", port)) as connection:
        connection.settimeout(5)
        connection.sendall(b"POST /refuse HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nab")
        head = connection.recv(4096).split(b"\r\n\r\n")[0].lower()
    assert b"\r\nconnection: close" in head
    with socket.create_connection(("127.0.0.1", port)) as connection:  # read whole: kept alive
        connection.settimeout(5)
        connection.sendall(b"POST /read HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nab")
        head = connection.recv(4096).split(b"\r\n\r\n")[0].lower()
    assert b"connection: close" not in head


def test_a_request_whose_headers_arrive_in_time_is_answered_on_a_kept_alive_connection(port):
    with socket.create_connection(("127.0.0.1", port)) as connection:
        connection.settimeout(5)
        for _ in range(2):  # the second request, after a pause longer than the deadline
            connection.sendall(b"POST /read HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n")
            time.sleep(0.2)
            connection.sendall(b"\r\nab")
            time.sleep(0.2)
            connection.sendall(b"cd")
            assert connection.recv(1024).endswith(b"hello")
            time.sleep(DEADLINE * 1.5)  # idle between requests: keep-alive's to time, not ours


def test_a_pipelined_request_whose_body_is_on_its_way_is_answered(port):
    """The close of a connection answered before its body arrived must judge the request just
    answered, not the next pipelined one (a re-probe saw the second request dropped)."""
    with socket.create_connection(("127.0.0.1", port)) as connection:
        connection.settimeout(5)
        connection.sendall(
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
            b"POST /read HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nab"
        )
        time.sleep(0.3)
        connection.sendall(b"cd")
        received = b""
        while received.count(b"hello") < 2:
            chunk = connection.recv(4096)
            assert chunk, received
            received += chunk


def test_a_client_that_stops_reading_the_answers_is_dropped(port):
    """Large answers pipelined to a client that never reads held the connection open for good
    (the write buffer full, no deadline); it now has the write deadline to read on."""
    with socket.socket() as connection:
        connection.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        connection.connect(("127.0.0.1", port))
        connection.sendall(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n" * 20)
        time.sleep(DEADLINE * 2.5)  # reading nothing, past the deadline
        connection.settimeout(5)
        total = 0
        try:
            while chunk := connection.recv(65536):
                total += len(chunk)
        except ConnectionResetError:
            pass
        except TimeoutError:
            pytest.fail(f"still open after {total:,} bytes: the server waited for the reader")
        assert total < 20 * len(BIG)


def test_part_of_a_pipelined_request_sent_with_the_first_has_the_header_deadline(port):
    """The start of a second request sent with the first ran to the keep-alive timeout (uvicorn's
    default 5 s here, 75 s when served): no byte arrived after the answer to arm the deadline."""
    with socket.create_connection(("127.0.0.1", port)) as connection:
        began = time.monotonic()
        connection.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost:")
        connection.settimeout(10)
        received = b""
        while chunk := connection.recv(4096):
            received += chunk
        assert received.endswith(b"hello")
        assert time.monotonic() - began < DEADLINE + 1.5


def _answer_of(port: int, request_bytes: bytes) -> bytes:
    """Everything the server sends back to ``request_bytes`` until it closes the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as connection:
        connection.sendall(request_bytes)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    return answer


CHUNKED = b"Transfer-Encoding: chunked\r\n"


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET / HTTP/1.1\r\nHost: x\r\nX-Bad: a\x00b\r\n\r\n",
        b"POST /read HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
        # good headers and a broken chunk in one packet: the app's task for the request was
        # created, and its answer after the 400 made h11 refuse and log two tracebacks
        b"GET / HTTP/1.1\r\nHost: x\r\n" + CHUNKED + b"\r\nZZ\r\n\r\n",
        # framed both ways (request smuggling): the bytes past the chunks read as a second,
        # hidden request; now refused, and nothing after it is read
        b"POST /read HTTP/1.1\r\nHost: x\r\nContent-Length: 41\r\n"
        + CHUNKED
        + b"\r\n0\r\n\r\nGET /hidden HTTP/1.1\r\nHost: x\r\n\r\n",
        # lines ended by CR alone: h11 waited for an LF until the header deadline
        b"GET / HTTP/1.1\rHost: x\r\r",
    ],
    ids=[
        "nul in a header",
        "two content lengths",
        "broken chunk",
        "chunked and a length",
        "bare cr line ends",
    ],
)
def test_a_request_that_is_not_http_gets_one_problem_document(
    port: int, request_bytes: bytes, caplog: pytest.LogCaptureFixture
):
    answer = _answer_of(port, request_bytes)
    assert answer.count(b"HTTP/1.1 ") == 1  # one answer, then the connection is closed
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400")
    assert b"content-type: application/problem+json" in head.lower()
    assert b"\r\ndate: " in head.lower()  # as every other answer has
    problem = json.loads(body)
    assert problem["status"] == 400
    assert problem["code"] == "malformed_request"
    assert problem["detail"].startswith("malformed HTTP request")
    time.sleep(0.2)  # the app's task, if one was started, has run
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"HEAD / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n" + CHUNKED + b"\r\n0\r\n\r\n",
        b"HEAD / HTTP/1.1\r\nHost: x\r\n" + CHUNKED + b"\r\nZZ\r\n\r\n",
        # a good HEAD, then a malformed GET: the refusal has its body
        b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\nX: a\x00\r\n\r\n",
    ],
    ids=["head framed both ways", "head with a broken chunk", "head then a malformed get"],
)
def test_a_refused_head_request_is_answered_without_a_body(
    port: int, request_bytes: bytes, caplog: pytest.LogCaptureFixture
):
    """h11 refused the problem document's body in an answer to HEAD: the client got headers and
    a reset, and two tracebacks were logged (a review found it)."""
    answer = _answer_of(port, request_bytes)
    refusal = answer[answer.rindex(b"HTTP/1.1 400") :]
    head, _, body = refusal.partition(b"\r\n\r\n")
    assert b"content-type: application/problem+json" in head.lower()
    if request_bytes.count(b"HTTP/1.1") == 2:  # the GET's refusal
        assert json.loads(body)["code"] == "malformed_request"
    else:
        assert body == b""
    time.sleep(0.2)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_a_line_end_split_between_its_cr_and_lf_is_no_bare_cr(port: int):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as connection:
        connection.sendall(b"GET / HTTP/1.1\r")
        time.sleep(0.1)  # apart: the first part ends in CR when the server reads it
        connection.sendall(b"\nHost: x\r\nConnection: close\r\n\r\n")
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 200")


def test_headers_past_the_parser_buffer_are_a_431_problem_document(port: int):
    start = b"GET / HTTP/1.1\r\nHost: x\r\nX-Long: "
    with socket.create_connection(("127.0.0.1", port), timeout=5) as connection:
        connection.sendall(start)
        time.sleep(0.1)  # apart, so that h11 holds an incomplete request in its buffer
        with contextlib.suppress(OSError):  # the server may close before taking all of it
            connection.sendall(b"a" * 40_000)
        answer = b""
        with contextlib.suppress(ConnectionResetError):
            while chunk := connection.recv(65536):
                answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 431")
    assert json.loads(body)["code"] == "request_header_fields_too_large"


def test_a_request_in_another_http_version_is_refused_with_505(port: int):
    answer = _answer_of(port, b"GET / HTTP/3.0\r\nHost: x\r\n\r\n")
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 505")
    assert json.loads(body)["code"] == "http_version_not_supported"
    assert json.loads(body)["detail"] == "HTTP/3.0 is not served; send HTTP/1.1"
    # HTTP/1.0 is still served, and a higher 1.x minor version is read as 1.1
    assert _answer_of(port, b"GET / HTTP/1.0\r\n\r\n").startswith(b"HTTP/1.1 200")
    higher = b"GET / HTTP/1.2\r\nHost: x\r\nConnection: close\r\n\r\n"
    assert _answer_of(port, higher).startswith(b"HTTP/1.1 200")


def test_the_bare_cr_check_reads_headers_trickled_a_byte_at_a_time():
    """The check reads only what came since its last look (a CR at the end of what it read may be
    followed by LF next): a CR split from its LF is no bare CR, a bare CR late in long headers is
    found."""
    import h11

    from service.protocol import StrictConnection

    def fed(request: bytes) -> object:
        connection = StrictConnection(h11.SERVER, 65536)
        event: object = h11.NEED_DATA
        for byte in request:
            connection.receive_data(bytes([byte]))
            event = connection.next_event()
        return event

    good = b"GET / HTTP/1.1\r\nHost: x\r\nX-Long: " + b"a" * 3000 + b"\r\n\r\n"
    assert isinstance(fed(good), h11.Request)
    bad = b"GET / HTTP/1.1\r\nHost: x\r\nX-Long: " + b"a" * 3000 + b"\rb\r\n\r\n"
    with pytest.raises(h11.RemoteProtocolError, match="bare CR"):
        fed(bad)


def test_a_malformed_header_line_is_not_quoted_back_nor_logged_as_a_warning(port: int):
    """h11's reason quotes the offending line, which may hold a key ("Authorization Bearer
    <key>" without its colon); and uvicorn wrote a warning per malformed request, no key
    needed. (uvicorn's loggers do not propagate to the root, so the test listens on its own.)"""
    records: list[logging.LogRecord] = []
    listener = logging.Handler(logging.DEBUG)
    listener.emit = records.append  # type: ignore[method-assign]
    uvicorn_log = logging.getLogger("uvicorn.error")
    level = uvicorn_log.level
    uvicorn_log.addHandler(listener)
    uvicorn_log.setLevel(logging.DEBUG)
    try:
        line = b"Authorization Bearer s3cr3t"
        answer = _answer_of(port, b"GET / HTTP/1.1\r\nHost: x\r\n" + line + b"\r\n\r\n")
        time.sleep(0.2)
    finally:
        uvicorn_log.removeHandler(listener)
        uvicorn_log.setLevel(level)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400")
    assert json.loads(body)["code"] == "malformed_request"
    assert b"s3cr3t" not in answer
    invalid = [r for r in records if r.getMessage() == "Invalid HTTP request received."]
    assert invalid, "still logged, at debug"
    assert all(r.levelno == logging.DEBUG for r in invalid)
