"""What the core reads of a request, and the judgements it makes on one.

A small module on purpose: the drivers adapt their own request objects (ASGI
scope, WSGI environ) to :class:`Request`, and the framework integrations import
:func:`is_navigation` from here without pulling in the core.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol
from urllib.parse import parse_qsl, quote, urlsplit

#: The largest request body the drivers read, for the back-channel logout route (a logout
#: token is ~1 KB).
MAX_BODY = 64 * 1024

#: A Cookie header as a driver has it: bytes from an ASGI scope, str from a WSGI environ.
RawCookie = str | bytes


class Request(Protocol):
    """What the core reads of a request; each driver adapts its own (scope, environ)."""

    method: str
    path: str
    query_string: str
    #: The body, read by the drivers for the back-channel logout route only (else empty).
    body: bytes

    def header(self, name: str) -> str | None:
        """The value of header ``name`` (lower case), or ``None``."""

    def target(self) -> str:
        """The path and query as the client sent them, to come back to after a redirect."""


def parse_query(query_string: str) -> dict[str, str]:
    """The query's parameters; a repeated name keeps its last value."""
    return dict(parse_qsl(query_string, keep_blank_values=True))


def is_navigation(method: str, sec_fetch_mode: str | None, accept: str | None,
                  requested_with: str | None) -> bool:
    """Whether a request is a top-level page load a redirect can be answered to."""
    if method != "GET" or requested_with:
        return False
    if sec_fetch_mode is not None:
        return sec_fetch_mode == "navigate"
    return accept is not None and "text/html" in accept


def request_is_navigation(request: Request) -> bool:
    """:func:`is_navigation` of a :class:`Request`."""
    return is_navigation(request.method, request.header("sec-fetch-mode"),
                         request.header("accept"), request.header("x-requested-with"))


def safe_return_to(value: str | None) -> str:
    """``value`` when it is a relative path on this origin, else ``/``."""
    if not value or not value.startswith("/") or value.startswith("//"):
        return "/"
    if "\\" in value or any(ord(c) < 0x21 or ord(c) == 0x7F for c in value):
        return "/"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return "/"
    if not value.isascii():
        # A Location header carries ASCII: percent-encode the rest, as a browser would.
        value = quote(value, safe="/?#&=%:@!$'()*+,;~-._")
    return value


def app_path(scope: Mapping[str, Any]) -> str:
    """The request's path within the app: ``path`` without the ``root_path`` it is mounted
    at (servers and frameworks that follow the ASGI spec include it in ``path``)."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root) and path[len(root):len(root) + 1] in ("", "/"):
        return path[len(root):] or "/"
    return path


def external_target(scope: Mapping[str, Any]) -> str:
    """The path and query as the browser sent them, to come back to: under ``root_path``
    even when a proxy stripped it before the server (``uvicorn --root-path``)."""
    raw = scope.get("raw_path")
    path = raw.decode("latin-1") if raw else quote(scope["path"])
    root = scope.get("root_path", "")
    if root and not (path.startswith(root) and path[len(root):len(root) + 1] in ("", "/")):
        path = root + path
    query = scope.get("query_string", b"").decode("latin-1")
    return path + ("?" + query if query else "")
