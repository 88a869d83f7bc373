"""``segments discover``: segments of a selection of customers, registered as a challenger.

In the foreground it checks and runs a request given by options; with ``--job ID`` it is the
service's worker for a queued discovery job (``POST /v1/discoveries``), reading the request from
the job's row and writing progress and the result back into it.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import TYPE_CHECKING, Annotated

import typer

from feature_store.errors import SegmentsError
from feature_store.timeutil import MAX_HISTORY_DAYS
from pipelines.cli.common import (
    JsonFlag,
    SegmentsOption,
    console,
    layout,
    print_json,
    print_table,
    quiet_mlflow,
    registry,
    stdout,
)

if TYPE_CHECKING:
    from feature_store.discovery import DiscoveryRequest
    from pipelines.discover import DiscoveryResult

app = typer.Typer()


def parse_filters(pairs: list[str]) -> dict[str, list[str]]:
    """``["plan=pro", "plan=team", "country=DE"]`` -> ``{"plan": ["pro", "team"], ...}``."""
    filters: dict[str, list[str]] = {}
    for pair in pairs:
        name, equals, value = pair.partition("=")
        if not equals or not name.strip():
            raise SegmentsError(f"--filter {pair!r}: expected COLUMN=VALUE, e.g. plan=pro")
        filters.setdefault(name.strip(), []).append(value.strip())
    return filters


def build_request(
    as_of: str,
    filters: list[str],
    mrr_min: float | None,
    mrr_max: float | None,
    history_days: int | None,
    families: str,
    max_segments: int,
    segments: int | None = None,
) -> DiscoveryRequest:
    from feature_store.cohort import Cohort
    from feature_store.discovery import DiscoveryRequest
    from feature_store.timeutil import parse_as_of

    cohort = Cohort(parse_filters(filters), mrr_min, mrr_max, history_days)
    chosen = tuple(f.strip() for f in families.split(",") if f.strip())
    return DiscoveryRequest(parse_as_of(as_of), cohort, chosen, max_segments, segments)


@app.command()
def discover(
    as_of: Annotated[
        str | None, typer.Option("--as-of", help="Date (whole day included) or ISO instant.")
    ] = None,
    filters: Annotated[
        list[str] | None,
        typer.Option(
            "--filter",
            help="COLUMN=VALUE: plan, interval or a customer attribute (e.g. country=DE); "
            "repeat a column for any of several values.",
        ),
    ] = None,
    mrr_min: Annotated[float | None, typer.Option(min=0, help="Lowest MRR included.")] = None,
    mrr_max: Annotated[float | None, typer.Option(min=0, help="Highest MRR included.")] = None,
    history_days: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=MAX_HISTORY_DAYS,
            help="Only customers with an event in this many days before as-of.",
        ),
    ] = None,
    families: Annotated[
        str, typer.Option(help="Feature families, comma-separated: value, behavioural.")
    ] = "value,behavioural",
    max_segments: Annotated[int, typer.Option(help="Cap on the number of segments.")] = 12,
    segments: SegmentsOption = None,
    job: Annotated[
        str | None, typer.Option(help="Run this queued discovery job of the service.")
    ] = None,
    quick: Annotated[bool, typer.Option(hidden=True)] = False,  # tests: few small candidates
    as_json: JsonFlag = False,
) -> None:
    """Discover segments of the customers you select; register them as the challenger."""
    if job is not None:
        _run_job(job, quick)
        return
    if as_of is None:
        raise SegmentsError("--as-of is required (or --job ID)")
    from feature_store.discovery import check_discovery

    request = build_request(
        as_of, filters or [], mrr_min, mrr_max, history_days, families, max_segments, segments
    )
    check_discovery(layout(), request)  # before MLflow is even imported: a refusal is quick
    quiet_mlflow()
    from pipelines.discover import discover as run_discovery

    registry(create=True)  # an unreachable registry is said now, not after minutes of fitting
    # MLflow prints run links on stdout; keep stdout for our own output (--json).
    with (
        console.status("Discovering: features, candidates, explainer, registration..."),
        contextlib.redirect_stdout(sys.stderr),
    ):
        result = run_discovery(layout(), request, quick=quick)
    if as_json:
        print_json(result.as_dict())
    else:
        _print_discovery(result)


def _run_job(job_id: str, quick: bool) -> None:
    quiet_mlflow()
    from feature_store.jobs import DiscoveryJobs
    from pipelines.discover import run_job

    store = layout()
    with contextlib.redirect_stdout(sys.stderr):
        result = run_job(store, DiscoveryJobs(store.jobs_path), job_id, os.getpid(), quick)
    if result is not None:
        stdout.print(f"job {job_id}: version {result.model_version} registered as challenger")


def _print_discovery(result: DiscoveryResult) -> None:

    from models.summaries import weak_structure_text
    from pipelines.cli.training import churned_text, left_out_text, segments_table

    stdout.print(
        f"run {result.run_id}: model version {result.model_version} ({result.alias}), "
        f"{result.n_segments} segments of {result.customers:,} customers ({result.selection}), "
        f"{result.seconds:.1f} s",
        highlight=False,
    )
    print_table(segments_table(result.segments), whole=["id"])
    if result.churned:
        cohort = result.metrics.get("backtest_cohort")
        buyers = bool(result.metrics.get("backtest_buyers"))
        stdout.print(
            churned_text(result.churned, cohort, buyers, result.money_currency), highlight=False
        )
    if result.left_out:
        stdout.print(left_out_text(result.left_out), highlight=False)
    weak_structure = weak_structure_text(result.metrics.get("silhouette", 1.0))
    if weak_structure:
        stdout.print(weak_structure, highlight=False)
    version = result.model_version
    if result.champion_version is None:  # a first version: its own gates, no comparison
        advice = f"champion: none yet; `segments promote {version}` makes it champion"
    else:
        advice = (
            f"champion: {result.champion_version}; `segments compare` shows its gates, "
            f"`segments promote {version}` makes it champion when they pass"
        )
    stdout.print(f"version {version} is the challenger ({advice})", highlight=False)
