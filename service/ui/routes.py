"""The browser pages under ``/ui``: sign-in and sign-out, segments, a segment, a customer, the map,
and champion against challenger (Discover: ``service.ui.discover``). Every page needs a signed-in session
(``SessionDep``); none is in the OpenAPI document, which describes the JSON API only."""

from __future__ import annotations

import logging
import secrets
from typing import Annotated, Any
from urllib.parse import parse_qs, quote, urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from feature_store.schema import MAX_ID_LENGTH
from feature_store.timeutil import as_of_text
from models.bundle import ExplanationView
from models.business import CANCELED
from models.charts import (
    MAX_MAP_POINTS,
    churn_figure,
    churn_heading,
    churned_figure,
    contrast_figure,
    figure_json,
    map_figure,
    migration_figure,
    optional_json,
    share_figure,
    waterfall_figure,
)
from models.registry import RegistryError
from models.summaries import (
    churned_line,
    contrasts,
    currency_line,
    headline,
    origin_text,
    reporting_currency,
    segment_cards,
    segment_ids,
    structure_line,
    transition_of,
)
from service.deps import ModelDep
from service.keys import ApiKeys
from service.lifecycle import LoadedModel
from service.members import MembersDep, segment_position
from service.problems import ProblemError
from service.schemas.types import SegmentIdPath, count_query
from service.settings import Scope
from service.ui import sessions as ui_sessions
from service.ui.assets import accepts_gzip
from service.ui.sessions import CSRF_COOKIE, SESSION_COOKIE, SessionDep, UiSession
from service.ui.state import UiState
from service.ui.views import (
    MemberListing,
    compare_view,
    customer_url,
    feature_lines,
    member_listing,
    members_csv,
    split_shared,
)

router = APIRouter(prefix="/ui", include_in_schema=False)
PageQuery = count_query(1, 1_000_000)  # a page of a listing
logger = logging.getLogger("service")

HEADLINE_LINES = 3
MAX_FORM_BYTES = 16 * 1024
SECURITY_HEADERS = {
    # Everything from this server; plotly.js writes inline styles, nothing runs inline scripts.
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; "
    "style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; connect-src 'self'; "
    "font-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


class PageNotFoundError(Exception):
    """A segment or customer the served model does not know; answered with an HTML 404 (a
    problem document with ``code``, the API's code for the same miss, for other clients)."""

    def __init__(self, message: str, code: str = "not_found") -> None:
        super().__init__(message)
        self.code = code


def _state(request: Request) -> UiState:
    return request.app.state.ui


def render(
    request: Request,
    template: str,
    session: UiSession | None,
    status: int = 200,
    **context: Any,
) -> HTMLResponse:
    state = _state(request)
    values = {
        "asset": state.assets.url,
        "charts": False,
        "nav": None,
        "version": None,
        # customer pages, the search that leads there and members' values need ``score``
        "customer_pages": session is not None and shows_customers(session),
    }
    html = state.templates.get_template(template).render({**values, **context, "session": session})
    return HTMLResponse(html, status, headers=SECURITY_HEADERS)


def _position(loaded: LoadedModel, segment_id: int) -> int:
    try:
        return segment_position(loaded, segment_id)
    except ProblemError as error:
        raise PageNotFoundError(error.detail, error.code) from None


async def form_fields(request: Request) -> dict[str, list[str]]:
    """An urlencoded form's fields, every value of each; a 413 problem for a form larger than
    ``MAX_FORM_BYTES`` (no page here sends one: it was answered as an expired form)."""
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise ProblemError(
            413,
            "form_too_large",
            f"a form of at most {MAX_FORM_BYTES // 1024} KiB is read; this one is "
            f"{len(body):,} bytes",
        )
    return parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)


async def _form(request: Request) -> dict[str, str]:
    """An urlencoded form's fields (the first value of each)."""
    return {name: values[0] for name, values in (await form_fields(request)).items()}


# Sign-in and sign-out -------------------------------------------------------------------------


