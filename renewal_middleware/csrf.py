"""Requests another site could forge: the CSRF header, the logout link, and the relaxed profile.

The session cookie is ``SameSite=Lax``, so another *site* cannot send it with a POST.
But another origin of the same site (a sibling subdomain, another port) can, and an
older browser may not honour SameSite. So, as the OAuth browser-based-apps BCP
recommends for a token-mediating backend, an unsafe request of a session must carry a
static custom header (``X-CSRF: 1``): a cross-origin page cannot add one without a
CORS preflight that the app does not answer. A same-origin HTML form (a top-level
navigation) cannot add headers, so it is recognised by its Fetch metadata instead.

``/logout`` is a GET link in most apps, which a cross-site link could follow: it ends a
session only for a same-origin request or with the session's own logout token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging

from .config import Settings
from .replies import Reply
from .requests import Request

logger = logging.getLogger("renewal_middleware")

#: Methods that must not change anything (RFC 9110 §9.2.1): never checked.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
#: What an HTML form can send: the only bodies of a navigation.
_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data", "text/plain")


class CsrfPolicy:
    """Decides which requests of a session might be forged, and mints logout tokens."""

    def __init__(self, settings: Settings) -> None:
        self.enabled = settings.csrf_protection
        self.header = settings.csrf_header
        self._header = settings.csrf_header.lower()
        self._origin = settings.origin
        # One key per secret key, newest first, kept apart from the cookies' keys.
        self._keys = [hashlib.sha256(b"renewal.logout\x00" + k.reveal().encode()).digest()
                      for k in settings.secret_keys]

    def refuses(self, request: Request) -> bool:
        """Whether an app request carrying a valid session must be refused."""
        if not self.enabled or request.method in SAFE_METHODS:
            return False
        return not (request.header(self._header) or self._same_origin_form(request))

    def _same_origin_form(self, request: Request) -> bool:
        site = request.header("sec-fetch-site")
        if site is not None:
            return site == "same-origin" and request.header("sec-fetch-mode") == "navigate"
        # A browser without Fetch metadata still sends Origin with a form's POST.
        content_type = (request.header("content-type") or "").split(";")[0].strip().lower()
        return request.header("origin") == self._origin and content_type in _FORM_TYPES

    def refusal(self, request: Request) -> Reply:
        """The 403 of a request :meth:`refuses`, naming the header that would pass."""
        logger.warning("%s %s refused: no %s header (cross-site request?)", request.method,
                       request.path, self.header)
        body = json.dumps({
            "error": "csrf_header_missing",
            "error_description": f"Requests that change something must carry the header "
                                 f"{self.header}: 1 (renewal.js adds it to its fetch).",
            "header": self.header,
        }).encode()
        return Reply(403, [("content-type", "application/json"), ("cache-control", "no-store")],
                     body)

    # -- logout ------------------------------------------------------------------------------

    def logout_token(self, session_id: str) -> str:
        """The value of ``t`` in the session's logout link: only its own pages know it."""
        return self._mint(self._keys[0], session_id)

    def logout_allowed(self, request: Request, session_id: str, token: str | None) -> bool:
        """Whether a ``/logout`` request surely comes from the app (or the user) itself."""
        if token and any(hmac.compare_digest(token, self._mint(key, session_id))
                         for key in self._keys):
            return True
        if request.header("sec-fetch-site") in ("same-origin", "none"):
            return True  # a link of the app's own pages, or typed by the user
        return bool(request.header(self._header))

    @staticmethod
    def _mint(key: bytes, session_id: str) -> str:
        digest = hmac.new(key, session_id.encode(), hashlib.sha256).digest()[:18]
        return base64.urlsafe_b64encode(digest).decode()


def relaxations(settings: Settings) -> list[str]:
    """What ``settings`` gives up of the default cookie and CSRF profile, one line each."""
    found = []
    if not settings.encrypt_cookies:
        found.append("encrypt_cookies is off: the browser can read the tokens in cookies")
    if settings.cookie_samesite == "none":
        found.append("cookie_samesite is 'none': other sites' requests carry the session")
    if settings.cookie_domain:
        found.append(f"cookie_domain is {settings.cookie_domain!r}: every host under it "
                     "receives the session (and can set one)")
    if settings.cookie_path != "/":
        found.append("cookie_path is not '/': the session cookie cannot be __Host-")
    if settings.secure_cookies and not settings.cookie_host_prefix:
        found.append("cookie_host_prefix is off: the session cookie is not __Host-")
    if not settings.csrf_protection:
        found.append(f"csrf_protection is off: unsafe requests need no {settings.csrf_header} "
                     "header (use the framework's own CSRF tokens)")
    return found


def warn_relaxations(settings: Settings) -> None:
    """Log each relaxation once, as the middleware starts."""
    for relaxation in relaxations(settings):
        logger.warning("weaker than the default profile: %s", relaxation)
