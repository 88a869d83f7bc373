"""HTTP ingestion in a process of its own, so that scoring does not wait for it.

Validating and writing events is mostly Python and Arrow conversion work that holds the
interpreter lock for milliseconds at a time, in C code that a shorter switch interval cannot
interrupt; in the serving process it delayed scoring requests (p99 6 → 16 ms while 1,000-event
batches arrived). Here the serving process only parses the request and hands the events over a
pipe; a child process, at a lower CPU priority (batch scheduling, niceness +5), runs the group
commit (``GroupWriter``) and the online refresh, and answers with the report.

The child is started on the first ingestion (an app that never ingests starts none), with the
``spawn`` method: the serving process has threads, and ``fork`` would copy their locks mid-use. If
it dies, the requests it held fail with ``IngestionUnavailableError`` (a 503 the client retries:
a batch is stored whole or not at all, and a retried event is a duplicate, never a second copy),
and the next request starts a new one. The child's event loop also says it is alive every
``HEARTBEAT_SECONDS``; a child that says nothing at all while a request waits ``answer_timeout``
seconds, and for at least three heartbeats since it was last heard or started (stopped, or its
loop stuck), is ended the same way: before, every request after it waited
for ever. A request that waits that long on a live child (its write waiting for the data home's
lock, held by a long `segments ingest`) answers 503 and leaves the child be.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import multiprocessing
import os
import pickle
import signal
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, InvalidStateError, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeoutError
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from feature_store.layout import StoreLayout
from feature_store.records import RecordsReport, Request

logger = logging.getLogger("service")

# The child's niceness relative to the service: scoring requests get the CPU first when both
# want it, while ingestion still gets most of a core on a 2-core machine that serves little else.
INGEST_NICENESS = 5
# How long closing waits for the child to finish the writes it holds before it is terminated.
CLOSE_SECONDS = 60.0
# How long closing waits for a child that holds no request: it stops within a second when it is
# serving, but one still importing at low priority on a busy machine read the stop only after
# that, and the service's shutdown waited the full minute ("did not stop in 60 s") for a child
# with nothing to finish. Ending it then loses nothing: every write it took was answered, and a
# compaction it may be running is safe to end at any point (``feature_store.compaction``).
IDLE_CLOSE_SECONDS = 5.0
# A child ending this soon after its start counts as failing at start; after two such in a row,
# requests are refused (503) for a pause instead of starting a third at once.
QUICK_END_SECONDS = 5.0
RESTART_PAUSE_SECONDS = 10.0
# How long a request waits for the child's answer by default (``Settings.ingest_timeout_seconds``):
# a write of 5,000 events takes well under a second, a child's start a few.
ANSWER_TIMEOUT_SECONDS = 120.0
# How often the child's event loop says it is alive (an answer to no request: ``HEARTBEAT``).
HEARTBEAT_SECONDS = 2.0
HEARTBEAT = -1
# Events handed to the child and not yet answered, at most (``Settings.ingest_max_pending_events``):
# ten full requests. A child that waits for the data home's lock (a long ``segments ingest``)
# answers nothing for minutes, and clients' retries would otherwise pile their requests in both
# processes' memory; beyond the bound a request is refused at once (``IngestionBusyError``).
MAX_PENDING_EVENTS = 50_000


# Exit codes of a child ended by a stop signal (multiprocessing: minus the signal's number).
_STOP_SIGNALS = {-signal.SIGTERM: "SIGTERM", -signal.SIGINT: "SIGINT"}


class IngestionUnavailableError(RuntimeError):
    """The ingestion process ended before it answered; the request may be sent again."""


class IngestionBusyError(IngestionUnavailableError):
    """The ingestion process holds ``MAX_PENDING_EVENTS`` events not yet stored; nothing of this
    request was handed to it, so it may be sent again later."""


class IngestProcess:
    """The serving process's side: sends requests to the child, resolves their answers."""

    def __init__(
        self,
        layout: StoreLayout,
        online_store_path: Path,
        answer_timeout: float = ANSWER_TIMEOUT_SECONDS,
        max_pending_events: int = MAX_PENDING_EVENTS,
    ) -> None:
        self.layout, self.online_store_path = layout, online_store_path
        self.answer_timeout = answer_timeout
        self.max_pending_events = max_pending_events
        self._lock = threading.Lock()  # guards the child, its pipe and the pending answers
        self._process: BaseProcess | None = None
        self._connection: Connection | None = None
        # Answers awaited, with the pipe each was sent on (when a child ends, only what it held
        # fails: a request sent meanwhile to its successor does not) and its number of events.
        self._pending: dict[int, tuple[Connection, Future[Any], int]] = {}
        self._pending_events = 0
        self._ids = itertools.count()
        # Sends go through one thread: pickling and writing 200 KB into a pipe that a child still
        # starting does not read yet would otherwise block the event loop. Pipes are closed on
        # it too (``_close_after_sends``).
        self._sender = ThreadPoolExecutor(1, "ingest-send")
        self._closed = False
        self._started_at = self._last_end = 0.0
        self._last_answer = 0.0  # when the child last answered (``time.monotonic``)
        self._failed_starts = 0  # children in a row that ended within QUICK_END_SECONDS

    def start(self) -> None:
        """Start the child now rather than with the first request (it imports for a second,
        meanwhile the service serves)."""
        with self._lock:
            if not self._closed:
                self._started()

    async def ingest(self, request: Request) -> RecordsReport:
        """The child's report on the request; ``IngestionUnavailableError`` when the child ended
        before answering, or answered nothing in ``answer_timeout`` seconds."""
        sent = time.monotonic()
        events = sum(len(items) for items in request.records.values())
        answer = asyncio.wrap_future(self._call("ingest", request, events))
        # an answer nobody awaits any more (a timeout, a cancelled request) is still retrieved
        answer.add_done_callback(lambda done: done.cancelled() or done.exception())
        try:
            # Shielded: a request cancelled while its events are written (a client gone, a
            # shutdown) leaves the answer's future to be resolved by the reader, as the write is
            # not undone.
            return await asyncio.wait_for(asyncio.shield(answer), self.answer_timeout)
        except TimeoutError:
            raise self._no_answer_since(sent) from None

    def refresh(self, customer_ids: Sequence[str]) -> int:
        """Recompute these customers' online vectors (blocks; called from the refresher's thread)."""
        sent = time.monotonic()
        try:
            return self._call("refresh", list(customer_ids)).result(self.answer_timeout)
        except FutureTimeoutError:
            raise self._no_answer_since(sent) from None

    def _no_answer_since(self, sent: float) -> IngestionUnavailableError:
        """A request sent at ``sent`` waited ``answer_timeout`` seconds: end the child if it said
        nothing at all meanwhile, not even its heartbeat (stopped, or its loop stuck), so that the
        requests it holds fail and the next starts a new one. A live child is left to finish
        (its write may be waiting for the data home's lock). The error to raise."""
        with self._lock:
            process = self._process
            # silent over a window that holds at least three heartbeats: with a timeout shorter
            # than one, a live child waiting for the lock was killed before it could say so
            # heard last: an answer, a heartbeat, or the child's start (a starting child has not
            # had the chance to say anything yet)
            heard = max(self._last_answer, self._started_at)
            silent = heard < min(sent, time.monotonic() - 3 * HEARTBEAT_SECONDS)
        again = "send again (a batch is stored whole or not at all, and a re-sent event is never "
        again += "stored twice)"
        if process is not None and silent and process.is_alive():
            logger.error(
                "the ingestion process said nothing in %.0f s; ending it", self.answer_timeout
            )
            process.kill()  # SIGKILL: a stopped process takes no SIGTERM
            return IngestionUnavailableError(
                f"the ingestion process did not answer in {self.answer_timeout:.0f} s; {again}"
            )
        return IngestionUnavailableError(
            f"the ingestion process has not stored this request in {self.answer_timeout:.0f} s "
            f"(another ingestion may hold the data home); {again}"
        )

    @property
    def pid(self) -> int | None:
        with self._lock:
            return self._process.pid if self._process is not None else None

    def _call(self, kind: str, payload: object, events: int = 0) -> Future[Any]:
        future: Future[Any] = Future()
        with self._lock:
            if self._closed:
                raise IngestionUnavailableError("the service is stopping; send again")
            held = self._pending_events
            if events and held and held + events > self.max_pending_events:
                # One request alone is never refused (the route bounds its size), only one that
                # joins others the child has not answered.
                raise IngestionBusyError(
                    f"the ingestion process holds {held:,} events not yet stored (at most "
                    f"{self.max_pending_events:,}); nothing of this request was stored, send "
                    "again later"
                )
            connection = self._started()
            ident = next(self._ids)
            self._pending[ident] = (connection, future, events)
            self._pending_events += events
        self._sender.submit(self._send, connection, (kind, ident, payload), ident)
        return future

    def _settled(self, ident: int) -> Future[Any] | None:
        """The future of a pending answer, no longer pending (None if it was not); under the lock."""
        held = self._pending.pop(ident, None)
        if held is None:
            return None
        self._pending_events -= held[2]
        return held[1]

    def _send(self, connection: Connection, message: tuple, ident: int) -> None:
        try:
            connection.send(message)
        except Exception as error:  # the child is gone (the reader fails the rest), or unpicklable
            logger.warning("could not hand a request to the ingestion process: %s", error)
            with self._lock:
                held = self._settled(ident)
            self._fail([held] if held else [])

    def _started(self) -> Connection:
        if self._process is not None and self._process.is_alive() and self._connection:
            return self._connection
        if self._failed_starts >= 2 and time.monotonic() - self._last_end < RESTART_PAUSE_SECONDS:
            # A child that dies at once (an unreadable store, say) would otherwise be restarted
            # for every request: a second of imports each, for the same error in the log.
            raise IngestionUnavailableError(
                "the ingestion process keeps failing at start; see the service log"
            )
        context = multiprocessing.get_context("spawn")
        ours, theirs = context.Pipe()
        process = context.Process(
            target=child_main,
            args=(theirs, self.layout, self.online_store_path),
            name="segments-ingest",
            daemon=True,  # never outlives the service
        )
        process.start()
        theirs.close()
        self._process, self._connection, self._started_at = process, ours, time.monotonic()
        threading.Thread(
            target=self._read, args=(ours, process), name="ingest-answers", daemon=True
        ).start()
        return ours

    def _read(self, connection: Connection, process: BaseProcess) -> None:
        """Resolve answers as they come; when the child ends, fail what it still held."""
        while True:
            try:
                ident, ok, value = connection.recv()
            except (EOFError, OSError):
                break
            except Exception:  # an answer that does not unpickle here: the pipe is unusable
                logger.exception("unreadable answer from the ingestion process")
                break
            with self._lock:
                held = self._settled(ident)
                self._last_answer = time.monotonic()
            if held is None or held.done():
                continue
            with contextlib.suppress(InvalidStateError):  # resolved meanwhile (cancelled)
                if ok:
                    held.set_result(value)
                else:
                    held.set_exception(value)
        with self._lock:
            if self._connection is connection:
                self._process, self._connection = None, None
                lived = time.monotonic() - self._started_at
                self._failed_starts = self._failed_starts + 1 if lived < QUICK_END_SECONDS else 0
                self._last_end = time.monotonic()
            lost = [ident for ident, held in self._pending.items() if held[0] is connection]
            held_futures = [self._settled(ident) for ident in lost]
            closing = self._closed
        self._close_after_sends(connection)
        process.join(5)
        if not closing and process.exitcode in _STOP_SIGNALS and not held_futures:
            # Ctrl-C or a stop of the service's process group reaches the child first, before
            # the service closes it: an ERROR on every ordinary shutdown read as a failure
            logger.info("the ingestion process was stopped (%s)", _STOP_SIGNALS[process.exitcode])
        elif not closing:
            logger.error(
                "the ingestion process ended (exit code %s); %d requests fail with 503",
                process.exitcode,
                len(held_futures),
            )
        self._fail([future for future in held_futures if future is not None])

    def _close_after_sends(self, connection: Connection) -> None:
        """Close a pipe on the sender's thread, after the sends queued before it.

        Closed from another thread, its descriptor number was free while a send still held it
        between two writes: a file opened meanwhile (the idempotency store's SQLite file, when the
        child had died mid-request) took the number, and the rest of the pickled request was
        written into that file, which then answered "file is not a database" to every request.
        """
        try:
            self._sender.submit(connection.close)
        except RuntimeError:  # shut down by ``close``: the sends queued before may still run
            self._sender.shutdown(wait=True)
            connection.close()

    @staticmethod
    def _send_quietly(connection: Connection, message: tuple) -> None:
        with contextlib.suppress(OSError, ValueError):  # the child is gone: nothing to tell
            connection.send(message)

    @staticmethod
    def _fail(futures: list[Future[Any]]) -> None:
        for future in futures:
            with contextlib.suppress(InvalidStateError):
                if not future.done():
                    future.set_exception(
                        IngestionUnavailableError("the ingestion process ended; send again")
                    )

    def close(self) -> None:
        """Let the child finish what it holds, then end it; waits at most ``CLOSE_SECONDS``, or
        ``IDLE_CLOSE_SECONDS`` when it holds no request."""
        with self._lock:
            self._closed = True
            process, connection = self._process, self._connection
        if connection is not None:  # after the requests already accepted, on the sender's thread
            with contextlib.suppress(RuntimeError):  # closed before: the sender is shut down
                self._sender.submit(self._send_quietly, connection, ("stop", -1, None))
        self._sender.shutdown(wait=True)
        if process is None or connection is None:
            return
        with self._lock:
            holding = bool(self._pending)
        waited = CLOSE_SECONDS if holding else IDLE_CLOSE_SECONDS
        process.join(waited)
        if process.is_alive():
            if holding:
                logger.error("the ingestion process did not stop in %.0f s; ending it", waited)
            else:
                logger.info("the ingestion process held no request; ended after %.0f s", waited)
            process.terminate()
            process.join(5)
            if process.is_alive():  # a stopped (SIGSTOP) process takes no SIGTERM
                process.kill()
                process.join(5)


