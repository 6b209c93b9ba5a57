"""A hostile OpenID provider for the ID-token attack tests: a Starlette app served by ``serve()``.

It behaves like a minimal, correct code-flow OP (discovery, ``/authorize`` that redirects straight
back with a code, ``/token`` with PKCE and client authentication, ``/jwks``, ``/userinfo``), except
that the test decides what the ID token in each token response looks like::

    op.scenario = lambda claims, keys: keys.sign({**claims, "iss": "https://evil.example"})

A scenario gets a copy of the claims a correct token would carry (``iss``, ``sub``, ``aud``,
``exp``, ``iat``, ``auth_time``, ``nonce``, ``at_hash``, ``name``) and the OP's :class:`OPKeys`,
and returns the ``id_token`` string (``None`` leaves it out). ``op.refresh_scenario`` does the
same for the refresh_token grant. The test can also rotate the signing key and change what
``/jwks`` publishes (:class:`OPKeys`), make ``/token`` fail (:attr:`HostileOP.token_fault`),
make ``/authorize`` name another issuer (:attr:`HostileOP.authorize_iss`) or ``/userinfo``
another subject (:attr:`HostileOP.userinfo_sub`), and it reads the counters (``jwks_fetches``,
``token_calls``, ...) and :attr:`HostileOP.issued`, every code and token handed out, to look
for leaks. ``/attacker-jwks`` serves :attr:`OPKeys.foreign`, for tokens with a ``jku`` header.

All JOSE is joserfc's. Made by hand, because they are the attacks: :func:`unsigned_token`
(``alg: none``) and :func:`replace_payload` (a signed token whose payload is swapped).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import hashlib
import hmac
import itertools
import json
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode

from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from tests.integration.servers import serve

#: Given the claims of a correct ID token and the OP's keys, the ``id_token`` to answer.
Scenario = Callable[[dict[str, Any], "OPKeys"], "str | None"]

#: What ``/token`` can do instead of answering a token response.
TOKEN_FAULTS = frozenset({"invalid_grant", "500", "html", "hang"})

ACCESS_TOKEN_SECONDS = 300
ID_TOKEN_SECONDS = 300
_kids = itertools.count(1)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def new_rsa_key() -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": f"hostile-{next(_kids)}", "use": "sig"})


@functools.cache
def spare_key(name: str) -> RSAKey:
    """A key generated once per test run under ``name``: RSA generation takes 0.1 s or more.

    Tests that each start a fresh middleware may share keys; a test that needs two distinct
    keys asks for two names.
    """
    return new_rsa_key()


def at_hash(access_token: str) -> str:
    """OIDC Core §3.1.3.6: left half of SHA-256 of the access token, base64url (for RS256)."""
    return b64url(hashlib.sha256(access_token.encode("ascii")).digest()[:16])


def unsigned_token(claims: dict[str, Any], header: dict[str, Any] | None = None) -> str:
    """An ``alg: none`` JWS: base64url header and payload, empty signature. Only for the attack."""
    head = {"alg": "none", "typ": "JWT", **(header or {})}
    return (f"{b64url(json.dumps(head).encode())}."
            f"{b64url(json.dumps(claims).encode())}.")


def replace_payload(token: str, claims: dict[str, Any]) -> str:
    """``token`` with its payload swapped for ``claims`` and the original signature kept."""
    header, _, signature = token.split(".")
    return f"{header}.{b64url(json.dumps(claims).encode())}.{signature}"


class OPKeys:
    """The OP's signing keys: the current one, every one it ever had, and what /jwks publishes."""

    def __init__(self, initial: RSAKey) -> None:
        self.current = initial
        self.history = [self.current]
        self.published = [self.current]
        #: Keys never in /jwks; /attacker-jwks serves them (the target of a ``jku`` header).
        self.foreign: list[RSAKey] = []

    @property
    def previous(self) -> RSAKey:
        """The key that was current before the last :meth:`rotate`."""
        return self.history[-2]

    def rotate(self, *, keep_old: bool = True) -> RSAKey:
        """Sign with a new key from now on; publish it (with the old ones when ``keep_old``)."""
        new = spare_key(f"rotation-{len(self.history)}")
        self.history.append(new)
        self.current = new
        self.published = [new, *self.published] if keep_old else [new]
        return new

    def unpublish(self, key: RSAKey) -> None:
        self.published = [k for k in self.published if k is not key]

    def jwks(self) -> dict[str, Any]:
        return dict(KeySet(list(self.published)).as_dict(private=False))

    def sign(self, claims: dict[str, Any], key: RSAKey | None = None,
             header: dict[str, Any] | None = None) -> str:
        """An RS256 JWT of ``claims`` signed with ``key`` (the current key by default)."""
        key = key or self.current
        return jwt.encode({"alg": "RS256", "typ": "JWT", "kid": key.kid, **(header or {})},
                          claims, key)