def _sign_in_page(request: Request, status: int, error: str | None, next_path: str) -> Response:
    token = secrets.token_urlsafe(32)
    response = render(
        request, "sign_in.html.j2", None, status, csrf=token, error=error, next=next_path
    )
    ui_sessions.set_cookie(response, request, CSRF_COOKIE, token, ui_sessions.SIGN_IN_FORM_SECONDS)
    return response


@router.get("/sign-in")
async def sign_in_form(request: Request, next: str = "/ui") -> Response:
    return _sign_in_page(request, 200, None, ui_sessions.safe_next(next))


@router.post("/sign-in")
async def sign_in(request: Request) -> Response:
    form = await _form(request)
    next_path = ui_sessions.safe_next(form.get("next"))
    if not ui_sessions.tokens_match(request.cookies.get(CSRF_COOKIE), form.get("csrf_token")):
        error = "This form expired or came from another site; please sign in again."
        return _sign_in_page(request, 403, error, next_path)
    # A key pasted from a terminal often brings a space or a line break; no key holds either.
    key = form.get("api_key", "").strip()
    keys: ApiKeys = request.app.state.api_keys
    if not key:  # spaces alone were "This API key is not known."
        return _sign_in_page(request, 401, "Enter an API key to sign in.", next_path)
    scopes = keys.scopes_of(key)
    if scopes is None:
        return _sign_in_page(request, 401, "This API key is not known.", next_path)
    if Scope.read not in scopes:
        error = "This API key lacks the 'read' scope, which the pages need."
        return _sign_in_page(request, 403, error, next_path)
    state = _state(request)
    try:  # a new token at every sign-in; the session file is SQLite, used off the event loop
        await run_in_threadpool(state.sessions.end, request.cookies.get(SESSION_COOKIE))
        session = await run_in_threadpool(state.sessions.create, scopes, key)
    except ui_sessions.SessionStoreError as error:  # a read-only or full data home
        logger.warning("%s", error)
        error_text = "Signing in is unavailable: the service cannot keep sessions (see its log)."
        return _sign_in_page(request, 503, error_text, next_path)
    response = RedirectResponse(next_path, 303)
    seconds = int(state.sessions.seconds)
    ui_sessions.set_cookie(response, request, SESSION_COOKIE, session.token, seconds)
    ui_sessions.clear_cookie(response, request, CSRF_COOKIE)
    return response


@router.post("/sign-out")
async def sign_out(request: Request) -> Response:
    form = await _form(request)
    state = _state(request)
    token = request.cookies.get(SESSION_COOKIE)
    try:
        session = await run_in_threadpool(state.sessions.get, token)
        if session is not None and not ui_sessions.tokens_match(
            session.csrf, form.get("csrf_token")
        ):
            return HTMLResponse(
                "Sign-out refused: the form's token is wrong.", 403, SECURITY_HEADERS
            )
        await run_in_threadpool(state.sessions.end, token)
    except ui_sessions.SessionStoreError as error:  # the session may still be valid: say so
        logger.warning("%s", error)
        refused = HTMLResponse(
            "Sign-out could not be recorded: the service cannot reach its sessions (see its "
            "log). This browser has forgotten the session, but the service may still accept it "
            "until it expires (at most 8 hours after signing in).",
            503,
            SECURITY_HEADERS,
        )
        ui_sessions.clear_cookie(refused, request, SESSION_COOKIE)
        return refused
    response = RedirectResponse("/ui/sign-in", 303)
    ui_sessions.clear_cookie(response, request, SESSION_COOKIE)
    return response


# Pages ----------------------------------------------------------------------------------------


def _common(loaded: LoadedModel, nav: str | None, charts: bool) -> dict[str, Any]:
    return {"version": loaded.version, "nav": nav, "charts": charts}


