"""From a request to assignments: find each customer's vector, then assign (and explain) them.

A vector comes from one of three places: the online store (``customer_id`` alone), the request
(``features``) or the customer's raw events (``events``). Every customer of a call is scored by the
one ``LoadedModel`` the call started with.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial

import numpy as np
from starlette.concurrency import run_in_threadpool

from feature_store.currency import CurrencyLevels, extended, read_levels
from feature_store.engine import SessionFactory
from feature_store.errors import SegmentsError
from feature_store.layout import StoreLayout
from feature_store.timeutil import next_whole_second, now_utc, parse_as_of
from models.assignment import Assignment, as_of_stamp
from models.bundle import ExplanationView
from service.drift import TrafficReservoir
from service.events import CustomerVector, EventsJob, model_currencies, vectors_from_events
from service.lifecycle import LoadedModel
from service.metrics import ServiceMetrics
from service.online import OnlineVectors
from service.problems import ProblemError, invalid, unknown_customer
from service.schemas.features import shown_name, unknown_names, vector_errors
from service.schemas.scoring import CustomerSpec


@dataclass(frozen=True)
class ScoreJob:
    """One customer to score and how: what the request said, with defaults filled in."""

    spec: CustomerSpec
    explain: bool
    top_k: int
    view: ExplanationView = "contrast"

    @classmethod
    def of(cls, spec: CustomerSpec, explain: bool, top_k: int, view: ExplanationView) -> ScoreJob:
        """Options that change nothing without an explanation are dropped, so that such jobs
        are placed together (one pass of the model per group)."""
        return cls(spec, explain, top_k, view) if explain else cls(spec, False, 0, "contrast")


def assign_rows(
    loaded: LoadedModel,
    vectors: Sequence[dict[str, float]],
    customer_ids: Sequence[str | None],
    *,
    explain: bool,
    top_k: int,
    view: ExplanationView = "contrast",
) -> list[Assignment]:
    """The model's assignments for ``vectors`` (each holding at least the model's features)."""
    names = loaded.feature_names
    values = np.array([[vector[name] for name in names] for vector in vectors], dtype=float)
    return loaded.model.assignments_from_values(
        values, customer_ids, loaded.ref, explain=explain, top_k=top_k, view=view
    )


def given_vector(
    feature_names: Sequence[str], customer_id: str | None, values: dict[str, float]
) -> CustomerVector | ProblemError:
    """A vector from the request, checked against the features of the model that scores it."""
    errors = vector_errors(values, feature_names)
    if not errors:
        return CustomerVector(customer_id, values)
    unknown = unknown_names(values, feature_names)
    return invalid(errors, unknown_features_detail(unknown) if unknown else None)


# Names the detail lists, as ``errors`` lists at most ``MAX_LISTED_ERRORS``: a body of 300,000
# unknown keys answered with a 2.6 MB detail naming every one.
MAX_NAMED_UNKNOWN = 20


def unknown_features_detail(unknown: Sequence[str]) -> str:
    named = [shown_name(name) for name in unknown[:MAX_NAMED_UNKNOWN]]
    more = len(unknown) - len(named)
    return f"unknown features: {', '.join(named)}" + (f" and {more:,} more" if more else "")


def _with_as_of(assignment: Assignment, as_of: datetime | None) -> Assignment:
    """``features_as_of`` as RFC 3339 UTC; left null for a vector the caller sent."""
    if as_of is None:
        return assignment
    return assignment.model_copy(update={"features_as_of": as_of_stamp(as_of)})


class Scorer:
    def __init__(
        self,
        online: OnlineVectors,
        sessions: SessionFactory,
        metrics: ServiceMetrics,
        traffic: TrafficReservoir | None = None,
        layout: StoreLayout | None = None,
    ) -> None:
        self.online, self.sessions, self.metrics = online, sessions, metrics
        self.traffic = traffic
        self.layout = layout  # whose kept price levels convert vectors computed from events
        # the kept levels and the file they were read from (inode, mtime)
        self._kept: tuple[tuple[int, int] | None, CurrencyLevels | None] = (None, None)

    def _levels(self, loaded: LoadedModel) -> CurrencyLevels | None:
        """The serving model's price levels with any the data home has kept since: the levels
        only grow unless the user changes them (``segments currency``, after which a retrain is
        due), so this converts as the online store's vectors are converted."""
        return extended(loaded.model.currency, self._kept_levels())

    def _kept_levels(self) -> CurrencyLevels | None:
        """The data home's kept levels, read again only when the file changed: a request that
        scores events stats it, and every write replaces it by a new file (a new inode)."""
        if self.layout is None:
            return None
        try:
            status = self.layout.currency_levels_path.stat()
        except OSError:
            return None  # none kept
        file = (status.st_ino, status.st_mtime_ns)
        if file != self._kept[0]:
            try:
                self._kept = (file, read_levels(self.layout))
            except (SegmentsError, OSError):
                return None  # a damaged or unreadable file is the CLI's to report
        return self._kept[1]

    async def score(
        self, loaded: LoadedModel, jobs: Sequence[ScoreJob]
    ) -> list[Assignment | ProblemError]:
        """One result per job, in order; a job that cannot be scored gets its problem."""
        vectors = await self._vectors(loaded, jobs)
        results: list[Assignment | ProblemError | None] = [
            v if isinstance(v, ProblemError) else None for v in vectors
        ]
        groups: dict[tuple[bool, int, ExplanationView], list[int]] = defaultdict(list)
        for position, (job, found) in enumerate(zip(jobs, vectors, strict=True)):
            if not isinstance(found, ProblemError):
                groups[(job.explain, job.top_k, job.view)].append(position)
        for (explain, top_k, view), positions in groups.items():
            found = [v for p in positions if isinstance(v := vectors[p], CustomerVector)]
            assign = partial(
                assign_rows,
                loaded,
                [f.vector for f in found],
                [f.customer_id for f in found],
                explain=explain,
                top_k=top_k,
                view=view,
            )
            # One customer is scored on the event loop (a thread hop would be most of its
            # latency); a batch in a worker thread: 1,000 explained with top_k 100 held the loop,
            # health checks included, for most of a second.
            assignments = assign() if len(found) <= 1 else await run_in_threadpool(assign)
            if self.traffic is not None:
                self.traffic.add(loaded.version, [(f.customer_id, f.vector) for f in found])
            for position, assignment, vector in zip(positions, assignments, found, strict=True):
                results[position] = _with_as_of(assignment, vector.as_of)
            self.metrics.count_scores(loaded.version, (a.segment.id for a in assignments))
        return [r for r in results if r is not None]

    async def _vectors(
        self, loaded: LoadedModel, jobs: Sequence[ScoreJob]
    ) -> list[CustomerVector | ProblemError]:
        out: list[CustomerVector | ProblemError | None] = [None] * len(jobs)
        from_events: list[int] = []
        stored: list[int] = []
        for position, job in enumerate(jobs):
            spec = job.spec
            if spec.events is not None:
                from_events.append(position)
            elif spec.features is not None:
                out[position] = given_vector(loaded.feature_names, spec.customer_id, spec.features)
            else:
                stored.append(position)
        if stored:
            # each a read of the online store: a thousand of them, off the event loop
            read = partial(self._stored_many, loaded, [jobs[p].spec for p in stored])
            found = read() if len(stored) <= 1 else await run_in_threadpool(read)
            for position, vector in zip(stored, found, strict=True):
                out[position] = vector
        if from_events:
            levels = self._levels(loaded)
            computed = await run_in_threadpool(
                vectors_from_events,
                [self._events_job(jobs[p]) for p in from_events],
                loaded.feature_names,
                self.sessions,
                levels,
                model_currencies(levels, getattr(loaded.model, "money_currency", None)),
            )
            for position, result in zip(from_events, computed, strict=True):
                out[position] = result
        return [r for r in out if r is not None]

    def _stored_many(
        self, loaded: LoadedModel, specs: Sequence[CustomerSpec]
    ) -> list[CustomerVector | ProblemError]:
        ids = [spec.customer_id for spec in specs]
        assert all(ids)  # CustomerSpec guarantees one source
        return [self._stored(loaded, str(customer_id)) for customer_id in ids]

    def _stored(self, loaded: LoadedModel, customer_id: str) -> CustomerVector | ProblemError:
        entry = self.online.get_with_as_of(customer_id)
        if entry is None:
            return unknown_customer(customer_id)
        vector, as_of = entry
        missing = [name for name in loaded.feature_names if name not in vector]
        if missing:
            return ProblemError(
                500,
                "stale_feature_vector",
                f"the online store's vector lacks {', '.join(missing)}; run `segments features`",
            )
        return CustomerVector(customer_id, vector, as_of)

    @staticmethod
    def _events_job(job: ScoreJob) -> EventsJob:
        spec = job.spec
        assert spec.events is not None
        as_of = parse_as_of(spec.as_of) if spec.as_of is not None else next_whole_second(now_utc())
        return EventsJob(spec.customer_id, spec.events, as_of)