def correct_token(claims: dict[str, Any], keys: OPKeys) -> str:
    """The default scenario: a correct RS256 ID token signed with the current key."""
    return keys.sign(claims)


@dataclass
class _Grant:
    client_id: str
    redirect_uri: str
    nonce: str | None
    code_challenge: str | None
    sub: str


class HostileOP:
    """State and routes of the hostile provider; see the module docstring."""

    def __init__(self, client_id: str, client_secret: str) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.app = Starlette(routes=[
            Route("/.well-known/openid-configuration", self._discovery),
            Route("/authorize", self._authorize),
            Route("/token", self._token, methods=["POST"]),
            Route("/jwks", self._jwks),
            Route("/attacker-jwks", self._attacker_jwks),
            Route("/userinfo", self._userinfo),
            Route("/revoke", self._revoke, methods=["POST"]),
            Route("/end-session", self._end_session),
        ])
        self.base_url = ""
        self._initial_key = spare_key("initial")
        self._release = threading.Event()
        self.reset()

    @property
    def issuer(self) -> str:
        return self.base_url

    def reset(self, clock: Callable[[], float] = time.time) -> None:
        """Back to a correct OP with its first key and zeroed counters (between tests)."""
        self._release.set()  # let a hanging token request of the previous test finish
        self._release = threading.Event()
        self.clock = clock
        self.keys = OPKeys(self._initial_key)
        self.scenario: Scenario = correct_token
        self.refresh_scenario: Scenario = correct_token
        self.sub = "alice"
        #: When set, /userinfo names this subject instead of the token's.
        self.userinfo_sub: str | None = None
        self.token_fault: str | None = None
        self.hang_seconds = 5.0
        self.authorize_iss: str | None = None
        self.id_token_algs: list[str] = ["RS256"]
        self.discovery_fetches = 0
        self.jwks_fetches = 0
        self.attacker_jwks_fetches = 0
        self.authorizations = 0
        self.token_calls = 0
        self.refresh_calls = 0
        self.userinfo_calls = 0
        #: Every code, access token, refresh token and ID token handed out.
        self.issued: list[str] = []
        self._grants: dict[str, _Grant] = {}
        self._access: dict[str, str] = {}
        self._refresh: dict[str, str] = {}

    def release(self) -> None:
        """End a token request that ``token_fault = "hang"`` holds."""
        self._release.set()

    # -- endpoints -----------------------------------------------------------------------

    async def _discovery(self, request: Request) -> Response:
        self.discovery_fetches += 1
        base = self.base_url
        return JSONResponse({
            "issuer": base,
            "authorization_endpoint": base + "/authorize",
            "token_endpoint": base + "/token",
            "jwks_uri": base + "/jwks",
            "userinfo_endpoint": base + "/userinfo",
            "end_session_endpoint": base + "/end-session",
            "revocation_endpoint": base + "/revoke",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": self.id_token_algs,
            "token_endpoint_auth_methods_supported": ["client_secret_basic",
                                                      "client_secret_post"],
            "code_challenge_methods_supported": ["S256"],
            "authorization_response_iss_parameter_supported": True,
        })

    async def _jwks(self, request: Request) -> Response:
        self.jwks_fetches += 1
        return JSONResponse(self.keys.jwks())

    async def _attacker_jwks(self, request: Request) -> Response:
        self.attacker_jwks_fetches += 1
        return JSONResponse(KeySet(list(self.keys.foreign)).as_dict(private=False))

    async def _authorize(self, request: Request) -> Response:
        self.authorizations += 1
        q = request.query_params
        redirect_uri = q.get("redirect_uri")
        if q.get("client_id") != self.client_id or not redirect_uri:
            return JSONResponse({"error": "invalid_request"}, status_code=400)
        code = secrets.token_urlsafe(24)
        self.issued.append(code)
        challenge = q.get("code_challenge") if q.get("code_challenge_method") == "S256" else None
        self._grants[code] = _Grant(self.client_id, redirect_uri, q.get("nonce"), challenge,
                                    self.sub)
        params = {"code": code, "state": q.get("state", ""),
                  "iss": self.authorize_iss if self.authorize_iss is not None else self.issuer}
        separator = "&" if "?" in redirect_uri else "?"
        return RedirectResponse(redirect_uri + separator + urlencode(params), status_code=302)

    async def _token(self, request: Request) -> Response:
        self.token_calls += 1
        form = await _form(request)
        if not self._client_authenticated(request, form.get("client_id"),
                                          form.get("client_secret")):
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        fault = await self._fault()
        if fault is not None:
            return fault
        grant_type = form.get("grant_type")
        if grant_type == "authorization_code":
            grant = self._grants.pop(form.get("code", ""), None)
            verifier = form.get("code_verifier", "")
            if (grant is None or form.get("redirect_uri") != grant.redirect_uri
                    or grant.code_challenge is None
                    or b64url(hashlib.sha256(verifier.encode()).digest()) != grant.code_challenge):
                return JSONResponse({"error": "invalid_grant"}, status_code=400)
            return self._token_response(grant.sub, grant.nonce, self.scenario)
        if grant_type == "refresh_token":
            self.refresh_calls += 1
            sub = self._refresh.pop(form.get("refresh_token", ""), None)
            if sub is None:
                return JSONResponse({"error": "invalid_grant"}, status_code=400)
            return self._token_response(sub, None, self.refresh_scenario)
        return JSONResponse({"error": "unsupported_grant_type"}, status_code=400)

    async def _fault(self) -> Response | None:
        fault = self.token_fault
        if fault is None:
            return None
        assert fault in TOKEN_FAULTS, fault
        if fault == "invalid_grant":
            return JSONResponse({"error": "invalid_grant",
                                 "error_description": "the code is not valid"}, status_code=400)
        if fault == "500":
            return JSONResponse({"error": "server_error"}, status_code=500)
        if fault == "html":
            return HTMLResponse("<!doctype html><title>Gateway</title><h1>Please wait</h1>")
        # "hang": answer only when released or after hang_seconds, long after the RP gave up.
        release, deadline = self._release, time.monotonic() + self.hang_seconds
        while not release.is_set() and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        return JSONResponse({"error": "temporarily_unavailable"}, status_code=503)

    def _client_authenticated(self, request: Request, form_id: str | None,
                              form_secret: str | None) -> bool:
        header = request.headers.get("authorization", "")
        if header.lower().startswith("basic "):
            try:
                decoded = base64.b64decode(header[6:]).decode()
            except (binascii.Error, UnicodeDecodeError):
                return False
            client_id, _, secret = decoded.partition(":")
            client_id, secret = unquote(client_id), unquote(secret)
        else:
            client_id, secret = form_id or "", form_secret or ""
        return client_id == self.client_id and hmac.compare_digest(
            secret.encode(), self.client_secret.encode())

    def _token_response(self, sub: str, nonce: str | None, scenario: Scenario) -> Response:
        now = int(self.clock())
        access_token = secrets.token_urlsafe(32)
        refresh_token = secrets.token_urlsafe(32)
        self._access[access_token] = sub
        self._refresh[refresh_token] = sub
        claims: dict[str, Any] = {
            "iss": self.issuer, "sub": sub, "aud": self.client_id,
            "exp": now + ID_TOKEN_SECONDS, "iat": now, "auth_time": now,
            "at_hash": at_hash(access_token), "name": sub.capitalize(),
        }
        if nonce is not None:
            claims["nonce"] = nonce
        id_token = scenario(dict(claims), self.keys)
        body: dict[str, Any] = {
            "access_token": access_token, "token_type": "Bearer",
            "expires_in": ACCESS_TOKEN_SECONDS, "refresh_token": refresh_token,
            "scope": "openid profile email offline_access",
        }
        self.issued += [access_token, refresh_token]
        if id_token is not None:
            body["id_token"] = id_token
            self.issued.append(id_token)
        return JSONResponse(body, headers={"cache-control": "no-store"})

    async def _userinfo(self, request: Request) -> Response:
        self.userinfo_calls += 1
        header = request.headers.get("authorization", "")
        sub = self._access.get(header[7:]) if header.lower().startswith("bearer ") else None
        if sub is None:
            return JSONResponse({"error": "invalid_token"}, status_code=401,
                                headers={"www-authenticate": 'Bearer error="invalid_token"'})
        sub = self.userinfo_sub or sub
        return JSONResponse({"sub": sub, "name": sub.capitalize()})

    async def _revoke(self, request: Request) -> Response:
        form = await _form(request)
        self._refresh.pop(form.get("token", ""), None)
        return Response(status_code=200)

    async def _end_session(self, request: Request) -> Response:
        target = request.query_params.get("post_logout_redirect_uri")
        if target:
            return RedirectResponse(target, status_code=302)
        return HTMLResponse("signed out")


async def _form(request: Request) -> dict[str, str]:
    """The urlencoded body (Starlette's own form parsing needs python-multipart)."""
    return dict(parse_qsl((await request.body()).decode("utf-8", "replace"),
                          keep_blank_values=True))


@contextmanager
def hostile_op(client_id: str, client_secret: str) -> Iterator[HostileOP]:
    """Start a :class:`HostileOP` under uvicorn on a free 127.0.0.1 port."""
    op = HostileOP(client_id, client_secret)
    with serve(op.app) as url:
        op.base_url = url
        try:
            yield op
        finally:
            op.release()
