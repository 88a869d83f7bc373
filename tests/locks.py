"""A data home's file lock held by someone else: an ingestion writing, another worker refreshing."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
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