@router.get("")
async def segments_page(
    request: Request, session: SessionDep, loaded: ModelDep, members: MembersDep
) -> Response:
    members.warm(loaded)
    model = loaded.model
    cards = segment_cards(model)
    churn = churn_figure(cards)
    return render(
        request,
        "segments.html.j2",
        session,
        **_common(loaded, "Segments", True),
        cards=cards,
        customers=sum(c.customers for c in cards),
        trained_at=model.trained_at,
        data_as_of=as_of_text(model.features_as_of) if model.features_as_of else None,
        headlines=[headline(model, c.position, HEADLINE_LINES) for c in cards],
        churned_line=churned_line(model),
        currency_line=currency_line(model),
        structure_line=structure_line(model),
        shares=figure_json(share_figure(cards)),
        churn=optional_json(churn),
        churn_heading=churn_heading(cards),
        # models pickled before churned customers were recorded have none
        churned_chart=optional_json(churned_figure(cards, getattr(model, "churned", None))),
    )


@router.get("/segments")
async def segments_list() -> Response:
    """The list of segments is the explorer's home; ``/ui/segments``, the address its pages sit
    under, was a 404 (a new user's walkthrough)."""
    return RedirectResponse("/ui", 308)


@router.get("/segments/{segment_id}")
async def segment_page(
    request: Request,
    session: SessionDep,
    loaded: ModelDep,
    members: MembersDep,
    segment_id: SegmentIdPath,
    q: Annotated[str, Query(max_length=MAX_ID_LENGTH)] = "",
    page: PageQuery = 1,
) -> Response:
    position = _position(loaded, segment_id)
    table = await members.table(loaded)
    listing = member_listing(loaded, table, position, q, page)
    if listing.page != page:
        # a page past the last (an old link to a list that has since shrunk) shows the last,
        # and the address says so, as the members fragment's does
        return RedirectResponse(_members_address(segment_id, listing), 303)
    rows = contrasts(loaded.model, position)
    return render(
        request,
        "segment.html.j2",
        session,
        **_common(loaded, "Segments", True),
        card=segment_cards(loaded.model)[position],
        rows=rows,
        contrast=figure_json(contrast_figure(rows)),
        transition=transition_of(loaded.model, segment_id),
        q=q,
        segment_id=segment_id,
        listing=listing,
        members_total=len(table.rows_of(position)),
    )


def _members_address(segment_id: int, listing: MemberListing) -> str:
    """The segment page's address showing ``listing``: its search and page, when not the
    defaults."""
    shown = urlencode(
        {k: v for k, v in (("q", listing.q), ("page", listing.page)) if v not in ("", 1)}
    )
    return f"/ui/segments/{segment_id}" + (f"?{shown}" if shown else "")


@router.get("/segments/{segment_id}/members")
async def members_partial(
    request: Request,
    session: SessionDep,
    loaded: ModelDep,
    members: MembersDep,
    segment_id: SegmentIdPath,
    q: Annotated[str, Query(max_length=MAX_ID_LENGTH)] = "",
    page: PageQuery = 1,
) -> Response:
    position = _position(loaded, segment_id)
    table = await members.table(loaded)
    listing = member_listing(loaded, table, position, q, page)
    if request.headers.get("HX-Request") != "true":
        # opened as an address (typed, bookmarked, or the page to return to after signing in):
        # the fragment alone was a bare, unstyled table; the segment's page shows the same list
        return RedirectResponse(_members_address(segment_id, listing), 303)
    partial = render(request, "members.html.j2", session, listing=listing, segment_id=segment_id)
    # The address bar follows the search and the page, so a copied address shares the list as
    # shown, not the whole segment. A search replaces it (no history entry per keystroke); a
    # page turned adds one, so Back returns to the page before (it left the segment).
    paged = request.headers.get("HX-Trigger") in PAGER_LINKS
    address = _members_address(segment_id, listing)
    partial.headers["HX-Push-Url" if paged else "HX-Replace-Url"] = address
    return partial


# The ids of the members list's page links (``members.html.j2``).
PAGER_LINKS = ("previous-page", "next-page")


