"""Fresh online vectors after HTTP ingestion: a background task recomputing affected customers.

Ingestion hands over the customers whose events it stored and returns at once; one task takes
every customer waiting (coalesced: a customer named by ten requests is recomputed once), runs the
batch feature SQL over their stored events as of now in a worker thread, and writes the vectors to
the online store with that as-of. The set of waiting customers is bounded: when it is full, the
ingestion request waits for room (back-pressure) rather than dropping a customer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor

import anyio

logger = logging.getLogger("service")

RefreshCustomers = Callable[[Sequence[str]], int]
REFRESH_NICENESS = 10  # relative to the service's own


class OnlineRefresher:
    def __init__(
        self,
        refresh: RefreshCustomers,
        *,
        max_pending: int,
        min_interval_seconds: float = 0.0,
        on_refreshed: Callable[[int, int], None] | None = None,
    ) -> None:
        self._refresh, self.max_pending = refresh, max_pending
        # A pause between two refreshes lets customers of the requests meanwhile pile up into one
        # pass, so that a stream of ingestion requests does not pay a refresh each.
        self.min_interval = min_interval_seconds
        self._on_refreshed = on_refreshed
        self._pending: dict[str, None] = {}  # an ordered set: first come, first refreshed
        self._wake = asyncio.Event()
        self._room = asyncio.Event()
        # One thread of its own, at a lower priority: a refresh (the feature SQL over the
        # customers' events) yields the CPU to requests, scoring and ingestion alike.
        self._thread = ThreadPoolExecutor(1, "online-refresh", initializer=lower_thread_priority)

    @property
    def pending(self) -> int:
        return len(self._pending)

    async def submit(self, customers: Iterable[str]) -> None:
        """Queue customers for a refresh; waits while the queue is full."""
        waiting = [customer for customer in customers if customer not in self._pending]
        while waiting:
            room = self.max_pending - len(self._pending)
            if room <= 0:
                self._room.clear()
                await self._room.wait()
                waiting = [customer for customer in waiting if customer not in self._pending]
                continue
            self._pending.update(dict.fromkeys(waiting[:room]))
            waiting = waiting[room:]
            self._wake.set()

    async def run(self) -> None:
        """Refresh waiting customers until cancelled. Nothing but cancellation ends the loop: an
        error escaping one pass (the metrics callback, say) is logged and the next pass runs, since
        a dead refresher would leave every online vector stale without a word until shutdown."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                try:
                    await self._refresh_waiting()
                except Exception:
                    logger.exception("online refresher pass failed; going on")
                await anyio.sleep(self.min_interval)

    async def _refresh_waiting(self) -> None:
        batch = list(self._pending)
        self._pending.clear()
        self._room.set()
        try:
            loop = asyncio.get_running_loop()
            written = await loop.run_in_executor(self._thread, self._refresh, batch)
        except Exception:
            # The events are stored; the customers' vectors catch up with their next event or the
            # next `segments features` run. Nothing to retry blindly against a broken store.
            logger.exception("online refresh of %d customers failed", len(batch))
            written = -1
        if self._on_refreshed is not None:
            self._on_refreshed(len(batch), written)

    def close(self) -> None:
        """Wait for a refresh under way (after ``run`` is cancelled)."""
        self._thread.shutdown(wait=True)


def lower_thread_priority() -> None:
    """Raise the niceness of the calling thread only (Linux schedules threads one by one)."""
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), REFRESH_NICENESS)
