"""Flask: the user and the access token of the current request, and ``login_required``.

Wrap the WSGI app, then read the user from any view::

    from flask import Flask
    from renewal_middleware import WSGIRenewalMiddleware
    from renewal_middleware.integrations.flask import access_token, current_user, login_required

    app = Flask(__name__)
    app.wsgi_app = WSGIRenewalMiddleware(app.wsgi_app)   # settings from RENEWAL_* variables

    @app.get("/api/orders")
    @login_required
    def orders():
        return fetch_orders(current_user().identity, token=access_token())

``init_app(app)`` also puts the user in ``flask.g.user`` before every request.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar, cast, overload

from flask import Flask, current_app, g, jsonify, request
from flask import redirect as flask_redirect
from starlette.authentication import AuthCredentials, BaseUser
from werkzeug.wrappers import Response

from .. import access
from ..requests import is_navigation
from ..wsgi import WSGIRenewalMiddleware
from ._guards import (
    CHALLENGE,
    DEFAULT_LOGIN_PATH,
    NO_STORE,
    REDIRECT_STATUS,
    find_layer,
    login_location,
    wsgi_target,
)

__all__ = ["access_token", "current_credentials", "current_user", "init_app", "login_required"]

_View = TypeVar("_View", bound=Callable[..., Any])


def current_user() -> BaseUser:
    """The user of the current request: an :class:`~renewal_middleware.OIDCUser`, or
    Starlette's ``UnauthenticatedUser`` (``.is_authenticated`` is false) when anonymous."""
    return access.current_user(request.environ)


def current_credentials() -> AuthCredentials:
    """:class:`~renewal_middleware.TokenCredentials` (``.access_token``, ``.expires_at``,
    ``.claims``) when logged in, empty ``AuthCredentials`` otherwise."""
    return access.current_credentials(request.environ)


def access_token() -> str | None:
    """The current access token (already renewed if it was due), or ``None`` when anonymous."""
    return access.access_token(request.environ)


@overload
def login_required(view: _View, /) -> _View: ...
@overload
def login_required(*, redirect: bool = True,
                   login_url: str | None = None) -> Callable[[_View], _View]: ...


def login_required(view: _View | None = None, /, *, redirect: bool = True,
                   login_url: str | None = None) -> _View | Callable[[_View], _View]:
    """Serve the view (sync or async) to logged-in users only.

    An anonymous page load (``GET`` with ``Sec-Fetch-Mode: navigate``, or with
    ``Accept: text/html`` from a client that sends no ``Sec-Fetch-Mode`` — the rule
    the middleware uses for silent renewal) is redirected (``302``) to the middleware's
    login route with ``return_to`` set to the requested URL; any other anonymous request
    gets ``401`` with ``{"error": "not_authenticated"}`` and ``WWW-Authenticate: Bearer``.

    The login route is ``login_url`` when given, else the ``login_path`` of the
    :class:`WSGIRenewalMiddleware` found in ``app.wsgi_app`` (through ``.app`` links, so
    ``ProxyFix`` and the like may wrap it), else ``/login``. ``redirect=False`` answers
    page loads with the ``401`` too::

        @app.get("/orders")
        @login_required
        def orders(): ...

        @app.get("/api/orders")
        @login_required(redirect=False)
        def api_orders(): ...
    """

    def decorate(view: _View) -> _View:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if not current_user().is_authenticated:
                return _login_response(redirect, login_url)
            return current_app.ensure_sync(view)(*args, **kwargs)

        return cast("_View", wrapper)

    return decorate if view is None else decorate(view)


def init_app(app: Flask) -> None:
    """Set ``flask.g.user`` (see :func:`current_user`) before every request of ``app``."""
    app.before_request(_set_g_user)


def _set_g_user() -> None:
    g.user = current_user()


def _login_response(redirect: bool, login_url: str | None) -> Response:
    headers = request.headers
    if redirect and is_navigation(request.method, headers.get("Sec-Fetch-Mode"),
                                  headers.get("Accept"), headers.get("X-Requested-With")):
        if login_url is None:
            login_url = request.script_root + _login_path()
        response = flask_redirect(login_location(login_url, wsgi_target(request.environ)),
                                  REDIRECT_STATUS)
    else:
        response = jsonify(error="not_authenticated")
        response.status_code = 401
        response.headers["WWW-Authenticate"] = CHALLENGE
    response.headers.update(NO_STORE)
    return response


def _login_path() -> str:
    """The login route of the middleware wrapping this app, else the default ``/login``."""
    middleware = find_layer(current_app.wsgi_app, WSGIRenewalMiddleware)
    return middleware.settings.login_path if middleware is not None else DEFAULT_LOGIN_PATH
