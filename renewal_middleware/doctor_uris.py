"""``renewal-middleware check``: are the app's redirect URIs registered at the provider? And
every check, in order (:func:`run_checks`).

The provider is asked, without a user: an authorization request with ``prompt=none`` is sent
back to a registered redirect URI (with ``login_required``, say) and refused with an error page
for any other; an end-session request with an unregistered ``post_logout_redirect_uri`` is
refused the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from .config import Settings
from .doctor import (
    Line,
    check_client,
    check_discovery,
    check_jwks,
    check_logout,
    check_offline,
    describe,
    fail,
    ok,
    warn,
)


def check_redirect_uris(http: httpx.Client, settings: Settings, doc: Mapping[str, Any]
                        ) -> list[Line]:
    url = doc.get("authorization_endpoint")
    if not isinstance(url, str):
        return [fail("the provider publishes no authorization_endpoint",
                     "check RENEWAL_ISSUER: it must be an OpenID provider")]
    return [_probe_redirect(http, settings, url, uri)
            for uri in (settings.redirect_uri, settings.silent_redirect_uri)]


def _probe_redirect(http: httpx.Client, settings: Settings, url: str, uri: str) -> Line:
    params = {"client_id": settings.client_id, "redirect_uri": uri, "response_type": "code",
              "scope": "openid", "prompt": "none", "state": "renewal-middleware-check",
              "code_challenge": "x" * 43, "code_challenge_method": "S256"}
    try:
        answer = http.get(url, params=params, follow_redirects=False)
    except httpx.HTTPError as exc:
        return fail(f"authorization endpoint {url} is unreachable ({describe(exc)})",
                    "check the provider's authorization_endpoint and the network")
    location = answer.headers.get("location", "")
    if answer.is_redirect and location.startswith(uri):
        return ok(f"redirect URI {uri} is registered")
    if "redirect_uri" in answer.text or answer.status_code == 400:
        return fail(f"redirect URI {uri} is not registered (HTTP {answer.status_code})",
                    f"register {uri} as a redirect URI of client {settings.client_id}")
    return warn(f"redirect URI {uri}: the provider answered HTTP {answer.status_code} "
                "without sending the browser back; check it is registered")


def check_post_logout_uri(http: httpx.Client, settings: Settings, doc: Mapping[str, Any]
                          ) -> list[Line]:
    url = doc.get("end_session_endpoint")
    if not isinstance(url, str):
        return []
    uri = settings.post_logout_redirect_uri
    try:
        answer = http.get(url, params={"client_id": settings.client_id,
                                       "post_logout_redirect_uri": uri},
                          follow_redirects=False)
    except httpx.HTTPError as exc:
        return [fail(f"end-session endpoint {url} is unreachable ({describe(exc)})",
                     "check the provider's end_session_endpoint and the network")]
    if answer.status_code < 400:
        return [ok(f"post-logout redirect URI {uri} is accepted")]
    return [fail(f"post-logout redirect URI {uri} is not registered (HTTP {answer.status_code})",
                 f"register {uri} as a post-logout redirect URI of client "
                 f"{settings.client_id}")]


def run_checks(settings: Settings, http: httpx.Client) -> list[Line]:
    """Every check in order; later ones are skipped when discovery gave nothing."""
    lines, doc = check_discovery(http, settings)
    if not doc:
        return lines
    lines += check_jwks(http, doc)
    client = check_client(http, settings, doc)
    lines += client
    authenticated = not any(line.status == "fail" for line in client)
    lines += check_offline(http, settings, doc, probe=authenticated)
    lines += check_redirect_uris(http, settings, doc)
    return lines + check_logout(doc) + check_post_logout_uri(http, settings, doc)
