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
from typing import Any, TypeVar, cast
from urllib.parse import quote, urlencode

from flask import Flask, current_app, g, jsonify, redirect, request
from starlette.authentication import AuthCredentials, BaseUser
from werkzeug.wrappers import Response

from .. import access
from ..requests import is_navigation
from ..wsgi import WSGIRenewalMiddleware

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


def login_required(view: _View) -> _View:
    """Serve ``view`` to logged-in users only.

    An anonymous page load (``GET`` with ``Sec-Fetch-Mode: navigate``, or with
    ``Accept: text/html`` from a client that sends no ``Sec-Fetch-Mode`` — the rule
    the middleware uses for silent renewal) is redirected to the middleware's login
    route with ``return_to`` set to the requested URL; any other anonymous request
    gets ``401`` with ``{"error": "not_authenticated"}``. Works on async views too.
    """

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not current_user().is_authenticated:
            return _login_response()
        return current_app.ensure_sync(view)(*args, **kwargs)

    return cast("_View", wrapper)


def init_app(app: Flask) -> None:
    """Set ``flask.g.user`` (see :func:`current_user`) before every request of ``app``."""
    app.before_request(_set_g_user)


def _set_g_user() -> None:
    g.user = current_user()


def _login_response() -> Response:
    headers = request.headers
    if is_navigation(request.method, headers.get("Sec-Fetch-Mode"), headers.get("Accept"),
                     headers.get("X-Requested-With")):
        query = urlencode({"return_to": _requested_target()})
        response = redirect(f"{request.script_root}{_login_path()}?{query}")
    else:
        response = jsonify(error="not_authenticated")
        response.status_code = 401
    response.headers["Cache-Control"] = "no-store"
    return response


def _requested_target() -> str:
    # As the middleware builds it: PEP 3333 paths are latin-1 decoded bytes; quote them back.
    environ = request.environ
    raw = (environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")).encode("latin-1")
    path = quote(raw, safe="/;=,:@!$&'()*+~-._") or "/"
    query = environ.get("QUERY_STRING", "")
    return path + ("?" + query if query else "")


def _login_path() -> str:
    """The login route of the middleware wrapping this app (found through ``.app`` links,
    so ``ProxyFix`` and the like may wrap it), else the default ``/login``."""
    layer: object = current_app.wsgi_app
    for _ in range(16):
        if isinstance(layer, WSGIRenewalMiddleware):
            return layer.settings.login_path
        layer = getattr(layer, "app", None)
        if layer is None:
            break
    return "/login"
