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
from typing import Any, ParamSpec, TypeVar, cast

from quart import Quart, Response, has_websocket_context, jsonify, request, websocket
from starlette.authentication import AuthCredentials, BaseUser
from starlette.types import ASGIApp

from .. import access
from ..asgi import RenewalMiddleware
from ..config import Settings
from ..session import OIDCUser

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


def login_required(view: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R | Response]]:
    """Answer anonymous requests with ``401`` JSON (``WWW-Authenticate: Bearer``)."""

    @functools.wraps(view)
    async def guarded(*args: P.args, **kwargs: P.kwargs) -> R | Response:
        if logged_in_user() is None:
            response = jsonify(error="not_authenticated")
            response.status_code = 401
            response.headers["WWW-Authenticate"] = "Bearer"
            return response
        return await view(*args, **kwargs)

    return guarded
