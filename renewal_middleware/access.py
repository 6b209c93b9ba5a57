"""Reading the user and the access token from a request, whatever the framework.

Both drivers attach the request's context (the user and the credentials) under
``"renewal_middleware"``, where an inner auth middleware that overwrites ``user``
does not reach it: the WSGI driver in the environ; the ASGI driver in the request's
``scope["state"]`` (a per-request copy, ASGI 2.4), or in the scope itself when the
server gives no state. The ASGI driver also sets ``user`` and ``auth``, Starlette's
``request.user``/``request.auth``. The scope only grows by those two keys: a larger
scope makes Starlette grow its dict on every request (~1 µs under uvicorn).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.authentication import AuthCredentials, BaseUser

from .context import ANONYMOUS_AUTH, ANONYMOUS_USER, Serve
from .session import OIDCUser, TokenCredentials

#: Where both drivers put the request's context (``.user``, ``.auth``).
CONTEXT_KEY = "renewal_middleware"


def context_of(carrier: Mapping[str, Any]) -> Serve | None:
    """The context a driver attached to an ASGI scope or a WSGI environ, if any."""
    context = carrier.get(CONTEXT_KEY)
    if context is None:
        state = carrier.get("state")
        context = state.get(CONTEXT_KEY) if isinstance(state, Mapping) else None
    return context if isinstance(context, Serve) else None


def current_user(carrier: Mapping[str, Any]) -> BaseUser:
    """The user of an ASGI scope or a WSGI environ (anonymous when nobody is logged in)."""
    context = context_of(carrier)
    user = context.user if context is not None else carrier.get("user")
    return user if isinstance(user, BaseUser) else ANONYMOUS_USER


def current_credentials(carrier: Mapping[str, Any]) -> AuthCredentials:
    """The credentials of an ASGI scope or a WSGI environ: :class:`TokenCredentials` when
    logged in, empty ``AuthCredentials`` otherwise."""
    context = context_of(carrier)
    auth = context.auth if context is not None else carrier.get("auth")
    return auth if isinstance(auth, AuthCredentials) else ANONYMOUS_AUTH


def logged_in_user(carrier: Mapping[str, Any]) -> OIDCUser | None:
    """The logged-in user, or ``None``."""
    user = current_user(carrier)
    return user if isinstance(user, OIDCUser) else None


def access_token(carrier: Mapping[str, Any]) -> str | None:
    """The current (renewed, if it was due) access token, or ``None`` when anonymous."""
    auth = current_credentials(carrier)
    return auth.access_token if isinstance(auth, TokenCredentials) else None
