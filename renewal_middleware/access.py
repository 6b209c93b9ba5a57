"""Reading the user and the access token from a request, whatever the framework.

Both drivers attach the request's context (the user and the credentials) under
``"renewal_middleware"``; the ASGI one also sets ``user`` and ``auth``, Starlette's
``request.user``/``request.auth``. One key, so the scope stays small: Starlette copies it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.authentication import AuthCredentials, BaseUser

from .context import ANONYMOUS_AUTH, ANONYMOUS_USER, Serve
from .session import OIDCUser, TokenCredentials

#: Where both drivers put the request's context (``.user``, ``.auth``).
CONTEXT_KEY = "renewal_middleware"


def current_user(carrier: Mapping[str, Any]) -> BaseUser:
    """The user of an ASGI scope or a WSGI environ (anonymous when nobody is logged in)."""
    context = carrier.get(CONTEXT_KEY)
    user = context.user if isinstance(context, Serve) else carrier.get("user")
    return user if isinstance(user, BaseUser) else ANONYMOUS_USER


def current_credentials(carrier: Mapping[str, Any]) -> AuthCredentials:
    """The credentials of an ASGI scope or a WSGI environ: :class:`TokenCredentials` when
    logged in, empty ``AuthCredentials`` otherwise."""
    context = carrier.get(CONTEXT_KEY)
    auth = context.auth if isinstance(context, Serve) else carrier.get("auth")
    return auth if isinstance(auth, AuthCredentials) else ANONYMOUS_AUTH


def logged_in_user(carrier: Mapping[str, Any]) -> OIDCUser | None:
    """The logged-in user, or ``None``."""
    user = current_user(carrier)
    return user if isinstance(user, OIDCUser) else None


def access_token(carrier: Mapping[str, Any]) -> str | None:
    """The current (renewed, if it was due) access token, or ``None`` when anonymous."""
    auth = current_credentials(carrier)
    return auth.access_token if isinstance(auth, TokenCredentials) else None
