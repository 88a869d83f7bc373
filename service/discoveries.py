"""Discovery jobs on the service side: the check of a request before it is queued, and the runner
that starts each queued job as a subprocess of the CLI, one at a time.

The service never imports ``pipelines`` (layering): a job runs as ``python -m pipelines discover
--job ID`` with the service's data home and registry in its environment, and reports its steps
and result into the job's row of ``feature_store.jobs``, which both sides read. Jobs live in SQLite
under the data home, so a restart loses none: queued ones run after it, and a job that was running when the
service stopped is marked failed ("interrupted by a restart").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from starlette.concurrency import run_in_threadpool

from feature_store.cohort import EmptySelectionError, UnknownFilterError
from feature_store.coverage import TrainingWindowError
from feature_store.discovery import DiscoveryRequest, DiscoveryRequestError, check_discovery
from feature_store.errors import EmptyStoreError, InvalidAsOfError, SegmentsError
from feature_store.jobs import INTERRUPTED, DiscoveryJobs, Job, JobStatus
from feature_store.layout import StoreLayout
from service.problems import ProblemError
from service.settings import Settings

logger = logging.getLogger("service")
POLL_SECONDS = 0.5
UNAVAILABLE_RETRY_SECONDS = 60
LOG_TAIL_BYTES = 4096

# Why a request is refused, by the error the check raised: (status, problem code).
_REFUSALS: dict[type[SegmentsError], tuple[int, str]] = {
    InvalidAsOfError: (422, "invalid_as_of"),
    TrainingWindowError: (422, "as_of_outside_data"),
    UnknownFilterError: (422, "unknown_filter"),
    EmptySelectionError: (422, "empty_selection"),
    DiscoveryRequestError: (422, "validation_error"),
    EmptyStoreError: (409, "no_data"),
}


def refusal(error: SegmentsError) -> ProblemError:
    status, code = next(
        (answer for kind, answer in _REFUSALS.items() if isinstance(error, kind)),
        (422, "invalid_discovery"),
    )
    return ProblemError(status, code, str(error))


async def checked_request(layout: StoreLayout, values: Mapping[str, object]) -> DiscoveryRequest:
    """The request, once the data can answer it (a few DuckDB queries; with MRR bounds over
    customers paying in several currencies, their vectors once, for the price levels; nothing is
    written); else a 4xx problem."""
    try:
        request = DiscoveryRequest.from_dict(values)
        await run_in_threadpool(check_discovery, layout, request)
    except SegmentsError as error:
        raise refusal(error) from None
    return request


def worker_environment(settings: Settings, environ: Mapping[str, str]) -> dict[str, str]:
    """The job's environment: this service's data home, registry and model name."""
    env = {**environ, "SEGMENTS_HOME": str(settings.resolved_home)}
    env["SEGMENTS_MODEL_NAME"] = settings.model_name
    if settings.tracking_uri:
        env["MLFLOW_TRACKING_URI"] = settings.tracking_uri
    return env


def last_line(log: Path) -> str | None:
    """The last non-empty line of a job's log: the one-line error the CLI printed on failure."""
    with contextlib.suppress(OSError), log.open("rb") as handle:
        handle.seek(max(0, log.stat().st_size - LOG_TAIL_BYTES))
        lines = [line.strip() for line in handle.read().decode("utf-8", "replace").splitlines()]
        found = [line for line in lines if line]
        if found:
            return found[-1].removeprefix("error: ")
    return None


