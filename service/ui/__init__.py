"""The segment explorer in the browser, served at ``/ui`` by the scoring service itself.

``install_ui(app, sessions_path, keys)`` is the one call ``create_app`` makes: routes, per-app
state and the handlers that turn "not signed in" into a redirect, and "no such segment", "no such
page" and a bad value in a page's address into HTML pages. See ``docs/ui.md``.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from service.problems import (
    ProblemError,
    http_handler,
    problem_response,
    slash_redirect,
    validation_handler,
    validation_problem,
)
from service.ui import discover
from service.ui.routes import (
    PageNotFoundError,
    bad_request_page,
    not_found_page,
    router,
    sign_in_location,
    sign_in_redirect,
    unavailable_page,
)
from service.ui.sessions import SignInRequiredError, UiSessions, safe_next, under_ui
from service.ui.state import UiState


def _browser_page(request: Request) -> bool:
    """A page of the explorer asked for by a browser (which accepts HTML): its errors are pages
    with a link back; an API client (or ``curl``) keeps the problem document."""
    path = request.url.path
    return under_ui(path) and accepts_html(request.headers.get("accept", ""))


def accepts_html(accept: str) -> bool:
    """Whether an ``Accept`` header names HTML with a quality above 0 (RFC 9110, 12.5.1: media
    types in any case, ``q=0`` for "not acceptable"). A substring test took ``text/html;q=0``
    and ``application/json; x=text/html`` for HTML and missed ``TEXT/HTML``."""
    for media_range in accept.split(","):
        media_type, *parameters = (part.strip() for part in media_range.split(";"))
        if media_type.lower() != "text/html":
            continue
        quality = 1.0
        for parameter in parameters:
            name, _, value = parameter.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value.strip())
                except ValueError:
                    quality = 0.0
        if quality > 0:
            return True
    return False


async def _invalid_value(request: Request, error: Exception) -> Response:
    """A page's bad path or query value (``/ui/segments/abc``, ``?page=0``, ``?view=both``)."""
    assert isinstance(error, RequestValidationError)
    if not _browser_page(request):
        return await validation_handler(request, error)
    return bad_request_page(request, validation_problem(error.errors()).detail)


async def _no_route(request: Request, error: Exception) -> Response:
    assert isinstance(error, StarletteHTTPException)
    path = request.url.path
    if error.status_code != 404 or not _browser_page(request):
        answer = await http_handler(request, error)
        if under_ui(path) and answer.status_code == 404:
            answer.headers.update(_BY_ACCEPT)  # the same address answers a browser with a page
        return answer
    redirect = slash_redirect(request, error)
    if redirect is not None:
        return redirect
    page = not_found_page(request, f"There is no page {path}.")
    page.headers.update(_BY_ACCEPT)
    return page


# An address of the explorer answers HTML or JSON by Accept: a cache must keep them apart, and
# a 404 kept would hide a page that appears later (a segment of the next model).
_BY_ACCEPT = {"Vary": "Accept", "Cache-Control": "no-store"}


# RFC 9110 asks a 401 to say how to authenticate; the explorer's sessions are cookies set by a
# sign-in form, which the (expired) "Cookie" scheme draft, draft-broyer-http-cookie-auth, names.
_SIGN_IN_CHALLENGE = 'Cookie realm="customer-segments explorer", form-action="/ui/sign-in"'


async def _problem(request: Request, error: Exception) -> Response:
    """A problem raised while serving a page: a browser waiting for the model (the service has
    just started, or restarted) gets a page that says so and loads again by itself, where it got
    the problem document as raw JSON for up to half a minute."""
    assert isinstance(error, ProblemError)
    if error.status == 503 and request.headers.get("hx-request") == "true":
        # htmx swaps no 5xx answer, so a fragment asked for then did nothing: the whole page
        # loads again instead, and shows the page below until the model is there
        headers = {**error.headers, "HX-Refresh": "true"}
        return problem_response(ProblemError(503, error.code, error.detail, headers=headers))
    if error.status == 503 and _browser_page(request):
        seconds = int((error.headers or {}).get("Retry-After", UNAVAILABLE_RETRY_SECONDS))
        message = f"{error.detail[:1].upper()}{error.detail[1:]}."
        return unavailable_page(request, message, seconds)
    return problem_response(error)


# When a 503 names no Retry-After.
UNAVAILABLE_RETRY_SECONDS = 5


async def _sign_in_required(request: Request, error: Exception) -> Response:
    """No session: a browser is sent to sign in and back; a fragment htmx asked for makes the
    whole page go there (htmx would swap a sign-in page into the fragment, and follows
    ``HX-Redirect`` before it reads the status); any other client gets a 401 problem document,
    not a redirect to a form it cannot fill in."""
    assert isinstance(error, SignInRequiredError)
    detail = "sign in first: the explorer's pages need a browser session (/ui/sign-in)"
    headers = {"WWW-Authenticate": _SIGN_IN_CHALLENGE, "Cache-Control": "no-store"}
    if request.headers.get("hx-request") == "true":
        current = urlsplit(request.headers.get("hx-current-url", ""))
        page = safe_next(current.path + (f"?{current.query}" if current.query else ""))
        headers["HX-Redirect"] = sign_in_location(page)
        return problem_response(ProblemError(401, "unauthorized", detail, headers=headers))
    if _browser_page(request):
        return sign_in_redirect(error.next_path)
    return problem_response(ProblemError(401, "unauthorized", detail, headers=headers))


async def _page_not_found(request: Request, error: Exception) -> Response:
    """A page's missing thing (no such segment, no such asset): a page for a browser, a problem
    document for any other client, as the handlers above (an asset asked for as JSON was an
    HTML page)."""
    assert isinstance(error, PageNotFoundError)
    if not _browser_page(request):
        return problem_response(ProblemError(404, error.code, str(error), headers=_BY_ACCEPT))
    page = not_found_page(request, str(error))
    page.headers.update(_BY_ACCEPT)
    return page


def install_ui(app: FastAPI, sessions_path: Path, keys: str) -> None:
    """The pages, their per-app state and handlers; browser sessions kept in ``sessions_path``
    (a SQLite file every worker of the service opens), bound to the key configuration ``keys``
    (``ApiKeys.configuration``)."""
    app.state.ui = UiState(UiSessions(sessions_path, keys))
    app.include_router(router)
    app.include_router(discover.router)
    app.add_exception_handler(SignInRequiredError, _sign_in_required)
    app.add_exception_handler(ProblemError, _problem)
    app.add_exception_handler(PageNotFoundError, _page_not_found)
    # replacing the problem handlers of ``service.problems``, to which they hand what is not a
    # browser's page
    app.add_exception_handler(RequestValidationError, _invalid_value)
    app.add_exception_handler(StarletteHTTPException, _no_route)
