"""The answers the middleware sends itself: redirects, errors, and the silent-iframe page.

:func:`error_reply` is the one place an error becomes an HTTP answer; the 401 of
an expired API request and the 405 of a route share its body format.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import html
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .errors import ProviderUnavailable, RenewalError

Headers = list[tuple[str, str]]

#: The ``type`` of every message the silent iframe posts to its parent.
SILENT_MESSAGE_TYPE = "renewal_middleware:silent"


@dataclasses.dataclass(frozen=True)
class Reply:
    """A complete response the middleware sends itself."""

    status: int
    headers: Headers
    body: bytes = b""


def wants_json(accept: str | None) -> bool:
    """Whether the client asked for JSON rather than a page."""
    return accept is not None and "application/json" in accept and "text/html" not in accept


def redirect(location: str, set_cookies: Sequence[str] = ()) -> Reply:
    headers = [("location", location), ("cache-control", "no-store")]
    headers += [("set-cookie", c) for c in set_cookies]
    return Reply(302, headers)


def error_reply(error: RenewalError, as_json: bool, set_cookies: Sequence[str] = (),
                status: int | None = None, headers: Iterable[tuple[str, str]] = (),
                home: str = "/") -> Reply:
    """``error`` as JSON (``{error, error_description}``) or as a short HTML page that
    links back to ``home`` (the app's start page, under its prefix)."""
    all_headers = [("cache-control", "no-store"), *headers]
    all_headers += [("set-cookie", c) for c in set_cookies]
    if isinstance(error, ProviderUnavailable) and error.retry_after:
        all_headers.append(("retry-after", str(int(error.retry_after))))
    if as_json:
        body = json.dumps({"error": error.code, "error_description": error.message}).encode()
        all_headers.append(("content-type", "application/json"))
    else:
        body = (
            "<!doctype html><meta charset=utf-8><title>Sign-in problem</title>"
            f"<h1>Sign-in problem</h1><p>{html.escape(error.message)}</p>"
            f'<p><a href="{html.escape(home)}">Back to the start page</a></p>'
        ).encode()
        all_headers.append(("content-type", "text/html; charset=utf-8"))
    return Reply(status or error.status, all_headers, body)


def unauthorized_reply(description: str) -> Reply:
    """The 401 of an API request whose access token expired and could not be renewed."""
    challenge = f'Bearer error="invalid_token", error_description="{description}"'
    return error_reply(RenewalError(description, code="invalid_token"), True, status=401,
                       headers=[("www-authenticate", challenge)])


def method_not_allowed(allowed: Iterable[str], as_json: bool, home: str = "/") -> Reply:
    """The 405 of one of the middleware's routes called with another method."""
    methods = ", ".join(sorted(allowed))
    error = RenewalError(f"This address accepts {methods} only.", code="method_not_allowed")
    return error_reply(error, as_json, status=405, headers=[("allow", methods)], home=home)


def silent_page(message: Mapping[str, Any], origin: str, set_cookies: Sequence[str]) -> Reply:
    """A page for a hidden iframe: post ``message`` to the parent, at ``origin`` only."""
    data = {"type": SILENT_MESSAGE_TYPE, **message}
    # JSON in a script: escape "<" so no value can close the script element.
    script = "parent.postMessage({},{});".format(
        json.dumps(data).replace("<", "\\u003c"), json.dumps(origin).replace("<", "\\u003c"))
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    body = f"<!doctype html><meta charset=utf-8><title>renewal</title><script>{script}</script>"
    headers = [
        ("content-type", "text/html; charset=utf-8"),
        ("cache-control", "no-store"),
        ("content-security-policy",
         f"default-src 'none'; script-src 'sha256-{digest}'; frame-ancestors 'self'"),
    ] + [("set-cookie", c) for c in set_cookies]
    return Reply(200, headers, body.encode())


def logout_confirmation(url: str, home: str = "/") -> Reply:
    """The page of a ``/logout`` that may come from another site: the user confirms."""
    body = (
        "<!doctype html><meta charset=utf-8><title>Log out?</title>"
        "<h1>Log out?</h1><p>Another page asked to log you out.</p>"
        f'<p><a href="{html.escape(url)}">Log out</a> · '
        f'<a href="{html.escape(home)}">Stay logged in</a></p>'
    ).encode()
    return Reply(200, [("content-type", "text/html; charset=utf-8"), ("cache-control", "no-store"),
                       ("content-security-policy", "default-src 'none'; frame-ancestors 'none'")],
                 body)
