"""What a page's script gets: the session endpoint's answer and the renewal script itself.

``GET /session`` tells a page whether it is logged in, who the user is, when the
access token expires and when the server starts renewing it, and how it will be
renewed: by the server on the next request (there is a refresh token) or by a hidden
``prompt=none`` iframe (there is none). It never carries a token.

``GET /renewal.js`` serves ``static/renewal.js``, which schedules those renewals for
every open tab (see README). Its ETag is a hash of its content; a URL carrying that
hash (:attr:`RenewalScript.url`) may be cached for a year.
"""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from typing import Any

from .config import Settings
from .context import Serve
from .csrf import CsrfPolicy
from .renewal import renewal_starts
from .replies import Reply
from .requests import parse_query
from .session import EXPIRY_UNKNOWN, Session

#: Claims a page has no use for (the provider's session id is an identifier, not a fact).
_HIDDEN_CLAIMS = frozenset({"sid"})


class SessionEndpoint:
    """Builds the answers of ``GET /session``."""

    def __init__(self, settings: Settings, csrf: CsrfPolicy) -> None:
        self.settings = settings
        self.csrf = csrf
        self._silent_url = settings.public(settings.silent_path) + "?mode=iframe"
        self._login_url = settings.public(settings.login_path)
        self._logout_url = settings.public(settings.logout_path)

    def reply(self, serve: Serve, set_cookies: tuple[str, ...], expired: Session | None,
              now: float) -> Reply:
        """The answer for a request served with ``serve`` (after any renewal); ``expired``:
        the request carried a session whose token expired and could not be renewed now."""
        view = serve.view
        body: dict[str, Any]
        if view is None:
            body = {"authenticated": False, "login_url": self._login_url, "now": now}
            if expired is not None:
                body.update(expired=True, renewal=_renewal(expired),
                            silent_url=self._silent_url)
            return _json(body, set_cookies)
        session = view.session
        known = session.expires_at != EXPIRY_UNKNOWN
        csrf = ({"name": self.csrf.header, "value": "1"} if self.csrf.enabled else None)
        body = {
            "authenticated": True,
            "user": {k: v for k, v in session.claims.items() if k not in _HIDDEN_CLAIMS},
            "expires_at": session.expires_at,
            "renew_at": renewal_starts(session, self.settings.grace_seconds) if known else 0,
            "now": now,
            "renewal": _renewal(session),
            "silent_url": self._silent_url,
            "logout_url": f"{self._logout_url}?t={self.csrf.logout_token(session.id)}",
            "csrf_header": csrf,
        }
        return _json(body, set_cookies)


def _renewal(session: Session) -> str:
    """How the session is renewed: by the server's grant, or by the page's hidden iframe."""
    return "refresh" if session.refresh_token else "iframe"


def _json(body: dict[str, Any], set_cookies: tuple[str, ...]) -> Reply:
    headers = [("content-type", "application/json"), ("cache-control", "no-store"),
               ("vary", "cookie")]
    headers += [("set-cookie", c) for c in set_cookies]
    return Reply(200, headers, json.dumps(body, separators=(",", ":")).encode())


class RenewalScript:
    """``GET /renewal.js``: the script, revalidated by ETag or cached for good by hash."""

    def __init__(self, settings: Settings) -> None:
        self.body = resources.files(__package__).joinpath("static/renewal.js").read_bytes()
        self.version = hashlib.sha256(self.body).hexdigest()[:16]
        self.etag = f'"{self.version}"'
        #: The script's URL with its hash: what a page should load.
        self.url = f"{settings.public(settings.script_path)}?v={self.version}"

    def reply(self, query_string: str, if_none_match: str | None) -> Reply:
        if parse_query(query_string).get("v") == self.version:
            cache = "public, max-age=31536000, immutable"
        else:
            cache = "no-cache"  # revalidate: the ETag makes that a 304
        headers = [("cache-control", cache), ("etag", self.etag),
                   ("x-content-type-options", "nosniff")]
        if if_none_match is not None and self.etag in if_none_match:
            return Reply(304, headers)
        headers.append(("content-type", "text/javascript; charset=utf-8"))
        return Reply(200, headers, self.body)
