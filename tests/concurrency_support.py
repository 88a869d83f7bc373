"""For tests of concurrent work: a file lock held by someone else (an ingestion writing, another
worker refreshing), and waiting for what another thread or process does."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock


@contextmanager
def lock_held_elsewhere(path: Path | str, seconds: float) -> Iterator[list[float]]:
    """Hold the file lock ``path`` on another thread for ``seconds``, from when this enters (a
    lock object of its own, so this thread waits for it as another process would). Yields a list
    that holds the instant of the release once the block has ended."""
    held, released = threading.Event(), []

    def hold() -> None:
        with FileLock(str(path)):
            held.set()
            time.sleep(seconds)
            released.append(time.monotonic())

    holder = threading.Thread(target=hold)
    holder.start()
    assert held.wait(30), f"{path} was not taken within 30 s"
    try:
        yield released
    finally:
        holder.join(seconds + 30)


def wait_until(
    condition: Callable[[], object], what: str, timeout: float = 30, every: float = 0.01
) -> None:
    """Poll ``condition`` until it holds; a busy machine only makes this slower, never fail."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not seen after {timeout} s")
        time.sleep(every)
