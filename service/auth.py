"""Authentication by ``X-API-Key`` (or the same key as ``Authorization: Bearer``) and
authorisation by scope, as FastAPI dependencies.

Routes declare what they need with an ``Annotated`` alias (``ScoreAccess``, ``ReadAccess``). The
check also runs before the request body is read (``AuthFirstRoute``), so a caller without a valid
key gets 401 whatever it sent, never a validation error that reveals the request schema.

Surrounding spaces and tabs of the header value are not part of the key (RFC 9110 calls them
optional whitespace): ``X-API-Key: \tkey `` is the key ``key``, whatever the HTTP parser kept.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import Request, Response, Security
from fastapi.routing import APIRoute
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from service.bodies import parse_json_off_loop, require_json_body
from service.keys import ApiKeys
from service.problems import ProblemError
from service.settings import Scope

API_KEY_HEADER = "X-API-Key"

_api_key_header = APIKeyHeader(
    name=API_KEY_HEADER,
    auto_error=False,
    description="An API key from SEGMENTS_API_KEYS; its scopes decide which routes it may call.",
)


_bearer = HTTPBearer(
    auto_error=False,
    description="The same API key as a bearer token (`Authorization: Bearer KEY`), for clients "
    "that send credentials only that way; `X-API-Key` wins when both are sent.",
)


def presented_key(request: Request) -> str:
    """The key the request presents: ``X-API-Key``, else an ``Authorization: Bearer`` token (the
    scheme in any case, RFC 9110); "" when neither is there."""
    key = (request.headers.get(API_KEY_HEADER) or "").strip(" \t")
    if key:
        return key
    scheme, token = _credentials(request)
    return token if scheme.lower() == "bearer" else ""


def _credentials(request: Request) -> tuple[str, str]:
    """The ``Authorization`` header's scheme and credentials, split at the first space or tab
    (a tab was taken for part of the scheme: "Bearer<TAB>key" read as no key)."""
    parts = (request.headers.get("authorization") or "").strip(" \t").split(None, 1)
    return (parts[0], parts[1].strip(" \t")) if len(parts) == 2 else ((parts or [""])[0], "")


def _other_scheme(request: Request) -> str | None:
    """The scheme of an ``Authorization`` header that is not Bearer (``Basic``, ``Token``), when
    it is a plain token of at most 20 characters (never the credentials, which are not echoed);
    None otherwise."""
    scheme, credentials = _credentials(request)
    # a scheme only when credentials follow it: "Authorization: score-key" alone is a key sent
    # without one, which must not be quoted back
    plain = bool(credentials) and _SCHEME.fullmatch(scheme) is not None
    return scheme if plain and scheme.lower() != "bearer" else None


_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9._~+-]{0,19}")


def authorize(request: Request, scope: Scope) -> str:
    """Return the key when it is known and has ``scope``; else raise 401 or 403."""
    for header in (API_KEY_HEADER, "authorization"):
        sent = len(request.headers.getlist(header))
        if sent > 1:
            # the first was read, and a proxy may keep the last: which key decides must not
            # depend on the hop (``X-API-Key: good`` then ``bad`` was let in, the reverse not)
            raise ProblemError(
                401,
                "unauthorized",
                f"the {header if header == API_KEY_HEADER else 'Authorization'} header is sent "
                f"{sent} times: send one key, once",
                headers={"WWW-Authenticate": f"{API_KEY_HEADER}, Bearer"},
            )
    key = presented_key(request)
    keys: ApiKeys = request.app.state.api_keys
    scopes = keys.scopes_of(key) if key else None
    if scopes is None:
        reason = (
            "unknown API key"
            if key
            else f"missing API key: send it in the {API_KEY_HEADER} header "
            "(or as Authorization: Bearer KEY)"
        )
        other = _other_scheme(request)
        if not key and other:
            # "missing" read as wrong to a client that did send its key, the Basic way
            reason = (
                f"the Authorization scheme {other!r} is not accepted: send the key in the "
                f"{API_KEY_HEADER} header or as Authorization: Bearer KEY"
            )
        raise ProblemError(
            # both ways a key may come (RFC 9110 lists challenges comma-separated)
            401,
            "unauthorized",
            reason,
            headers={"WWW-Authenticate": f"{API_KEY_HEADER}, Bearer"},
        )
    if scope not in scopes:
        raise ProblemError(403, "forbidden", f"this API key lacks the {scope.value!r} scope")
    return key


class RequireScope:
    """The dependency behind the aliases; ``scope`` is what the route needs."""

    def __init__(self, scope: Scope) -> None:
        self.scope = scope

    async def __call__(  # async: FastAPI would run a plain function in a worker thread
        self,
        request: Request,
        # declared for the OpenAPI document (either scheme will do); read by ``presented_key``
        _key: Annotated[str | None, Security(_api_key_header)],
        _bearer_token: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
    ) -> str:
        # On an ``AuthFirstRoute`` every scope of the route was checked before the body was read.
        checked: str | None = getattr(request.state, "authorized_key", None)
        return checked if checked is not None else authorize(request, self.scope)


ScoreAccess = Annotated[str, Security(RequireScope(Scope.score))]
ReadAccess = Annotated[str, Security(RequireScope(Scope.read))]
DiscoverAccess = Annotated[str, Security(RequireScope(Scope.discover))]
IngestAccess = Annotated[str, Security(RequireScope(Scope.ingest))]


def required_scopes(route: APIRoute) -> list[Scope]:
    calls = [dep.call for dep in route.dependant.dependencies]
    return [call.scope for call in calls if isinstance(call, RequireScope)]


class AuthFirstRoute(APIRoute):
    """Checks the route's scopes before FastAPI reads and validates the body, then parses a JSON
    body off the event loop."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        scopes = required_scopes(self)
        takes_json = self.body_field is not None

        async def checked(request: Request) -> Response:
            for scope in scopes:
                request.state.authorized_key = authorize(request, scope)
            if takes_json:
                await require_json_body(request)
            await parse_json_off_loop(request)
            return await handler(request)

        return checked if scopes else handler
