"""Quart: install the middleware, read the request's user and token, guard views.

    from renewal_middleware.integrations.quart import access_token, init_app, login_required

    app = Quart(__name__)
    init_app(app)  # app.asgi_app = RenewalMiddleware(app.asgi_app); settings as its keywords

    @app.get("/api/data")
    @login_required
    async def data() -> dict[str, str]:
        return await fetch_api(token=access_token())

Each helper reads what the middleware put in ``request.scope`` (``websocket.scope`` in a
WebSocket handler); outside a request they raise ``RuntimeError`` as Quart's globals do.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, ParamSpec, TypeVar, cast, overload

from quart import (
    Quart,
    Response,
    current_app,
    has_websocket_context,
    jsonify,
    request,
    websocket,
)
from starlette.authentication import AuthCredentials, BaseUser
from starlette.types import ASGIApp

from .. import access
from ..asgi import RenewalMiddleware
from ..config import Settings
from ..requests import is_navigation
from ..session import OIDCUser
from ._guards import (
    CHALLENGE,
    NO_STORE,
    REDIRECT_STATUS,
    asgi_target,
    find_layer,
    login_location,
    login_url_of,
)

__all__ = ["access_token", "current_credentials", "current_user", "init_app", "logged_in_user",
           "login_required"]

P = ParamSpec("P")
R = TypeVar("R")


def init_app(app: Quart, *, settings: Settings | None = None, **options: Any) -> RenewalMiddleware:
    """Put :class:`RenewalMiddleware` in front of ``app`` (``app.asgi_app``) and return it."""
    middleware = RenewalMiddleware(cast(ASGIApp, app.asgi_app), settings=settings, **options)
    app.asgi_app = cast(Any, middleware)  # type: ignore[method-assign]
    return middleware


def _scope() -> Mapping[str, Any]:
    return websocket.scope if has_websocket_context() else request.scope


def current_user() -> BaseUser:
    """The :class:`OIDCUser`, or Starlette's ``UnauthenticatedUser``: ``.is_authenticated``."""
    return access.current_user(_scope())


def current_credentials() -> AuthCredentials:
    """:class:`TokenCredentials` (``access_token``, ``expires_at``, ``claims``) when logged in,
    empty ``AuthCredentials`` otherwise."""
    return access.current_credentials(_scope())


def logged_in_user() -> OIDCUser | None:
    """The logged-in user, or ``None``."""
    return access.logged_in_user(_scope())


def access_token() -> str | None:
    """The current access token (already renewed if it was due), or ``None`` when anonymous."""
    return access.access_token(_scope())


@overload
def login_required(view: Callable[P, Awaitable[R]], /) -> Callable[P, Awaitable[R | Response]]:
    ...
@overload
def login_required(*, redirect: bool = True, login_url: str | None = None) -> _Guard: ...


def login_required(view: Callable[P, Awaitable[R]] | None = None, /, *, redirect: bool = True,
                   login_url: str | None = None
                   ) -> Callable[P, Awaitable[R | Response]] | _Guard:
    """Serve the view to logged-in users only.

    An anonymous page load (``GET`` with ``Sec-Fetch-Mode: navigate``, or ``Accept:
    text/html`` without ``Sec-Fetch-Mode``: the middleware's rule) is redirected (``302``)
    to the middleware's login route with ``return_to`` set to the requested URL; any
    other anonymous request (and any WebSocket) gets ``401`` with
    ``{"error": "not_authenticated"}`` and ``WWW-Authenticate: Bearer``.

    The login route is ``login_url`` when given, else the ``login_path`` of the
    :class:`RenewalMiddleware` in ``app.asgi_app`` (:func:`init_app` puts it there),
    else ``/login``. ``redirect=False`` answers page loads with the ``401`` too::

        @app.get("/orders")
        @login_required
        async def orders(): ...

        @app.get("/api/orders")
        @login_required(redirect=False)
        async def api_orders(): ...
    """

    guard = _Guard(redirect, login_url)
    return guard if view is None else guard(view)


class _Guard:
    """``login_required(redirect=..., login_url=...)``: a decorator."""

    def __init__(self, redirect: bool, login_url: str | None) -> None:
        self.redirect = redirect
        self.login_url = login_url

    def __call__(self, view: Callable[P, Awaitable[R]], /
                 ) -> Callable[P, Awaitable[R | Response]]:
        redirect, login_url = self.redirect, self.login_url

        @functools.wraps(view)
        async def guarded(*args: P.args, **kwargs: P.kwargs) -> R | Response:
            if logged_in_user() is None:
                return _login_response(redirect, login_url)
            return await view(*args, **kwargs)

        return guarded


def _login_response(redirect: bool, login_url: str | None) -> Response:
    if redirect and not has_websocket_context():
        headers = request.headers
        if is_navigation(request.method, headers.get("Sec-Fetch-Mode"), headers.get("Accept"),
                         headers.get("X-Requested-With")):
            if login_url is None:
                middleware = find_layer(current_app.asgi_app, RenewalMiddleware)
                login_url = login_url_of(middleware.settings if middleware else None)
            location = login_location(login_url, asgi_target(request.scope))
            return Response("", REDIRECT_STATUS, {"Location": location, **NO_STORE})
    response = jsonify(error="not_authenticated")
    response.status_code = 401
    response.headers["WWW-Authenticate"] = CHALLENGE
    response.headers.update(NO_STORE)
    return response