@router.get("/segments/{segment_id}/members.csv")
async def members_export(
    request: Request,
    session: SessionDep,
    loaded: ModelDep,
    members: MembersDep,
    segment_id: SegmentIdPath,
    q: Annotated[str, Query(max_length=MAX_ID_LENGTH)] = "",
) -> Response:
    position = _position(loaded, segment_id)
    table = await members.table(loaded)
    filename = f"segment-{segment_id}-members-v{loaded.version}.csv"
    return StreamingResponse(
        members_csv(loaded, table, position, q, with_features=shows_customers(session)),
        media_type="text/csv; charset=utf-8",
        headers={
            **SECURITY_HEADERS,
            "Content-Disposition": f'attachment; filename="{quote(filename)}"',
        },
    )


@router.get("/customers")
async def find_customer(
    request: Request,
    session: SessionDep,
    loaded: ModelDep,
    members: MembersDep,
    # any id the events contract takes (up to 255 characters; the search took 200)
    customer_id: Annotated[str, Query(min_length=1, max_length=MAX_ID_LENGTH)],
    view: Annotated[ExplanationView, Query()] = "contrast",
) -> Response:
    """The search: to the customer's page. An id holding a line feed has no page address
    (``views.customer_url``), so its page is served here; a search box cannot type one."""
    if "\n" in customer_id:
        return await customer_page(request, session, loaded, members, customer_id, view)
    if not customer_id.strip():  # it went to /ui/customers/, "No customer ''"
        return bad_request_page(request, "a customer id to search for, not only spaces")
    return RedirectResponse(customer_url(customer_id.strip()), 303)


@router.get("/customers/{customer_id:path}")
async def customer_page(
    request: Request,
    session: SessionDep,
    loaded: ModelDep,
    members: MembersDep,
    customer_id: str,
    view: Annotated[ExplanationView, Query()] = "contrast",
) -> Response:
    """A customer's assignment and explanation: why its segment rather than the runner-up (the
    API's default), or with ``?view=segment`` how well it fits its own segment."""
    if not shows_customers(session):
        return _needs_score(request, session, "a customer's page shows")
    values = await members.values_of(loaded, customer_id)
    if values is None:
        # "the online store" read to a retailer as its web shop (a product team's review)
        raise PageNotFoundError(
            f"No customer {customer_id!r} among those the service holds features for: the "
            "customers of the last feature build and those whose events were sent since. "
            "Customer ids are matched exactly. A lead scored from its events alone has no page "
            "(its answer carries its explanation).",
            "unknown_customer",
        )
    model = loaded.model
    # A cancelled customer is in no segment, so there is no runner-up to contrast with: its page
    # explains the fit with the nearest segment (a contrast named a runner-up the page hides).
    canceled = (
        CANCELED in model.feature_names and values[0, model.feature_names.index(CANCELED)] == 1
    )
    (assignment,) = await run_in_threadpool(
        model.assignments_from_values,
        values,
        [customer_id],
        loaded.ref,
        explain=True,
        top_k=len(model.feature_names),
        view="segment" if canceled else view,
    )
    assert assignment.explanation is not None  # served models always have an explainer
    segment_id = assignment.segment.id  # assignments carry public ids (docs/lifecycle.md)
    runner = assignment.runner_up
    currency = reporting_currency(model)
    told, shared = split_shared(feature_lines(assignment, currency))
    # the page said nothing of when its figures are from (a product manager's review)
    figures_as_of = await members.as_of_of(customer_id)
    return render(
        request,
        "customer.html.j2",
        session,
        **_common(loaded, None, True),
        customer_id=customer_id,
        assignment=assignment,
        # cancelled customers are not in a segment (``models.business.CANCELED``): the nearest
        canceled=bool(canceled),
        segment_id=segment_id,
        runner_up_id=None if runner is None else runner.id,
        waterfall=figure_json(
            waterfall_figure(
                assignment.explanation,
                assignment.segment.name,
                currency=currency,
                events_30d=(assignment.features or {}).get("events_30d"),
                canceled=bool(canceled),
            )
        ),
        features=told,
        shared=shared,
        origin=origin_text(model, segment_id),
        contrast_available=runner is not None and not canceled,
        figures_as_of=None if figures_as_of is None else as_of_text(figures_as_of.isoformat()),
    )