def child_main(connection: Connection, layout: StoreLayout, online_store_path: Path) -> None:
    """The ingestion process: serve requests from the pipe until told to stop or the pipe ends."""
    # Ctrl-C in a terminal reaches the whole process group; the service decides when this ends.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # A spawned process starts with no logging set up: its lines (a compaction, a failed write)
    # go to the service's standard error, marked as this process's.
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s [ingestion process] %(message)s"
    )
    # Linux's batch policy: the scheduler treats the process as CPU-bound, so it never preempts a
    # waking request handler (the wake-up of a scoring request is not delayed behind a write);
    # with the niceness, it gets less of the CPU when both want it, but is never starved.
    with contextlib.suppress(AttributeError, OSError):
        os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
    with contextlib.suppress(AttributeError, OSError):
        os.nice(INGEST_NICENESS)
    asyncio.run(_serve(connection, layout, online_store_path))


async def _serve(connection: Connection, layout: StoreLayout, online_store_path: Path) -> None:
    # Imported here: the serving process imports this module without the writer's dependencies.
    from feature_store.online_store import SqliteOnlineStore
    from service.group_commit import GroupWriter
    from service.refresher import lower_thread_priority

    loop = asyncio.get_running_loop()
    writer = GroupWriter(layout)
    online = SqliteOnlineStore(online_store_path)
    # Lower still than the writer: a refresh yields the CPU to ingestion as well as to scoring.
    refreshing = ThreadPoolExecutor(1, "online-refresh", initializer=lower_thread_priority)
    inbox: asyncio.Queue[tuple[str, int, Any]] = asyncio.Queue()
    send_lock = threading.Lock()

    def read() -> None:
        while True:
            try:
                message = connection.recv()
            except (EOFError, OSError):  # the service is gone: finish what is held, then end
                message = ("stop", -1, None)
            except Exception:
                # a message that does not unpickle here: the pipe is unusable. Ending, rather
                # than letting this thread die while the loop's heartbeat went on: the service
                # then never saw the process as silent, and every request waited out its timeout
                logger.exception("unreadable request from the service; ending")
                message = ("stop", -1, None)
            loop.call_soon_threadsafe(inbox.put_nowait, message)
            if message[0] == "stop":
                return

    def reply(ident: int, ok: bool, value: object) -> None:
        try:
            data = pickle.dumps((ident, ok, value))
        except Exception as error:  # an exception that cannot cross the pipe: say what it was
            data = pickle.dumps((ident, False, RuntimeError(f"{type(value).__name__}: {value}")))
            logger.debug("unpicklable answer: %s", error)
        with send_lock, contextlib.suppress(OSError):
            connection.send_bytes(data)

    async def answer(ident: int, work: Any) -> None:
        try:
            value = await work
        except Exception as error:
            reply(ident, False, error)
        else:
            reply(ident, True, value)

    async def heartbeat() -> None:
        # from the event loop itself: a loop that is stuck says nothing, as a stopped process
        while True:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            reply(HEARTBEAT, True, None)

    threading.Thread(target=read, name="ingest-requests", daemon=True).start()
    alive = asyncio.create_task(heartbeat())
    tasks: set[asyncio.Task[None]] = set()
    while True:
        kind, ident, payload = await inbox.get()
        if kind == "stop":
            break
        if kind == "ingest":
            work = writer.ingest(payload)
        else:
            work = loop.run_in_executor(refreshing, writer.refresh, payload, online)
        task = asyncio.create_task(answer(ident, work))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    await asyncio.gather(*tasks, return_exceptions=True)
    await writer.drain()
    refreshing.shutdown(wait=True)
    writer.close()
    alive.cancel()
    connection.close()
