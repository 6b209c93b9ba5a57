"""FastAPI dependencies for the user and the access token that :class:`RenewalMiddleware` attaches.

    from renewal_middleware.integrations.fastapi import AccessToken, CurrentUser

    @app.get("/api/me")
    async def me(user: CurrentUser, token: AccessToken) -> dict[str, str]:
        return {"sub": user.identity}

The required ones (``CurrentUser``, ``Credentials``, ``AccessToken``) answer an anonymous
API call with ``401`` (``{"detail": "Not authenticated"}``, ``WWW-Authenticate: Bearer``),
an anonymous page load with a ``302`` to the middleware's login route (``return_to`` set to
the requested URL), or close an anonymous WebSocket with 1008; the optional ones give
``None`` instead. :class:`LoginGuard` makes the same dependencies with other choices, such
as ``401`` for page loads too::

    api = LoginGuard(redirect=False)
    ApiUser = Annotated[OIDCUser, Depends(api.user)]
"""

from __future__ import annotations

from typing import Annotated, NoReturn

from fastapi import Depends, HTTPException, WebSocketException, status
from starlette.requests import HTTPConnection

from ..access import current_credentials as _credentials_of
from ..access import logged_in_user as _user_of
from ..asgi import RenewalMiddleware
from ..requests import is_navigation
from ..session import OIDCUser, TokenCredentials
from ._guards import (
    CHALLENGE,
    NO_STORE,
    REDIRECT_STATUS,
    asgi_target,
    find_layer,
    login_location,
    login_url_of,
)

__all__ = [
    "AccessToken",
    "Credentials",
    "CurrentUser",
    "LoginGuard",
    "OptionalCredentials",
    "OptionalUser",
    "access_token",
    "current_credentials",
    "current_user",
    "optional_credentials",
    "optional_user",
]


def optional_user(connection: HTTPConnection) -> OIDCUser | None:
    """The logged-in user, or ``None`` for an anonymous request."""
    return _user_of(connection.scope)


def optional_credentials(connection: HTTPConnection) -> TokenCredentials | None:
    """The access token and its expiry and claims, or ``None`` for an anonymous request."""
    auth = _credentials_of(connection.scope)
    return auth if isinstance(auth, TokenCredentials) else None


class LoginGuard:
    """Dependencies answering an anonymous request for you.

    An anonymous page load (``GET`` with ``Sec-Fetch-Mode: navigate``, or ``Accept:
    text/html`` without ``Sec-Fetch-Mode``: the middleware's rule) gets a ``302`` to the
    login route with ``return_to`` set to the requested URL, unless ``redirect`` is false;
    any other anonymous request gets ``401`` (``WWW-Authenticate: Bearer``); an anonymous
    WebSocket is closed with 1008. The login route is ``login_url`` when given, else the
    ``login_path`` of the :class:`~renewal_middleware.RenewalMiddleware` the app added
    (``app.add_middleware``), else ``/login``: give ``login_url`` when the middleware wraps
    the app from outside with another ``login_path``.
    """

    def __init__(self, *, redirect: bool = True, login_url: str | None = None) -> None:
        self.redirect = redirect
        self.login_url = login_url

    def user(self, connection: HTTPConnection) -> OIDCUser:
        """The logged-in user."""
        user = optional_user(connection)
        if user is None:
            self._unauthenticated(connection)
        return user

    def credentials(self, connection: HTTPConnection) -> TokenCredentials:
        """The access token and its expiry and claims."""
        credentials = optional_credentials(connection)
        if credentials is None:
            self._unauthenticated(connection)
        return credentials

    def access_token(self, connection: HTTPConnection) -> str:
        """The current access token (already renewed if it was due)."""
        return self.credentials(connection).access_token

    def _unauthenticated(self, connection: HTTPConnection) -> NoReturn:
        scope = connection.scope
        if scope["type"] == "websocket":
            raise WebSocketException(status.WS_1008_POLICY_VIOLATION, "Not authenticated")
        headers = connection.headers
        if self.redirect and is_navigation(
                scope["method"], headers.get("sec-fetch-mode"), headers.get("accept"),
                headers.get("x-requested-with")):
            login_url = self.login_url
            if login_url is None:
                middleware = find_layer(getattr(scope.get("app"), "middleware_stack", None),
                                        RenewalMiddleware)
                login_url = login_url_of(middleware.settings if middleware else None)
            location = login_location(login_url, asgi_target(scope))
            raise HTTPException(REDIRECT_STATUS, "Not authenticated",
                                headers={"Location": location, **NO_STORE})
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "Not authenticated",
                            headers={"WWW-Authenticate": CHALLENGE, **NO_STORE})


_GUARD = LoginGuard()


def current_user(connection: HTTPConnection) -> OIDCUser:
    """The logged-in user; ``401``, or a redirect for a page load, when nobody is logged in."""
    return _GUARD.user(connection)


def current_credentials(connection: HTTPConnection) -> TokenCredentials:
    """The access token and its expiry and claims; ``401``, or a redirect for a page load,
    when nobody is logged in."""
    return _GUARD.credentials(connection)


def access_token(connection: HTTPConnection) -> str:
    """The current access token (already renewed if it was due); ``401``, or a redirect
    for a page load, when anonymous."""
    return _GUARD.access_token(connection)


CurrentUser = Annotated[OIDCUser, Depends(current_user)]
OptionalUser = Annotated[OIDCUser | None, Depends(optional_user)]
Credentials = Annotated[TokenCredentials, Depends(current_credentials)]
OptionalCredentials = Annotated[TokenCredentials | None, Depends(optional_credentials)]
AccessToken = Annotated[str, Depends(access_token)]
