"""Litestar: a plugin installing :class:`RenewalMiddleware`, a guard, and accessors.

    from renewal_middleware.integrations.litestar import RenewalPlugin, requires_login

    @get("/api/me", guards=[requires_login])
    async def me(request: Request[OIDCUser, TokenCredentials, State]) -> dict[str, str]:
        return {"sub": request.user.identity}

    app = Litestar([me], plugins=[RenewalPlugin()])  # settings: keywords or RENEWAL_* variables

Litestar runs middleware only for requests that match a route, and builds one instance of
each middleware per route handler. A plain ``DefineMiddleware(RenewalMiddleware)`` would
therefore 404 on ``/login``, ``/session`` and the middleware's other own paths, and give
every route its own refresh coordinator, so two routes hit at renewal time would each
spend the same refresh token. The plugin registers those paths and puts one shared
middleware in front of every route; it also closes the middleware's HTTP client at shutdown.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from litestar.connection import ASGIConnection
from litestar.enums import ScopeType
from litestar.exceptions import HTTPException, NotAuthorizedException, NotFoundException
from litestar.handlers import BaseRouteHandler, asgi
from litestar.plugins import InitPluginProtocol
from litestar.types import ASGIApp as LitestarASGIApp  # runtime: Litestar reads signatures
from litestar.types import Receive as LitestarReceive
from litestar.types import Scope as LitestarScope
from litestar.types import Send as LitestarSend
from starlette.authentication import AuthCredentials, BaseUser
from starlette.types import ASGIApp, Receive, Scope, Send

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
    login_location,
    login_url_of,
)

if TYPE_CHECKING:
    from litestar.config.app import AppConfig

__all__ = [
    "LOGIN_REDIRECT_OPT",
    "RenewalPlugin",
    "access_token",
    "current_credentials",
    "current_user",
    "logged_in_user",
    "requires_login",
]

_NEXT = "renewal_middleware.next_app"

_Connection = ASGIConnection[Any, Any, Any, Any]


class RenewalPlugin(InitPluginProtocol):
    """Logs users in with OpenID Connect and keeps their access token fresh.

    Takes :class:`RenewalMiddleware`'s settings (keywords, or ``RENEWAL_*`` variables);
    ``request.user`` is an :class:`OIDCUser` or Starlette's ``UnauthenticatedUser``,
    ``request.auth`` a :class:`TokenCredentials` or empty ``AuthCredentials``.
    """

    def __init__(self, *, settings: Settings | None = None, **options: Any) -> None:
        #: The one middleware every route shares (``.flows``, ``.settings``, ``.aclose()``).
        self.middleware = RenewalMiddleware(_call_next, settings=settings, **options)

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        settings = self.middleware.settings
        app_config.route_handlers.append(
            asgi(list(settings.own_paths), copy_scope=True)(_answered_by_middleware))
        app_config.middleware.insert(0, self._in_front_of)  # first = outermost
        app_config.on_shutdown.append(self.middleware.aclose)
        return app_config

    def _in_front_of(self, app: LitestarASGIApp) -> LitestarASGIApp:
        """Litestar calls this once per route handler, with that handler's ASGI app."""
        middleware = self.middleware

        async def renewal(scope: Scope, receive: Receive, send: Send) -> None:
            scope[_NEXT] = app
            await middleware(scope, receive, send)

        return cast("LitestarASGIApp", renewal)


async def _call_next(scope: Scope, receive: Receive, send: Send) -> None:
    app: ASGIApp = scope.pop(_NEXT)
    await app(scope, receive, send)


async def _answered_by_middleware(scope: LitestarScope, receive: LitestarReceive,
                                  send: LitestarSend) -> None:
    # Only reached by a path the middleware does not own, such as "/login/".
    raise NotFoundException()


#: The ``opt`` key (of a handler, controller, router or the app) that turns the guard's
#: redirect of page loads off: ``opt={"login_redirect": False}``.
LOGIN_REDIRECT_OPT = "login_redirect"


def requires_login(connection: _Connection, route_handler: BaseRouteHandler) -> None:
    """A guard: lets logged-in users through.

    An anonymous page load (``GET`` with ``Sec-Fetch-Mode: navigate``, or ``Accept:
    text/html`` without ``Sec-Fetch-Mode``: the middleware's rule) is redirected
    (``302``) to the login route of the :class:`RenewalPlugin`'s middleware, with
    ``return_to`` set to the requested URL; any other anonymous request gets ``401``
    (JSON, ``WWW-Authenticate: Bearer``). ``opt={"login_redirect": False}`` on the
    handler (or a router, a controller, the app) answers page loads with the ``401`` too::

        @get("/api/orders", guards=[requires_login], opt={"login_redirect": False})
    """
    if logged_in_user(connection) is not None:
        return
    scope = connection.scope
    headers = connection.headers
    if scope["type"] == ScopeType.HTTP and route_handler.opt.get(LOGIN_REDIRECT_OPT, True) and \
            is_navigation(scope["method"], headers.get("sec-fetch-mode"),
                          headers.get("accept"), headers.get("x-requested-with")):
        location = login_location(_login_path(connection), asgi_target(scope))
        raise HTTPException("Not authenticated", status_code=REDIRECT_STATUS,
                            headers={"Location": location, **NO_STORE})
    raise NotAuthorizedException("Not authenticated",
                                 headers={"WWW-Authenticate": CHALLENGE, **NO_STORE})


def _login_path(connection: _Connection) -> str:
    try:
        plugin = connection.app.plugins.get(RenewalPlugin)
    except KeyError:
        return login_url_of(None)
    return login_url_of(plugin.middleware.settings)


def current_user(connection: _Connection) -> BaseUser:
    """``request.user`` without Litestar's error when no middleware ran: anonymous then."""
    return access.current_user(connection.scope)


def current_credentials(connection: _Connection) -> AuthCredentials:
    """``request.auth``: :class:`TokenCredentials`, or empty credentials when anonymous."""
    return access.current_credentials(connection.scope)


def logged_in_user(connection: _Connection) -> OIDCUser | None:
    """The logged-in user, or ``None``."""
    return access.logged_in_user(connection.scope)


def access_token(connection: _Connection) -> str | None:
    """The current access token (already renewed if it was due), or ``None`` when anonymous."""
    return access.access_token(connection.scope)
