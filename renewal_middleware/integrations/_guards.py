"""What every integration's guard answers an anonymous request; shared, framework-free.

An API call gets ``401`` with ``WWW-Authenticate: Bearer``; a page load (as the core tells
one, :func:`~renewal_middleware.requests.is_navigation`) a ``302`` to the middleware's login
route with ``return_to`` set to the requested path and query, as the core itself builds it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar
from urllib.parse import quote, urlencode

from ..config import Settings
from ..requests import external_target, safe_return_to

T = TypeVar("T")

#: The login route when the wrapping middleware cannot be found.
DEFAULT_LOGIN_PATH = "/login"
#: The challenge of an anonymous API call (RFC 6750 §3: no error code for a missing token).
CHALLENGE = "Bearer"
#: The status of the redirect to the login route, as the core's own redirects.
REDIRECT_STATUS = 302
#: The headers of both answers, besides the challenge or the location.
NO_STORE = {"Cache-Control": "no-store"}


def login_location(login_url: str, target: str) -> str:
    """``login_url`` with ``return_to`` set to ``target`` (a same-origin path, else ``/``)."""
    return f"{login_url}?{urlencode({'return_to': safe_return_to(target)})}"


def asgi_target(scope: Mapping[str, Any]) -> str:
    """The path and query of an ASGI request, as the middleware reads them for ``return_to``."""
    return external_target(scope)


def wsgi_target(environ: Mapping[str, Any]) -> str:
    """The same for a WSGI environ (PEP 3333 paths are latin-1 decoded bytes: quote them)."""
    raw = (environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")).encode("latin-1")
    path = quote(raw, safe="/;=,:@!$&'()*+~-._") or "/"
    query = environ.get("QUERY_STRING", "")
    return path + ("?" + query if query else "")


def login_url_of(settings: Settings | None) -> str:
    """The login route, as the browser sees it, of the middleware with ``settings`` (``None``:
    not found, the default ``/login``)."""
    return DEFAULT_LOGIN_PATH if settings is None else settings.public(settings.login_path)


def find_layer(app: object, kind: type[T]) -> T | None:
    """The first ``kind`` in a chain of middlewares linked by ``.app`` (``ProxyFix``,
    Starlette's middlewares and the renewal middlewares all keep the app they wrap there)."""
    layer: object = app
    for _ in range(16):
        if isinstance(layer, kind):
            return layer
        layer = getattr(layer, "app", None)
        if layer is None:
            break
    return None