class DiscoveryRunner:
    """Runs queued jobs one after another, each in its own process group; cancels on request."""

    def __init__(
        self, jobs: DiscoveryJobs, command: list[str], env: dict[str, str], logs: Path
    ) -> None:
        self.jobs, self.command, self.env, self.logs = jobs, command, env, logs
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None  # the loop ``run`` waits on
        self._process: subprocess.Popen[bytes] | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> DiscoveryRunner:
        command = [sys.executable, "-m", "pipelines", "discover"]
        if settings.discovery_quick:
            command.append("--quick")
        env = worker_environment(settings, os.environ)
        logs = settings.resolved_home / "service" / "discoveries"
        return cls(DiscoveryJobs(settings.layout.jobs_path), command, env, logs)

    def wake(self) -> None:
        """A job was queued or cancelled: look now rather than at the next poll. Callable from
        any thread (the routes that cancel run in the thread pool): an ``asyncio.Event`` is set on
        its loop's thread only."""
        if self._loop is None:  # not running yet: nothing waits on the event
            self._wake.set()
        else:
            self._loop.call_soon_threadsafe(self._wake.set)

    def recover(self) -> None:
        """At startup: fail the jobs a previous run of the service left running."""
        try:
            interrupted = self.jobs.mark_interrupted()
        except (sqlite3.Error, OSError) as error:  # e.g. a read-only data home: no discovery
            logger.warning("discovery jobs unavailable (%s): %s", self.jobs.path, error)
            return
        if interrupted:
            logger.warning("discovery jobs interrupted by a restart: %s", ", ".join(interrupted))

    async def run(self) -> None:
        """Forever: take the oldest queued job when none runs, and run it to its end."""
        self._loop = asyncio.get_running_loop()
        while True:
            try:
                job = await run_in_threadpool(self.jobs.claim_next, os.getpid())
            except (sqlite3.Error, OSError) as error:
                logger.warning("discovery jobs unavailable (%s): %s", self.jobs.path, error)
                await asyncio.sleep(UNAVAILABLE_RETRY_SECONDS)
                continue
            if job is None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), POLL_SECONDS * 4)
                self._wake.clear()
                continue
            await self._run(job)

    def _prune_logs(self) -> None:
        """Delete the logs of jobs the store no longer keeps (it keeps the newest finished ones):
        the logs stay as bounded as the jobs."""
        if not self.logs.is_dir():
            return
        kept = self.jobs.ids()
        for log in self.logs.glob("*.log"):
            if log.stem not in kept:
                log.unlink(missing_ok=True)

    async def _run(self, job: Job) -> None:
        with contextlib.suppress(OSError, sqlite3.Error):
            await run_in_threadpool(self._prune_logs)
        log = self.logs / f"{job.id}.log"
        # Store calls run off the event loop: each may wait for the SQLite file, and scoring
        # requests would wait behind them. The start stays on it (milliseconds), so that
        # ``stop`` never runs between a started process and ``self._process`` naming it.
        try:
            self._process = self._start(job.id, log)
        except OSError as error:
            await run_in_threadpool(
                self.jobs.fail, job.id, f"the job process could not start: {error}"
            )
            return
        logger.info("discovery job %s started (pid %s)", job.id, self._process.pid)
        try:
            code = await self._wait(job.id)
        finally:
            self._process = None
        if code != 0:  # applies only while the row still says running
            error = last_line(log) or f"the job process exited with code {code}"
        else:
            error = "the job process ended without a result"
        await run_in_threadpool(self.jobs.fail, job.id, error)
        ended = await run_in_threadpool(self.jobs.get, job.id)
        logger.info("discovery job %s ended: %s", job.id, ended.status.value if ended else "gone")

    def _start(self, job_id: str, log: Path) -> subprocess.Popen[bytes]:
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("wb") as out:
            return subprocess.Popen(
                [*self.command, "--job", job_id],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: a cancel stops all of it
            )

    async def _wait(self, job_id: str) -> int:
        """The process's exit code; kills it when its job stops running (cancelled elsewhere)."""
        process = self._process
        assert process is not None
        while process.poll() is None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), POLL_SECONDS)
            self._wake.clear()
            job = await run_in_threadpool(self.jobs.get, job_id)
            if job is None or job.status is not JobStatus.running:
                await run_in_threadpool(self._kill, process)
        return int(process.returncode)

    @staticmethod
    def _kill(process: subprocess.Popen[bytes]) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()

    def stop(self) -> None:
        """The service is stopping: end the running job; the next start reports it interrupted."""
        process = self._process
        if process is not None and process.poll() is None:
            self._kill(process)
        with contextlib.suppress(sqlite3.Error, OSError):
            for job in self.jobs.recent(limit=5):
                if job.status is JobStatus.running and job.runner_pid == os.getpid():
                    self.jobs.fail(job.id, INTERRUPTED)
