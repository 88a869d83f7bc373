"""Discovery on request: the customers a request selects -> a fitted segmentation -> an MLflow run
and a registered version with the ``challenger`` alias, never promoted to champion.

Composes the training steps of ``pipelines.train`` on a selection of customers and features.
``discover`` runs one request (``segments discover``); ``run_job`` runs the queued job of the
service, reporting each step into its row of ``feature_store.jobs`` and at the end its result or
failure.
"""

from __future__ import annotations

import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import timedelta
from typing import Any

import pandas as pd

from feature_store.cohort import cohort_customers
from feature_store.currency import kept_levels, levels_of
from feature_store.discovery import DiscoveryRequest, check_request, selected_customers
from feature_store.errors import SegmentsError
from feature_store.jobs import DiscoveryJobs
from feature_store.layout import StoreLayout
from feature_store.timeutil import as_of_text, rfc3339
from models.business import BACKTEST_WINDOW_DAYS
from models.comparison import DISCOVERY_SELECTION
from models.explainer import SegmentExplainer
from models.families import KMeansFamily
from models.registry import CHALLENGER, CHAMPION, ModelRegistry
from models.segmenter import CustomerSegmenter, segmenter_for
from models.summaries import headline, reporting_currency
from pipelines.feature_pipeline import build_local_features, converted
from pipelines.lifecycle import compare
from pipelines.tracking import launcher_run, registry_config
from pipelines.train import (
    backtest_shortfall,
    earlier_features,
    fit_model,
    identified_version,
    measure_business,
    place_earlier_churn,
    public_churned,
    register,
    segment_summary,
    segmented_features,
    signature_example,
    window_end_shortfall,
    window_start_features,
)

StepReporter = Callable[[str], object]


class JobStoppedError(SegmentsError):
    """The job was cancelled (or marked interrupted) while it ran: stop, record nothing more."""


@dataclass(frozen=True)
class DiscoveryResult:
    run_id: str
    model_version: str
    alias: str
    champion_version: str | None
    customers: int
    n_segments: int
    metrics: dict[str, float]
    segments: list[dict[str, object]]
    churned: dict[str, object] | None
    selection: str
    seconds: float
    # features not segmented on, by the kind of event the data lacks (``segmented_features``)
    left_out: dict[str, list[str]] = field(default_factory=dict)
    # the currency its money is in (``models.summaries.reporting_currency``; None: not known)
    money_currency: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def quick_segmenter(request: DiscoveryRequest) -> tuple[CustomerSegmenter, SegmentExplainer]:
    """A few k-means candidates and a small explainer: seconds instead of minutes (tests)."""
    ks = [request.segments] if request.segments else range(2, min(4, request.max_segments) + 1)
    segmenter = segmenter_for(
        request.segments,
        request.max_segments,
        n_resamples=2,
        candidates=[KMeansFamily().candidate(k) for k in ks],
    )
    return segmenter, SegmentExplainer(leaf_ladder=(8,), n_folds=3, max_iter=60)


def _selected(features: pd.DataFrame, customers: set[str]) -> pd.DataFrame:
    return features[features["customer_id"].astype(str).isin(customers)].reset_index(drop=True)


def discovery_params(request: DiscoveryRequest) -> dict[str, object]:
    return {
        DISCOVERY_SELECTION: request.cohort.describe(),
        "discovery.families": ",".join(request.families),
        "discovery.max_segments": request.max_segments,
        # Only when told: a discovered count is the run's `n_segments` metric.
        **({"discovery.segments": request.segments} if request.segments else {}),
    }