@router.get("/map")
async def map_page(
    request: Request, session: SessionDep, loaded: ModelDep, members: MembersDep
) -> Response:
    points = await members.map_points(loaded)
    model = loaded.model
    figure = map_figure(points, model.segment_names, segment_ids(model))
    total = len(points.x)
    return render(
        request,
        "map.html.j2",
        session,
        **_common(loaded, "Map", True),
        map=figure_json(figure),
        total=total,
        shown=min(total, MAX_MAP_POINTS),
    )


@router.get("/compare")
async def compare_page(request: Request, session: SessionDep, loaded: ModelDep) -> Response:
    """Champion against challenger, from the comparison the registry stores with the challenger
    (the service never compares by itself: that is ``segments compare``, logged to the run)."""
    source = request.app.state.loader.source
    try:
        document = await run_in_threadpool(source.comparison)
    except RegistryError as error:
        document, unavailable = None, str(error)
    else:
        unavailable = None
    common = _common(loaded, "Compare", document is not None)
    if document is None:
        return render(
            request, "compare.html.j2", session, **common, view=None, unavailable=unavailable
        )
    view = compare_view(document)
    return render(
        request,
        "compare.html.j2",
        session,
        **common,
        view=view,
        unavailable=None,
        sankey=figure_json(
            migration_figure(view.migration, view.names["champion"], view.names["challenger"])
        ),
    )


@router.get("/assets/{name}")
async def asset(request: Request, name: str) -> Response:
    # in a thread: the first request reads and compresses plotly.js (0.2 s) once per worker
    found = await run_in_threadpool(_state(request).assets.get, name)
    if found is None:
        raise PageNotFoundError(f"No asset {name!r}.", "unknown_asset")
    headers = {
        "Cache-Control": "public, max-age=31536000, immutable",
        "X-Content-Type-Options": "nosniff",
        "Vary": "Accept-Encoding",
    }
    if accepts_gzip(request.headers.get("accept-encoding", "")):
        # its own ETag: a cache must not answer a client that takes no gzip with these bytes
        headers |= {"Content-Encoding": "gzip", "ETag": f'"{found.digest}-gzip"'}
        return Response(found.gzipped, media_type=found.media_type, headers=headers)
    return Response(found.body, media_type=found.media_type, headers={**headers,
                    "ETag": f'"{found.digest}"'})  # fmt: skip


def not_found_page(request: Request, message: str) -> Response:
    return render(request, "not_found.html.j2", None, 404, message=message)


def unavailable_page(request: Request, message: str, seconds: int) -> Response:
    """A page that cannot be shown yet (no model loaded: the service has just started): said in
    words, and loaded again by the browser itself after ``seconds`` (the ``Refresh`` header, which
    the page's Content-Security-Policy does not concern, unlike a script)."""
    again = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    page = render(
        request, "unavailable.html.j2", None, 503, message=message, seconds=seconds, again=again
    )
    page.headers.update({"Retry-After": str(seconds), "Refresh": str(seconds)})
    return page


def shows_customers(session: UiSession) -> bool:
    """Whether the session may see what ``POST /v1/score`` answers about one customer: its
    assignment, explanation and feature values. The API keeps them behind ``score``; a
    ``read``-only key read them all through the pages (a hostile client's review), while the API
    gives it members' ids, confidence and fit only."""
    return Scope.score in session.scopes


def _needs_score(request: Request, session: UiSession, what: str) -> Response:
    message = (
        f"This key lacks the 'score' scope: {what} what POST /v1/score answers (a customer's "
        "assignment, its explanation and its feature values). Sign in with a key that has it."
    )
    return render(request, "forbidden.html.j2", session, 403, message=message)


def bad_request_page(request: Request, message: str) -> Response:
    """A page asked for with a value it cannot take, said in its words (a 422, as the API's)."""
    return render(request, "bad_request.html.j2", None, 422, message=message)


def sign_in_location(next_path: str) -> str:
    return f"/ui/sign-in?next={quote(next_path, safe='')}"


def sign_in_redirect(next_path: str) -> Response:
    return RedirectResponse(sign_in_location(next_path), 303)
