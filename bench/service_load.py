"""A small HTTP/1.1 load generator for the service benchmark: keep-alive connections on loopback.

``constant_rate`` is open-loop: request ``i`` is due at ``start + i / rate`` whatever happened
before, and its latency runs from that due time to the last byte of the answer, so a stall of the
server shows up in the figures instead of silently slowing the load down (coordinated omission).
``closed_loop`` keeps every connection busy for a while and counts answers (a fallback for
throughput when ``wrk`` is not installed).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass
class LoadResult:
    latencies: list[float] = field(default_factory=list)  # seconds
    statuses: dict[int, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def count(self) -> int:
        return len(self.latencies)

    @property
    def errors(self) -> int:
        return sum(n for status, n in self.statuses.items() if status != 200)

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]

    def record(self, status: int, latency: float) -> None:
        self.latencies.append(latency)
        self.statuses[status] = self.statuses.get(status, 0) + 1


def request_bytes(host: str, port: int, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    lines = [
        f"POST {path} HTTP/1.1",
        f"Host: {host}:{port}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        *(f"{name}: {value}" for name, value in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, data: bytes) -> int:
    writer.write(data)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    await reader.readexactly(length)
    return status


async def _connections(host: str, port: int, count: int) -> asyncio.Queue:
    pool: asyncio.Queue = asyncio.Queue()
    for _ in range(count):
        pool.put_nowait(await asyncio.open_connection(host, port))
    return pool


async def constant_rate(
    host: str, port: int, requests: Sequence[bytes], rate: float, seconds: float, connections: int
) -> LoadResult:
    pool = await _connections(host, port, connections)
    result = LoadResult()

    async def one(data: bytes, due: float) -> None:
        reader, writer = await pool.get()
        try:
            status = await _exchange(reader, writer, data)
        finally:
            pool.put_nowait((reader, writer))
        result.record(status, time.perf_counter() - due)

    total = int(rate * seconds)
    start = time.perf_counter() + 0.05
    tasks = []
    for i in range(total):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(requests[i % len(requests)], due)))
    await asyncio.gather(*tasks)
    result.seconds = time.perf_counter() - start
    return result


async def closed_loop(
    host: str, port: int, requests: Sequence[bytes], seconds: float, connections: int
) -> LoadResult:
    result = LoadResult()
    deadline = time.perf_counter() + seconds

    async def worker(offset: int) -> None:
        reader, writer = await asyncio.open_connection(host, port)
        position = offset
        while time.perf_counter() < deadline:
            sent = time.perf_counter()
            status = await _exchange(reader, writer, requests[position % len(requests)])
            result.record(status, time.perf_counter() - sent)
            position += connections
        writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker(n) for n in range(connections)))
    result.seconds = time.perf_counter() - started
    return result


def run(coroutine: object) -> LoadResult:
    try:
        import uvloop

        return uvloop.run(coroutine)  # type: ignore[arg-type]
    except ImportError:
        return asyncio.run(coroutine)  # type: ignore[arg-type]
