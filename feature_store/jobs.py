"""Discovery jobs in SQLite: the one record the service (which queues, runs and cancels them) and
the job process (``segments discover --job ID``, which reports progress and the result) share.

Plain SQLite and JSON, no pipelines or service import, so both sides can use it. Every change of
state is one short transaction; a job process that was cancelled or marked interrupted meanwhile
cannot overwrite that (its updates only apply while the row is ``running``).
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from feature_store.errors import SegmentsError
from feature_store.formats import strict_json_value

STEPS = ("features", "candidates", "explainer", "registration")
INTERRUPTED = "interrupted by a restart"
_SCHEMA = """CREATE TABLE IF NOT EXISTS discovery_jobs (
    id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    request TEXT NOT NULL,
    created_at TEXT NOT NULL,
    started_at TEXT,
    finished_at TEXT,
    step TEXT,
    result TEXT,
    error TEXT,
    runner_pid INTEGER
)"""


class JobStatus(StrEnum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"


FINISHED = frozenset({JobStatus.succeeded, JobStatus.failed, JobStatus.cancelled})
_FINISHED_SQL = ", ".join(f"'{status.value}'" for status in sorted(FINISHED))
# Finished jobs kept (the newest), with their results; older ones are deleted as new jobs come.
KEEP_FINISHED = 500


class QueueFullError(SegmentsError):
    """As many discoveries wait already as the service accepts."""


@dataclass(frozen=True)
class Job:
    id: str
    status: JobStatus
    request: dict[str, Any]
    created_at: str
    started_at: str | None = None
    finished_at: str | None = None
    step: str | None = None
    result: dict[str, Any] | None = None
    error: str | None = None
    runner_pid: int | None = field(default=None, repr=False)

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    def progress(self) -> list[dict[str, str]]:
        """Each step with its state: done, running, pending (or failed / cancelled where it stopped)."""
        current = STEPS.index(self.step) if self.step in STEPS else -1
        if self.status is JobStatus.succeeded:
            current = len(STEPS)
        stopped = {JobStatus.failed: "failed", JobStatus.cancelled: "cancelled"}.get(self.status)
        return [
            {"step": name, "state": _step_state(index, current, stopped)}
            for index, name in enumerate(STEPS)
        ]

    def as_dict(self) -> dict[str, Any]:
        values = asdict(self)
        values.pop("runner_pid")
        return {**values, "status": self.status.value, "progress": self.progress()}


def _step_state(index: int, current: int, stopped: str | None) -> str:
    if index < current:
        return "done"
    if index == current:
        return stopped or "running"
    return "pending"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _job(row: sqlite3.Row) -> Job:
    return Job(
        id=row["id"],
        status=JobStatus(row["status"]),
        request=json.loads(row["request"]),
        created_at=row["created_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        step=row["step"],
        result=json.loads(row["result"]) if row["result"] else None,
        error=row["error"],
        runner_pid=row["runner_pid"],
    )


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def _canonical(value: Any) -> Any:
    """A request with every list in order: a request's lists are sets (families; a filter's
    accepted values), so ["value", "behavioural"] and ["behavioural", "value"] are one request
    and find one job in flight."""
    if isinstance(value, dict):
        return {key: _canonical(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return sorted((_canonical(item) for item in value), key=json.dumps)
    return value


def _queue(con: sqlite3.Connection, request: str, max_queued: int | None) -> str:
    """Insert a queued job of ``request`` (JSON) in ``con``'s transaction: its id."""
    if max_queued is not None:
        (queued,) = con.execute(
            "SELECT count(*) FROM discovery_jobs WHERE status = 'queued'"
        ).fetchone()
        if queued >= max_queued:
            raise QueueFullError(
                f"{queued} discoveries are already waiting (at most {max_queued}); "
                "send this one when one of them has run, or cancel one"
            )
    con.execute(
        "DELETE FROM discovery_jobs WHERE id IN (SELECT id FROM discovery_jobs "
        f"WHERE status IN ({_FINISHED_SQL}) ORDER BY created_at DESC, rowid DESC LIMIT -1 OFFSET ?)",
        [KEEP_FINISHED],
    )
    job_id = uuid.uuid4().hex[:16]
    con.execute(
        "INSERT INTO discovery_jobs (id, status, request, created_at) VALUES (?, ?, ?, ?)",
        [job_id, JobStatus.queued.value, request, _now()],
    )
    return job_id


