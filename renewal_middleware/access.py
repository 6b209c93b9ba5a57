"""Reading the user and the access token from a request, whatever the framework.

Both drivers attach the same two objects under ``renewal_middleware.user`` and
``renewal_middleware.auth`` (in the ASGI scope also as ``user`` and ``auth``,
Starlette's ``request.user``/``request.auth``), and their settings under
``renewal_middleware.settings``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.authentication import AuthCredentials, BaseUser

from .config import Settings
from .flows import ANONYMOUS_AUTH, ANONYMOUS_USER
from .session import OIDCUser, TokenCredentials

USER_KEY = "renewal_middleware.user"
AUTH_KEY = "renewal_middleware.auth"
#: The middleware's :class:`~renewal_middleware.config.Settings` (login path and the like).
SETTINGS_KEY = "renewal_middleware.settings"


def middleware_settings(carrier: Mapping[str, Any]) -> Settings | None:
    """The settings of the middleware that handled this request (``None`` outside one)."""
    settings = carrier.get(SETTINGS_KEY)
    return settings if isinstance(settings, Settings) else None


def current_user(carrier: Mapping[str, Any]) -> BaseUser:
    """The user of an ASGI scope or a WSGI environ (anonymous when nobody is logged in)."""
    user = carrier.get(USER_KEY) or carrier.get("user")
    return user if isinstance(user, BaseUser) else ANONYMOUS_USER


def current_credentials(carrier: Mapping[str, Any]) -> AuthCredentials:
    """The credentials of an ASGI scope or a WSGI environ: :class:`TokenCredentials` when
    logged in, empty ``AuthCredentials`` otherwise."""
    auth = carrier.get(AUTH_KEY) or carrier.get("auth")
    return auth if isinstance(auth, AuthCredentials) else ANONYMOUS_AUTH


def logged_in_user(carrier: Mapping[str, Any]) -> OIDCUser | None:
    """The logged-in user, or ``None``."""
    user = current_user(carrier)
    return user if isinstance(user, OIDCUser) else None


def access_token(carrier: Mapping[str, Any]) -> str | None:
    """The current (renewed, if it was due) access token, or ``None`` when anonymous."""
    auth = current_credentials(carrier)
    return auth.access_token if isinstance(auth, TokenCredentials) else None
