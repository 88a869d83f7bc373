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
KEPT_OUTCOMES = 1000  # passes whose outcome a late waiter may still ask for


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
        # Passes numbered as they start; a pass takes every customer waiting, so a customer
        # queued before pass N starts is refreshed by its end (``submit``'s ticket, ``wait_for``).
        self._started = 0
        self._finished = 0
        self._succeeded: dict[int, bool] = {}  # the latest passes' outcomes, by number
        self._passed = asyncio.Condition()
        # One thread of its own, at a lower priority: a refresh (the feature SQL over the
        # customers' events) yields the CPU to requests, scoring and ingestion alike.
        self._thread = ThreadPoolExecutor(1, "online-refresh", initializer=lower_thread_priority)

    @property
    def pending(self) -> int:
        return len(self._pending)

    async def submit(self, customers: Iterable[str]) -> int:
        """Queue customers for a refresh; waits while the queue is full. The ticket returned is
        the pass that refreshes them all (``wait_for``)."""
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
        # Customers already waiting go with the next pass as well; with none at all, no pass is
        # owed (ticket 0)
        return self._started + 1 if self._pending else 0

    async def wait_for(self, ticket: int, timeout: float) -> bool:
        """Whether pass ``ticket`` refreshed its customers within ``timeout`` seconds (False: not
        finished by then, or failed). Ticket 0: nothing was owed."""
        with anyio.move_on_after(timeout):
            async with self._passed:
                await self._passed.wait_for(lambda: self._finished >= ticket)
            return self._succeeded.get(ticket, True)
        return False

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
        self._started += 1
        number = self._started
        written = -1
        try:
            loop = asyncio.get_running_loop()
            written = await loop.run_in_executor(self._thread, self._refresh, batch)
        except Exception:
            # The events are stored; the customers' vectors catch up with their next event or the
            # next `segments features` run. Nothing to retry blindly against a broken store.
            logger.exception("online refresh of %d customers failed", len(batch))
        finally:
            # told even when cancelled (shutdown): a request waiting for it is answered, not held
            self._succeeded[number] = written >= 0
            self._succeeded.pop(number - KEPT_OUTCOMES, None)
            self._finished = number
            async with self._passed:
                self._passed.notify_all()
        if self._on_refreshed is not None:
            self._on_refreshed(len(batch), written)

    def close(self) -> None:
        """Wait for a refresh under way (after ``run`` is cancelled)."""
        self._thread.shutdown(wait=True)


def lower_thread_priority() -> None:
    """Raise the niceness of the calling thread only (Linux schedules threads one by one)."""
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), REFRESH_NICENESS)
