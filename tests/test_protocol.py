"""The server's HTTP protocol on a real uvicorn on loopback: request headers have a deadline."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn

from service.protocol import HeaderDeadlineProtocol


class QuickDeadline(HeaderDeadlineProtocol):
    header_timeout = 1.0


async def hello(scope, receive, send) -> None:
    if scope["type"] != "http":
        return
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"5")]}
    )
    await send({"type": "http.response.body", "body": b"hello"})


@pytest.fixture
def port() -> Iterator[int]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    config = uvicorn.Config(
        hello, host="127.0.0.1", port=free, http=QuickDeadline, log_level="error", lifespan="off"
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


def closed_by_server(connection: socket.socket, within: float) -> bool:
    connection.settimeout(within)
    try:
        return connection.recv(1024) == b""
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


def test_headers_that_never_end_are_cut_off_and_trickling_does_not_extend_the_deadline(port):
    """A slowloris client: the request line and a header that never ends, a byte at a time."""
    with socket.create_connection(("127.0.0.1", port)) as connection:
        connection.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Pad: a")
        try:
            for _ in range(4):  # 0.8 s of trickling, inside the deadline
                time.sleep(0.2)
                connection.sendall(b"a")
        except OSError:  # cut off already (a slow machine): what is asserted next
            pass
        assert closed_by_server(connection, within=3.0)
    with socket.create_connection(("127.0.0.1", port)) as silent:  # opens and sends nothing
        assert closed_by_server(silent, within=3.0)


def test_a_request_whose_headers_arrive_in_time_is_answered_on_a_kept_alive_connection(port):
    with socket.create_connection(("127.0.0.1", port)) as connection:
        connection.settimeout(5)
        for _ in range(2):  # the second request, after a pause longer than the deadline
            connection.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
            time.sleep(0.2)
            connection.sendall(b"\r\n")
            assert connection.recv(1024).endswith(b"hello")
            time.sleep(1.5)  # idle between requests: the keep-alive timeout's, not the deadline's
