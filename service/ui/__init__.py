"""The segment explorer in the browser, served at ``/ui`` by the scoring service itself.

``install_ui(app, sessions_path, keys)`` is the one call ``create_app`` makes: routes, per-app
state and the handlers that turn "not signed in" into a redirect and "no such segment" into an
HTML page. See ``docs/ui.md``.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import Response

from service.ui import discover
from service.ui.routes import PageNotFoundError, not_found_page, router, sign_in_redirect
from service.ui.sessions import SignInRequiredError, UiSessions
from service.ui.state import UiState


async def _sign_in_required(request: Request, error: Exception) -> Response:
    assert isinstance(error, SignInRequiredError)
    return sign_in_redirect(error.next_path)


async def _page_not_found(request: Request, error: Exception) -> Response:
    return not_found_page(request, str(error))


def install_ui(app: FastAPI, sessions_path: Path, keys: str) -> None:
    """The pages, their per-app state and handlers; browser sessions kept in ``sessions_path``
    (a SQLite file every worker of the service opens), bound to the key configuration ``keys``
    (``ApiKeys.configuration``)."""
    app.state.ui = UiState(UiSessions(sessions_path, keys))
    app.include_router(router)
    app.include_router(discover.router)
    app.add_exception_handler(SignInRequiredError, _sign_in_required)
    app.add_exception_handler(PageNotFoundError, _page_not_found)
