"""``renewal-middleware check``: the settings against the real provider, one line per check.

Every check makes at most one request and turns what it sees into a :class:`Line`:
``✓`` passed, ``✗`` failed (with a fix), ``!`` a warning that does not fail.
"""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Mapping
from typing import Any, Literal
from urllib.parse import quote

import httpx
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from .config import Settings
from .oidc import ASYMMETRIC_ALGORITHMS

Status = Literal["ok", "fail", "warn"]
_MARKS: Mapping[Status, str] = {"ok": "✓", "fail": "✗", "warn": "!"}
#: A code no provider issued: the answer tells whether the client authenticated.
PROBE_CODE = "renewal-middleware-check-invalid-code"
PROBE_VERIFIER = "renewal-middleware-check-" + "x" * 24
PROBE_REFRESH_TOKEN = "renewal-middleware-check-invalid-refresh-token"
_ALGORITHMS = ASYMMETRIC_ALGORITHMS
_ASYMMETRIC_KTY = frozenset({"RSA", "EC", "OKP"})


@dataclasses.dataclass(frozen=True)
class Line:
    status: Status
    text: str
    fix: str | None = None

    def render(self) -> str:
        fix = f" — fix: {self.fix}" if self.fix else ""
        return f"{_MARKS[self.status]} {self.text}{fix}"


def ok(text: str) -> Line:
    return Line("ok", text)


def fail(text: str, fix: str | None = None) -> Line:
    return Line("fail", text, fix)


def warn(text: str) -> Line:
    return Line("warn", text)


def describe(exc: httpx.HTTPError) -> str:
    """An HTTP failure in a few words, without a traceback."""
    if isinstance(exc, httpx.TimeoutException):
        return "no answer in time"
    detail = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {detail}"


def get_json(http: httpx.Client, url: str) -> tuple[Any, str | None]:
    """GET ``url`` as JSON: ``(document, None)`` or ``(None, what went wrong)``."""
    try:
        response = http.get(url)
    except httpx.HTTPError as exc:
        return None, f"{url} is unreachable ({describe(exc)})"
    if response.status_code != 200:
        return None, f"{url} answered HTTP {response.status_code}"
    try:
        return response.json(), None
    except ValueError:
        return None, f"{url} did not answer JSON"


def check_discovery(http: httpx.Client, settings: Settings) -> tuple[list[Line], dict[str, Any]]:
    """Discovery reachable and naming the configured issuer; its document (or {})."""
    url = settings.issuer + "/.well-known/openid-configuration"
    doc, error = get_json(http, url)
    fix = "set RENEWAL_ISSUER to the issuer exactly as the provider names it"
    if error is not None or not isinstance(doc, dict):
        return [fail(f"discovery: {error or 'the document is not a JSON object'}", fix)], {}
    issuer = doc.get("issuer")
    if not isinstance(issuer, str) or issuer.rstrip("/") != settings.issuer:
        return [fail(f"discovery names issuer {issuer!r}, configured {settings.issuer!r}",
                     f"set RENEWAL_ISSUER={issuer}" if isinstance(issuer, str) else fix)], doc
    missing = [k for k in ("authorization_endpoint", "token_endpoint", "jwks_uri")
               if not isinstance(doc.get(k), str) or not doc.get(k)]
    if missing:
        return [fail(f"discovery lacks {', '.join(missing)}", "fix the provider's metadata")], doc
    return [ok(f"discovery at {url} names issuer {issuer}")], doc


def signing_keys(jwks: object) -> list[str]:
    """Descriptions (``RS256 kid=…``) of the asymmetric signing keys in a JWKS document."""
    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list):
        return []
    found = []
    for entry in jwks["keys"]:
        if not isinstance(entry, dict) or entry.get("kty") not in _ASYMMETRIC_KTY:
            continue
        alg = entry.get("alg")
        if entry.get("use", "sig") != "sig" or (alg is not None and alg not in _ALGORITHMS):
            continue
        try:
            KeySet.import_key_set({"keys": [entry]})
        except (JoseError, ValueError, TypeError, KeyError):
            continue
        found.append(f"{entry.get('alg', entry['kty'])} kid={entry.get('kid', '-')}")
    return found


def check_jwks(http: httpx.Client, doc: Mapping[str, Any]) -> list[Line]:
    url = doc.get("jwks_uri")
    if not isinstance(url, str):
        return []
    jwks, error = get_json(http, url)
    if error is not None:
        return [fail(f"JWKS: {error}", "the provider must publish its signing keys at jwks_uri")]
    keys = signing_keys(jwks)
    if not keys:
        return [fail(f"JWKS at {url} has no usable asymmetric signing key",
                     "sign ID tokens with RS256/ES256/EdDSA (never HS256 or none)")]
    return [ok(f"JWKS has {len(keys)} signing key(s): {', '.join(keys)}")]