class DiscoveryJobs:
    """The jobs table in the SQLite file ``path`` (created on first use)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @contextlib.contextmanager
    def _connection(self, immediate: bool = False) -> Iterator[sqlite3.Connection]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        con = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        con.row_factory = sqlite3.Row
        try:
            con.execute("PRAGMA journal_mode=WAL")
            con.execute(_SCHEMA)
            con.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
            yield con
            con.execute("COMMIT")
        except BaseException:
            if con.in_transaction:
                con.execute("ROLLBACK")
            raise
        finally:
            con.close()

    def create(self, request: dict[str, Any], max_queued: int | None = None) -> Job:
        """Queue a job; ``QueueFullError`` when ``max_queued`` jobs already wait (checked in the
        same transaction, so two services sharing the file cannot both take the last place).
        Finished jobs beyond the newest ``KEEP_FINISHED`` are deleted: the file stays bounded.

        The same request while a job of it is queued or running is that job, not a second one:
        a form submitted twice (a double click, a reload) queued two identical discoveries, the
        second registering a challenger that replaced the first's."""
        text = json.dumps(_canonical(request), sort_keys=True)
        with self._connection(immediate=True) as con:
            in_flight = con.execute(
                "SELECT id FROM discovery_jobs WHERE status IN ('queued', 'running') "
                "AND request = ? ORDER BY created_at, rowid LIMIT 1",
                [text],
            ).fetchone()
            job_id = in_flight[0] if in_flight else _queue(con, text, max_queued)
        found = self.get(job_id)
        assert found is not None
        return found

    def get(self, job_id: str) -> Job | None:
        with self._connection() as con:
            row = con.execute("SELECT * FROM discovery_jobs WHERE id = ?", [job_id]).fetchone()
        return None if row is None else _job(row)

    def ids(self) -> set[str]:
        """The ids of every job kept."""
        with self._connection() as con:
            return {row[0] for row in con.execute("SELECT id FROM discovery_jobs")}

    def recent(self, limit: int = 20) -> list[Job]:
        with self._connection() as con:
            rows = con.execute(
                "SELECT * FROM discovery_jobs ORDER BY created_at DESC, rowid DESC LIMIT ?",
                [limit],
            ).fetchall()
        return [_job(row) for row in rows]

    def claim_next(self, runner_pid: int) -> Job | None:
        """The oldest queued job, now running, when no job runs: at most one at a time."""
        with self._connection(immediate=True) as con:
            if con.execute("SELECT 1 FROM discovery_jobs WHERE status = 'running'").fetchone():
                return None
            row = con.execute(
                "SELECT id FROM discovery_jobs WHERE status = 'queued' "
                "ORDER BY created_at, rowid LIMIT 1"
            ).fetchone()
            if row is None:
                return None
            con.execute(
                "UPDATE discovery_jobs SET status = 'running', started_at = ?, runner_pid = ? "
                "WHERE id = ?",
                [_now(), runner_pid, row["id"]],
            )
        return self.get(row["id"])

    def start(self, job_id: str, runner_pid: int) -> bool:
        """Run ``job_id`` outside a service (a queued job taken by the CLI); False if not queued."""
        return self._update(
            job_id,
            "status = 'running', started_at = ?, runner_pid = ?",
            [_now(), runner_pid],
            "queued",
        )

    def report_step(self, job_id: str, step: str) -> bool:
        """Record the step a running job has reached; False when it should stop (no longer running)."""
        return self._update(job_id, "step = ?", [step])

    def succeed(self, job_id: str, result: dict[str, Any]) -> bool:
        return self._finish(job_id, JobStatus.succeeded, result=result)

    def fail(self, job_id: str, reason: str) -> bool:
        return self._finish(job_id, JobStatus.failed, error=reason)

    def cancel(self, job_id: str) -> bool:
        """Cancel a queued or running job; False when it had already finished."""
        return self._update(
            job_id,
            "status = 'cancelled', finished_at = ?, error = 'cancelled on request'",
            [_now()],
            "queued', 'running",
        )

    def mark_interrupted(self, runner_alive: Any = process_alive) -> list[str]:
        """Fail the running jobs whose service process is gone (or is this one, restarted)."""
        with self._connection(immediate=True) as con:
            rows = con.execute(
                "SELECT id, runner_pid FROM discovery_jobs WHERE status = 'running'"
            ).fetchall()
            orphans = [
                r["id"]
                for r in rows
                if r["runner_pid"] is None
                or r["runner_pid"] == os.getpid()
                or not runner_alive(r["runner_pid"])
            ]
            for job_id in orphans:
                con.execute(
                    "UPDATE discovery_jobs SET status = 'failed', finished_at = ?, error = ? "
                    "WHERE id = ?",
                    [_now(), INTERRUPTED, job_id],
                )
        return orphans

    def _finish(
        self,
        job_id: str,
        status: JobStatus,
        result: dict[str, Any] | None = None,
        error: str | None = None,
    ) -> bool:
        return self._update(
            job_id,
            "status = ?, finished_at = ?, result = ?, error = ?",
            [
                status.value,
                _now(),
                json.dumps(strict_json_value(result)) if result else None,
                error,
            ],
        )

    def _update(
        self, job_id: str, assignments: str, values: list[Any], while_in: str = "running"
    ) -> bool:
        with self._connection(immediate=True) as con:
            cursor = con.execute(
                f"UPDATE discovery_jobs SET {assignments} "
                f"WHERE id = ? AND status IN ('{while_in}')",
                [*values, job_id],
            )
        return cursor.rowcount == 1
