"""Helpers of the unit tests: settings, a fake clock, ID tokens, flow driving, cookie parsing.

Nothing here touches the network: the flows are generators that yield effects,
and the tests answer them by hand.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable, Generator
from typing import Any

from joserfc import jwt
from joserfc.jwk import RSAKey

from renewal_middleware.config import Settings
from renewal_middleware.flows import Flows
from renewal_middleware.oidc import GetJSON, RevokeRequest, TokenRequest, UserInfoRequest
from renewal_middleware.session import Session
from renewal_middleware.stores.base import SyncStore
from renewal_middleware.stores.effects import (
    AwaitRelease,
    Bury,
    Claim,
    ReadLineage,
    ReleaseLock,
    TakeLock,
    WriteLineage,
    perform,
)
from tests.set_cookie import set_cookie_pairs as set_cookie_pairs

ISSUER = "https://op.example"
BASE_URL = "https://app.example"
CLIENT_ID = "client-1"
CLIENT_SECRET = "client-secret-value"
KEY_A = "key-a-0123456789abcdefghijklmnopqrstuvwxyz"
KEY_B = "key-b-0123456789abcdefghijklmnopqrstuvwxyz"
KEY_C = "key-c-0123456789abcdefghijklmnopqrstuvwxyz"
T0 = 1_700_000_000.0

DISCOVERY: dict[str, Any] = {
    "issuer": ISSUER,
    "authorization_endpoint": ISSUER + "/auth",
    "token_endpoint": ISSUER + "/token",
    "jwks_uri": ISSUER + "/jwks",
    "userinfo_endpoint": ISSUER + "/me",
    "revocation_endpoint": ISSUER + "/revoke",
    "end_session_endpoint": ISSUER + "/session/end",
    "id_token_signing_alg_values_supported": ["RS256"],
}
DISCOVERY_URL = ISSUER + "/.well-known/openid-configuration"


class FakeClock:
    """A clock the tests move by hand: ``clock()`` is the time, ``advance`` moves it."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def make_settings(**overrides: Any) -> Settings:
    """Valid settings from keyword arguments only (an empty environment)."""
    values: dict[str, Any] = {
        "issuer": ISSUER,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "secret_keys": [KEY_A],
        "base_url": BASE_URL,
        "store": "memory",
    }
    values.update(overrides)
    return Settings.load(environ={}, **values)


def make_session(now: float = T0, *, expires_in: int | None = 3600,
                 refresh_token: str | None = "rt-1", **changes: Any) -> Session:
    fields: dict[str, Any] = {
        "id": "sid-1",
        "access_token": "at-1",
        "expires_at": int(now) + expires_in if expires_in is not None else 0,
        "obtained_at": int(now),
        "refresh_token": refresh_token,
        "id_token": "id-token-1",
        "claims": {"sub": "alice", "name": "Alice"},
        "scope": "openid profile",
    }
    fields.update(changes)
    return Session(**fields)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def s256(verifier: str) -> str:
    """The PKCE S256 challenge of ``verifier`` (RFC 7636 §4.2), computed independently."""
    return b64url(hashlib.sha256(verifier.encode("ascii")).digest())


def unsigned_token(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    return ".".join([b64url(json.dumps(header).encode()), b64url(json.dumps(claims).encode()),
                     b64url(signature)])


def id_claims(now: float = T0, **changes: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "iss": ISSUER, "sub": "alice", "aud": CLIENT_ID,
        "iat": int(now), "exp": int(now) + 300, "nonce": "nonce-1",
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def mint(key: RSAKey, claims: dict[str, Any], *, kid: str | None = None) -> str:
    header = {"alg": "RS256", "kid": kid if kid is not None else key.kid}
    return jwt.encode(header, claims, key)


def jwks(*keys: RSAKey) -> dict[str, Any]:
    return {"keys": [key.as_dict(private=False) for key in keys]}


Effect = Any
Handler = Callable[[Effect], Any]


def run_flow(flow: Generator[Effect, Any, Any], handler: Handler) -> tuple[Any, list[Effect]]:
    """Drive ``flow`` to its end: ``handler`` answers each effect, or raises to throw it in.

    Returns the flow's result and every effect it yielded, in order.
    """
    effects: list[Effect] = []
    value: Any = None
    error: BaseException | None = None
    while True:
        try:
            effect = flow.throw(error) if error is not None else flow.send(value)
        except StopIteration as stop:
            return stop.value, effects
        effects.append(effect)
        try:
            value, error = handler(effect), None
        except Exception as exc:
            value, error = None, exc


def with_store(handler: Handler, store: SyncStore) -> Handler:
    """``handler`` for provider effects; store effects are performed on ``store``."""

    def handle(effect: Any) -> Any:
        if isinstance(effect, (ReadLineage, WriteLineage, TakeLock, ReleaseLock, Bury, Claim,
                               AwaitRelease)):
            return perform(store, effect)
        return handler(effect)

    return handle


def provider_effects(effects: list[Any]) -> list[Effect]:
    """The provider calls among ``effects`` (store calls left out)."""
    return [e for e in effects if isinstance(e, (GetJSON, TokenRequest, RevokeRequest,
                                                 UserInfoRequest))]


def answer_discovery(effect: Effect, discovery: dict[str, Any] | None = None) -> Any:
    assert effect == GetJSON(DISCOVERY_URL), effect
    return discovery if discovery is not None else DISCOVERY


def cookie_header(pairs: dict[str, str]) -> str:
    """The Cookie request header a browser sends for ``pairs``."""
    return "; ".join(f"{name}={value}" for name, value in pairs.items())


def attributes(header: str) -> list[str]:
    return [part.strip() for part in header.split(";")[1:]]


def is_deletion(header: str) -> bool:
    return "Max-Age=0" in attributes(header)


def session_cookie_header(flows: Flows, session: Session) -> str:
    """The Cookie header of a browser holding ``session``, signed by (a copy of) ``flows``."""
    value = flows.sessions.cookie.encode(session.to_payload())
    return cookie_header(set_cookie_pairs(flows.sessions.cookie.set_headers(value, ())))


class FakeRequest:
    """A request as a driver adapts it for the core: headers by lower-case name."""

    def __init__(self, method: str = "GET", path: str = "/", query_string: str = "",
                 cookie: str | None = None, headers: dict[str, str] | None = None,
                 body: bytes = b"") -> None:
        self.method = method
        self.path = path
        self.query_string = query_string
        self.body = body
        self._headers = dict(headers or {})
        if cookie is not None:
            self._headers["cookie"] = cookie

    def header(self, name: str) -> str | None:
        return self._headers.get(name)

    def target(self) -> str:
        return self.path + ("?" + self.query_string if self.query_string else "")


def same_origin_logout(cookie: str | None) -> FakeRequest:
    """``GET /logout`` from a link of the app's own pages."""
    return FakeRequest("GET", "/logout", cookie=cookie, headers={"sec-fetch-site": "same-origin"})