def token_probe(http: httpx.Client, settings: Settings, url: str,
                params: Mapping[str, str]) -> tuple[int, str, str]:
    """POST a token request that must fail: ``(status, error, description)``.

    The client authenticates with the configured method, as the middleware does
    (``client_secret_basic`` form-encodes id and secret first, like authlib).
    """
    data = dict(params)
    headers: dict[str, str] = {"accept": "application/json"}
    secret = settings.client_secret.reveal()
    if settings.token_endpoint_auth_method == "client_secret_post":
        data.update(client_id=settings.client_id, client_secret=secret)
    else:
        pair = f"{quote(settings.client_id)}:{quote(secret)}".encode()
        headers["authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
    response = http.post(url, data=data, headers=headers)
    try:
        body = response.json()
    except ValueError:
        body = {}
    body = body if isinstance(body, dict) else {}
    return (response.status_code, str(body.get("error") or ""),
            str(body.get("error_description") or ""))


def check_client(http: httpx.Client, settings: Settings, doc: Mapping[str, Any]) -> list[Line]:
    """An authorization_code grant with a code no one issued: the client must authenticate."""
    url = doc.get("token_endpoint")
    if not isinstance(url, str):
        return []
    method = settings.token_endpoint_auth_method
    try:
        status, error, detail = token_probe(http, settings, url, {
            "grant_type": "authorization_code", "code": PROBE_CODE,
            "redirect_uri": settings.redirect_uri, "code_verifier": PROBE_VERIFIER})
    except httpx.HTTPError as exc:
        return [fail(f"token endpoint {url} is unreachable ({describe(exc)})",
                     "check the provider's token_endpoint and the network")]
    said = f"{error or 'HTTP ' + str(status)}{': ' + detail if detail else ''}"
    if error == "invalid_client" or status == 401:
        return [fail(f"client credentials rejected ({said})",
                     "check RENEWAL_CLIENT_ID and RENEWAL_CLIENT_SECRET, and that the client "
                     f"uses {method} (RENEWAL_TOKEN_ENDPOINT_AUTH_METHOD)")]
    if error == "invalid_grant" or (error == "invalid_request" and "code" in detail.lower()):
        return [ok(f"client {settings.client_id} authenticates with {method}")]
    if error == "unauthorized_client" or "grant type" in detail.lower():
        return [fail(f"client may not use the authorization_code grant ({said})",
                     "allow the authorization_code grant for this client at the provider")]
    return [fail(f"token endpoint answered unexpectedly ({said})",
                 "check the client's registration at the provider")]


def check_offline(http: httpx.Client, settings: Settings, doc: Mapping[str, Any],
                  *, probe: bool = True) -> list[Line]:
    """With ``offline_access``: the provider (and, when ``probe``, the client) must allow
    refresh tokens. Discovery is provider-wide; only the probe sees a per-client rule."""
    if "offline_access" not in settings.scopes:
        return [ok("scope asks for no offline_access: no refresh_token grant needed")]
    fix = ("enable refresh tokens (offline_access, refresh_token grant) at the provider, "
           "or drop offline_access from RENEWAL_SCOPE")
    lines = []
    scopes, grants = doc.get("scopes_supported"), doc.get("grant_types_supported")
    missing = [name for name, listed, wanted in (
        ("scope offline_access", scopes, "offline_access"),
        ("grant type refresh_token", grants, "refresh_token"),
    ) if isinstance(listed, list) and wanted not in listed]
    if missing:
        lines.append(fail(f"provider does not support {' nor '.join(missing)}", fix))
    url = doc.get("token_endpoint")
    if not probe:
        lines.append(warn("refresh_token grant not checked: the client did not authenticate"))
    elif isinstance(url, str):
        lines.append(probe_refresh(http, settings, url, fix))
    return lines or [ok("provider supports offline_access and the refresh_token grant")]


def probe_refresh(http: httpx.Client, settings: Settings, url: str, fix: str) -> Line:
    """A refresh_token grant with a token no one issued: is the grant open to this client?"""
    try:
        status, error, detail = token_probe(http, settings, url, {
            "grant_type": "refresh_token", "refresh_token": PROBE_REFRESH_TOKEN})
    except httpx.HTTPError as exc:
        return fail(f"refresh_token grant not checked ({describe(exc)})", fix)
    said = f"{error or 'HTTP ' + str(status)}{': ' + detail if detail else ''}"
    if error == "invalid_grant":
        return ok(f"client {settings.client_id} may use the refresh_token grant (offline_access)")
    if error == "invalid_client" or status == 401:
        return warn("refresh_token grant not checked: the client did not authenticate")
    if error in ("unauthorized_client", "unsupported_grant_type") or "grant type" in detail:
        return fail(f"client {settings.client_id} may not use the refresh_token grant ({said})",
                    fix)
    return warn(f"refresh_token grant not confirmed: the provider answered {said}")


def check_logout(doc: Mapping[str, Any]) -> list[Line]:
    lines = []
    if isinstance(doc.get("end_session_endpoint"), str):
        lines.append(ok("end_session_endpoint present: logout also ends the provider session"))
    else:
        lines.append(warn("no end_session_endpoint: logout is only local, the provider "
                          "session stays and the next login may not ask for a password"))
    if isinstance(doc.get("revocation_endpoint"), str):
        lines.append(ok("revocation_endpoint present: logout revokes the refresh token"))
    else:
        lines.append(warn("no revocation_endpoint: refresh tokens are not revoked at logout "
                          "and stay valid until they expire"))
    return lines


def registration(settings: Settings) -> list[str]:
    """The exact URIs to register for the client at the provider."""
    return [
        f"Register these for client {settings.client_id} at the provider:",
        f"  redirect URIs:            {settings.redirect_uri}",
        f"                            {settings.silent_redirect_uri}",
        f"  post-logout redirect URI: {settings.post_logout_redirect_uri}",
        f"  back-channel logout URI:  {settings.base_url + settings.backchannel_logout_path}",
    ]
