"""FastAPI dependencies for the user and the access token that :class:`RenewalMiddleware` attaches.

    from renewal_middleware.integrations.fastapi import AccessToken, CurrentUser

    @app.get("/api/me")
    async def me(user: CurrentUser, token: AccessToken) -> dict[str, str]:
        return {"sub": user.identity}

The required ones (``CurrentUser``, ``Credentials``, ``AccessToken``) answer an anonymous
request with ``401`` (``{"detail": "Not authenticated"}``, ``WWW-Authenticate: Bearer``), or
close an anonymous WebSocket with 1008; the optional ones give ``None`` instead.
"""

from __future__ import annotations

from typing import Annotated, NoReturn

from fastapi import Depends, HTTPException, WebSocketException, status
from starlette.requests import HTTPConnection

from ..access import current_credentials as _credentials_of
from ..access import logged_in_user as _user_of
from ..session import OIDCUser, TokenCredentials

__all__ = [
    "AccessToken",
    "Credentials",
    "CurrentUser",
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


def current_user(connection: HTTPConnection) -> OIDCUser:
    """The logged-in user; ``401`` when nobody is logged in."""
    user = optional_user(connection)
    if user is None:
        _unauthenticated(connection)
    return user


def current_credentials(connection: HTTPConnection) -> TokenCredentials:
    """The access token and its expiry and claims; ``401`` when nobody is logged in."""
    credentials = optional_credentials(connection)
    if credentials is None:
        _unauthenticated(connection)
    return credentials


def access_token(connection: HTTPConnection) -> str:
    """The current access token (already renewed if it was due); ``401`` when anonymous."""
    return current_credentials(connection).access_token


def _unauthenticated(connection: HTTPConnection) -> NoReturn:
    if connection.scope["type"] == "websocket":
        raise WebSocketException(status.WS_1008_POLICY_VIOLATION, "Not authenticated")
    raise HTTPException(status.HTTP_401_UNAUTHORIZED, "Not authenticated",
                        headers={"WWW-Authenticate": "Bearer"})


CurrentUser = Annotated[OIDCUser, Depends(current_user)]
OptionalUser = Annotated[OIDCUser | None, Depends(optional_user)]
Credentials = Annotated[TokenCredentials, Depends(current_credentials)]
OptionalCredentials = Annotated[TokenCredentials | None, Depends(optional_credentials)]
AccessToken = Annotated[str, Depends(access_token)]
