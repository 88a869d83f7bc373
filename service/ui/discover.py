"""The Discover pages: the form that queues a discovery job (the same check and queue as
``POST /v1/discoveries``), the job's page whose progress polls itself with htmx until the job ends,
and the result with the new version's segments. They need a session whose key has the
``discover`` scope; without it the page says so instead of showing the form."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from feature_store.cohort import SUBSCRIPTION_FILTERS, Cohort, filter_columns
from feature_store.discovery import FAMILIES, plain_number, whole_number
from feature_store.jobs import Job
from feature_store.timeutil import as_of_day, as_of_text, moment_text
from models.registry import RegistryError
from models.summaries import reporting_currency
from service.problems import FieldError, ProblemError, invalid, validation_problem
from service.routers.discoveries import cancel, submit
from service.schemas.discoveries import DiscoveryBody
from service.schemas.types import JobIdPath
from service.settings import Scope
from service.ui import sessions as ui_sessions
from service.ui.routes import PageNotFoundError, _form, form_fields, render
from service.ui.sessions import SessionDep, UiSession

router = APIRouter(prefix="/ui/discover", include_in_schema=False)
RECENT_JOBS = 10
MAX_ATTRIBUTE_INPUTS = 8


def _allowed(session: UiSession) -> bool:
    return Scope.discover in session.scopes


def _context(request: Request, **values: Any) -> dict[str, Any]:
    loaded = request.app.state.holder.current
    return {"nav": "Discover", "version": loaded.version if loaded else None, **values}


def _served_day(request: Request) -> tuple[str, str]:
    """The day the served model's data describes ("2026-06-30"), the as-of the form starts from
    (a discovery is most often wanted beside the segments in use), and that as-of in words for
    the hint ("2026-06-30 (end of day, UTC)"). Empty when nothing is served, or the model does
    not record it."""
    loaded = request.app.state.holder.current
    stamp = getattr(loaded.model, "features_as_of", None) if loaded else None
    return (as_of_day(stamp)[0], as_of_text(stamp)) if stamp else ("", "")


def _mrr_unit(request: Request) -> str:
    """What the MRR bounds are in: "USD a month" (the served model's reporting currency), or
    "a month" where it names none. The fields named neither (a product manager's review)."""
    loaded = request.app.state.holder.current
    currency = reporting_currency(loaded.model) if loaded else None
    return f"{currency} a month" if currency else "a month"


def form_values(fields: dict[str, list[str]]) -> dict[str, Any]:
    """The form's fields (``routes.form_fields``: every value of each) as a discovery request,
    checked as ``POST /v1/discoveries`` checks its body; a ``ProblemError`` naming the field
    otherwise. Nothing sent is dropped:

    - a filter's values are comma-separated, any of; a filter field sent twice adds its values;
    - a filter of a column the data does not have is passed on, and refused by the request's
      check as the API refuses it (it was dropped, and the discovery ran on everyone);
    - a number field left empty takes the API's default; one that does not read as a number is
      refused (a dropped MRR bound would select every customer);
    - any other field sent twice with differing values is refused, and a field the form does not
      have is refused.
    """
    errors = [
        FieldError(field=name, message="not a field of this form")
        for name in fields
        if not name.startswith(_FILTER_PREFIX) and name not in _FORM_FIELDS
    ]
    form: dict[str, str] = {}
    for name, values in fields.items():
        if not name.startswith(_FILTER_PREFIX) and len({v.strip() for v in values}) > 1:
            errors.append(FieldError(field=name, message="given twice with different values"))
        form[name] = values[0] if values else ""
    filters = {
        name.removeprefix(_FILTER_PREFIX): [
            v.strip() for value in values for v in value.split(",") if v.strip()
        ]
        for name, values in fields.items()
        if name.startswith(_FILTER_PREFIX)
    }
    values: dict[str, Any] = {
        "as_of": form.get("as_of", "").strip(),
        "filters": {name: values for name, values in filters.items() if values},
        "families": [f for f in FAMILIES if form.get(f"family_{f}")],
    }
    # a ticked box sends "on" (or what its value says); "off" or "0" is not a tick, and was read
    # as one (any value counted)
    errors += [
        FieldError(field=f"family_{f}", message=f"a ticked box sends 'on', got {value[:20]!r}")
        for f in FAMILIES
        if (value := form.get(f"family_{f}", "")) and value.strip().lower() not in _TICKED
    ]
    if not values["families"]:
        errors.append(_NO_FAMILY)
    for name, kind in _NUMBER_FIELDS.items():
        text = form.get(name, "").strip()
        if not text:
            continue
        try:
            values[name] = kind(text)
        except ValueError:
            wanted = "a whole number" if kind is whole_number else "a number"
            errors.append(FieldError(field=name, message=f"must be {wanted}, got {text[:40]!r}"))
    if errors:
        raise invalid(errors)
    try:
        return DiscoveryBody.model_validate(values).values()
    except ValidationError as error:
        raise validation_problem(error.errors()) from None


# The form's own words for its fields: "mrr_min is above mrr_max" and "history_days: Input
# should be …" named the API's fields beside inputs labelled otherwise (a product team's review).
FIELD_LABELS = {
    "as_of": "As of",
    "history_days": "Only customers with an event in the last … days",
    "mrr_min": "MRR from",
    "mrr_max": "MRR to",
    "max_segments": "At most … segments",
    "segments": "Or exactly … segments",
    "families": "Features",
}
# In a problem's prose only the names no sentence uses otherwise ("segments" is also a word).
_FIELD_NAME = re.compile(r"\b(" + "|".join(n for n in FIELD_LABELS if "_" in n) + r")\b")


def _label(field: str) -> str:
    return FIELD_LABELS.get(field, field.removeprefix("filters.").removeprefix(_FILTER_PREFIX))


def _labelled(text: str) -> str:
    """``text`` with the API's field names in it read as the form's labels, quoted."""
    return _FIELD_NAME.sub(lambda found: f"“{FIELD_LABELS[found.group(1)]}”", text)


# pydantic's bounds in the form's words: "At most … segments: Input should be greater than or
# equal to 2" read as a programmer's message to a product manager (a walkthrough).
_BOUNDS = (
    (re.compile(r"^Input should be greater than or equal to (\S+)$"), "must be at least {}"),
    (re.compile(r"^Input should be less than or equal to (\S+)$"), "must be at most {}"),
    (re.compile(r"^Input should be greater than (\S+)$"), "must be more than {}"),
    (re.compile(r"^Input should be less than (\S+)$"), "must be less than {}"),
)


def _plain(message: str) -> str:
    """A bound pydantic states, as the form says it; other messages as they are."""
    for pattern, words in _BOUNDS:
        found = pattern.match(message)
        if found:
            return words.format(found.group(1))
    return message


_NO_FAMILY = FieldError(field="families", message="choose at least one feature family")


_NUMBER_FIELDS: dict[str, Callable[[str], float]] = {
    "history_days": whole_number,
    "mrr_min": plain_number,
    "mrr_max": plain_number,
    "max_segments": whole_number,
    "segments": whole_number,
}
_FILTER_PREFIX = "filter_"
# What a ticked checkbox sends: "on" without a value attribute (the form's), "1" or "true" from
# a script
_TICKED = {"on", "1", "true", "yes"}
_FORM_FIELDS = {
    "as_of",
    "csrf_token",
    *(f"family_{family}" for family in FAMILIES),
    *_NUMBER_FIELDS,
}


def offered_filters(
    columns: list[str], suggestions: dict[str, dict[str, int]]
) -> tuple[list[str], bool]:
    """The filter columns the form offers, and whether it offers the subscription ones (plan,
    interval, MRR): a business whose events hold no subscription (invoices alone) was offered
    them empty, and an MRR bound selected nobody (a product team's review of a retailer)."""
    subscriptions = any(suggestions.get(name) for name in SUBSCRIPTION_FILTERS)
    if subscriptions:
        return columns, True
    return [name for name in columns if name not in SUBSCRIPTION_FILTERS], False


async def _form_page(
    request: Request, session: UiSession, status: int = 200, **values: Any
) -> Response:
    layout = request.app.state.settings.layout
    columns = await run_in_threadpool(filter_columns, layout)
    suggestions = await run_in_threadpool(request.app.state.filter_values.get, layout)
    served = _served_day(request)
    jobs = await run_in_threadpool(request.app.state.discoveries.jobs.recent, RECENT_JOBS)
    offered, subscriptions = offered_filters(
        columns[: len(SUBSCRIPTION_FILTERS) + MAX_ATTRIBUTE_INPUTS], suggestions
    )
    context = _context(
        request,
        allowed=_allowed(session),
        columns=offered,
        subscriptions=subscriptions,
        suggestions=suggestions,
        default_as_of=served[0],
        served_as_of=served[1],
        mrr_unit=_mrr_unit(request),
        families=FAMILIES,
        jobs=[
            {
                **job.as_dict(),
                "selection": Cohort.from_dict(job.request).describe(),
                "submitted": moment_text(job.created_at),  # it read "2026-12-06T19:40:53+00:00"
            }
            for job in jobs
        ],
        form=values.pop("form", {}),
        error=values.pop("error", None),
        **values,
    )
    return render(request, "discover.html.j2", session, status, **context)


@router.get("")
async def discover_page(request: Request, session: SessionDep) -> Response:
    return await _form_page(request, session)


@router.post("")
async def discover_submit(request: Request, session: SessionDep) -> Response:
    fields = await form_fields(request)
    form = {name: values[0] for name, values in fields.items()}
    if not ui_sessions.tokens_match(session.csrf, form.get("csrf_token")):
        error = "This form expired or came from another site; please submit it again."
        return await _form_page(request, session, 403, error=error, form=form)
    if not _allowed(session):
        return await _form_page(request, session, 403)
    try:
        job = await submit(request, form_values(fields))
    except ProblemError as problem:
        details = [
            f"{_label(e.field)}: {_labelled(_plain(e.message))}" for e in problem.errors or []
        ]
        error = "; ".join(details) or _labelled(problem.detail)
        return await _form_page(request, session, problem.status, error=error, form=form)
    return RedirectResponse(f"/ui/discover/{job.id}", 303)


async def _job(request: Request, session: UiSession, job_id: str) -> Job:
    jobs = request.app.state.discoveries.jobs
    job = await run_in_threadpool(jobs.get, job_id) if _allowed(session) else None
    if job is None:
        raise PageNotFoundError(f"No discovery job {job_id!r}.", "unknown_discovery")
    return job


async def _since(request: Request, job: Job) -> dict[str, str | None] | None:
    """What became of a finished discovery's version since: the version the service answers
    with now, and the challenger whose comparison the registry holds (None when it cannot be
    asked or holds none). A discovery's page said "the challenger" and "the served model stays
    version 1" long after a later discovery replaced it, or after it was promoted."""
    if not job.result:
        return None
    loaded = request.app.state.holder.current
    challenger = None
    with contextlib.suppress(RegistryError):
        document = await run_in_threadpool(request.app.state.loader.source.comparison)
        challenger = str(document["challenger"]) if document else None
    return {"served": loaded.version if loaded else None, "challenger": challenger}


@router.get("/{job_id}")
async def job_page(request: Request, session: SessionDep, job_id: JobIdPath) -> Response:
    job = await _job(request, session, job_id)
    since = await _since(request, job)
    selection = Cohort.from_dict(job.request).describe()
    context = _context(request, job=job.as_dict(), since=since, selection=selection)
    return render(request, "discovery.html.j2", session, **context)


@router.get("/{job_id}/progress")
async def job_progress(request: Request, session: SessionDep, job_id: JobIdPath) -> Response:
    job = await _job(request, session, job_id)
    since = await _since(request, job)
    return render(request, "discovery_progress.html.j2", session, job=job.as_dict(), since=since)


@router.post("/{job_id}/cancel")
async def job_cancel(request: Request, session: SessionDep, job_id: JobIdPath) -> Response:
    form = await _form(request)
    job = await _job(request, session, job_id)
    if not ui_sessions.tokens_match(session.csrf, form.get("csrf_token")):
        # refused, and said so: a forged cancel was sent back to the job page as if it had worked
        error = "This form expired or came from another site; the job was not cancelled."
        since = await _since(request, job)
        selection = Cohort.from_dict(job.request).describe()
        context = _context(
            request, job=job.as_dict(), since=since, selection=selection, error=error
        )
        return render(request, "discovery.html.j2", session, 403, **context)
    with contextlib.suppress(ProblemError):  # it finished meanwhile: the page shows how
        await run_in_threadpool(cancel, request, job_id)
    return RedirectResponse(f"/ui/discover/{job_id}", 303)