def discover(
    layout: StoreLayout,
    request: DiscoveryRequest,
    registry: ModelRegistry | None = None,
    on_step: StepReporter | None = None,
    quick: bool = False,
) -> DiscoveryResult:
    """Run ``request``: check it, fit on its customers, register a challenger version."""
    started = time.perf_counter()
    report = on_step or (lambda step: None)
    check_request(layout, request)  # before the vectors are built
    # the vectors once: their levels (kept by the data home) convert the cohort's MRR bounds
    # and the features alike
    local = build_local_features(layout, request.as_of)
    levels = kept_levels(layout, local)
    customers = set(selected_customers(layout, request, levels))
    report("features")
    features = _selected(converted(local, levels), customers)
    segmenter, explainer = (
        quick_segmenter(request)
        if quick
        else (segmenter_for(request.segments, request.max_segments), None)
    )
    # Judged on the cohort's own events: a cohort with no paid invoice would segment on a payment
    # failure rate of 100% for anyone who failed once. (Families whose every feature lacks its
    # events in the whole data home were refused by ``check_request``.)
    feature_names, left_out = segmented_features(
        layout, request.as_of, request.feature_names, customers
    )
    if not feature_names:
        kinds = " or ".join(sorted(left_out))
        raise SegmentsError(
            f"the customers selected have no {kinds} events before the date: the families asked "
            f"for ({', '.join(request.families)}) would only hold fallbacks for them"
        )
    earlier = earlier_features(layout, request.as_of, levels)
    fitted = fit_model(features, segmenter, explainer, feature_names, report, earlier)
    registry = registry or ModelRegistry(registry_config(layout))
    # from reading the next free segment id to registering the version that takes ids from it,
    # as training holds it (two at once gave one new id to two groups)
    with registry.identity_lock():
        # As training does: without the training sample the result's "promote it" could only fail
        # ("registered without its training sample"), and its ids would collide with the champion's.
        fitted, identified = identified_version(
            layout, registry, fitted, segmenter, features, request.as_of
        )
        model = fitted.model
        window_start = request.as_of - timedelta(days=BACKTEST_WINDOW_DAYS)
        # The backtest's cohort is whom the filters selected at the window's start, whatever became
        # of them since: those selected now are all still active, and their churn 0% by construction.
        then = set(cohort_customers(layout, request.cohort, window_start, levels))
        start = window_start_features(layout, window_start, model.currency)
        everyone = request.cohort.selects_everyone
        now = converted(local, levels)
        measure_business(
            model,
            # the cohort's money converted as the model's customers' was
            _selected(start, then),
            # every customer, as training counts them: those who cancelled before the window too
            now if everyone else _selected(now, customers | then),
            backtest_shortfall(layout, window_start),
            window_end_shortfall(layout, request.as_of),
        )
        if everyone:
            # Every customer: those who cancelled before the window are counted and placed as
            # training counts and places them. A discovery of everyone, promoted in place of a
            # trained champion with the same segments, halved the churned count the pages showed
            # (328 to 165). A selection's are not: whom its filters held before the window is not
            # known.
            place_earlier_churn(model, layout, request.as_of, window_start, levels_of(start))
        if model.churned is not None and not everyone:  # whom the count is of, for the pages
            model.churned = replace(model.churned, selection=request.cohort.describe())
        # what sets each segment apart, worded before anything is registered: a wording that failed
        # after the registration would fail a job whose challenger the registry already holds
        sets_apart = [headline(model, position) for position in range(len(model.profiles))]
        report("registration")
        example = signature_example(features, model.feature_names)
        name = f"discover as of {as_of_text(rfc3339(request.as_of))}"
        with registry.run(launcher_run(), name) as run_id:
            registry.log_values(run_id, discovery_params(request))
            registration = register(
                registry, fitted, segmenter, request.as_of, example, run_id, identified
            )
    with registry.promotion_lock():
        # as training's `promote`: a promotion that moves the champion reads the challenger
        # alias and removes it from a replaced champion, and must not do so in between
        registry.set_alias(CHALLENGER, registration.version)
    champion = registry.alias_version(CHAMPION)
    if champion is not None:  # compared at once, as after training: the Compare page shows it
        try:
            compare(registry, registration.version, champion)
        except Exception as error:  # registered all the same: the job succeeded
            # `segments compare` retries and says why; the job's log keeps it meanwhile
            print(f"not compared with the champion: {error!r}", file=sys.stderr)
    model = model.bound_to(registration.version)
    return DiscoveryResult(
        run_id=registration.run_id,
        model_version=registration.version,
        alias=CHALLENGER,
        champion_version=champion,
        customers=len(features),
        n_segments=len(model.profiles),
        metrics={k: v for k, v in model.metrics.items() if "." not in k},
        # what sets each apart, in the features' units, as the segment pages say it: a product
        # team could read only names and sizes of a discovery's segments before promoting it (a
        # product manager's walkthrough)
        segments=[
            {**segment_summary(p), "sets_apart": lines}
            for p, lines in zip(model.profiles, sets_apart, strict=True)
        ],
        churned=public_churned(model),
        selection=request.cohort.describe(),
        seconds=time.perf_counter() - started,
        left_out=left_out,
        money_currency=reporting_currency(model),
    )


def job_reporter(jobs: DiscoveryJobs, job_id: str) -> StepReporter:
    """Record each step in the job's row; stop the job when it is no longer running."""

    def report(step: str) -> None:
        if not jobs.report_step(job_id, step):
            raise JobStoppedError(f"job {job_id} is no longer running")

    return report


def run_job(
    layout: StoreLayout, jobs: DiscoveryJobs, job_id: str, runner_pid: int, quick: bool = False
) -> DiscoveryResult | None:
    """Run job ``job_id`` (running, claimed by the service; or queued, taken now by the CLI);
    its row ends succeeded with the result or failed with the reason. None when it was stopped."""
    job = jobs.get(job_id)
    if job is None:
        raise SegmentsError(f"no discovery job {job_id!r}")
    if job.status.value == "queued" and not jobs.start(job_id, runner_pid):
        raise SegmentsError(f"discovery job {job_id} is {job.status.value}, not queued")
    try:
        request = DiscoveryRequest.from_dict(job.request)
        result = discover(layout, request, on_step=job_reporter(jobs, job_id), quick=quick)
    except JobStoppedError:
        return None
    except SegmentsError as error:
        jobs.fail(job_id, str(error))
        raise
    except BaseException as error:
        jobs.fail(job_id, f"unexpected error: {traceback.format_exception_only(error)[-1].strip()}")
        raise
    jobs.succeed(job_id, result.as_dict())
    return result
