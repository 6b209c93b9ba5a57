"""Driving the routes by hand: reading replies, starting logins, answering a callback."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

from joserfc.jwk import RSAKey

from renewal_middleware.flows import Flows
from renewal_middleware.oidc import GetJSON, TokenRequest, UserInfoRequest
from renewal_middleware.replies import Reply
from renewal_middleware.transaction import Kind, LoginTransaction
from tests.unit.helpers import (
    DISCOVERY,
    DISCOVERY_URL,
    T0,
    answer_discovery,
    id_claims,
    jwks,
    mint,
    run_flow,
    set_cookie_pairs,
)

NOW = int(T0)
JSON = "application/json"


def header(reply: Reply, name: str) -> str | None:
    values = [v for k, v in reply.headers if k == name]
    assert len(values) <= 1, values
    return values[0] if values else None


def set_cookies(reply: Reply) -> list[str]:
    return [v for k, v in reply.headers if k == "set-cookie"]


def location_query(reply: Reply) -> tuple[str, dict[str, str]]:
    location = header(reply, "location")
    assert location is not None
    parts = urlsplit(location)
    query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
    return f"{parts.scheme}://{parts.netloc}{parts.path}", query


def start_login(flows: Flows, query: dict[str, str] | None = None) -> Reply:
    reply, effects = run_flow(flows.routes.login(query or {}, flows.clock()), answer_discovery)
    assert effects in ([GetJSON(DISCOVERY_URL)], [])  # discovery is cached after the first
    return reply


def transaction(flows: Flows, reply: Reply) -> tuple[str, str, LoginTransaction]:
    """The transaction cookie's name, value and transaction, decoded with the Flows' own codec."""
    ((name, value),) = [(n, v) for n, v in set_cookie_pairs(set_cookies(reply)).items()
                        if n.startswith(flows.transactions.prefix)]
    loaded = flows.transactions.codec.loads(value, flows.settings.login_timeout_seconds)
    assert loaded is not None
    tx = LoginTransaction.from_payload(loaded[0])
    assert tx is not None
    return name, value, tx


def never(effect: Any) -> Any:
    raise AssertionError(f"unexpected effect {effect!r}")


def nav() -> bool:
    return True


def api() -> bool:
    return False


class OP:
    """Answers the effects of a callback: token, JWKS, userinfo; records what was asked."""

    def __init__(self, key: RSAKey, *, nonce: str, sub: str = "alice",
                 token: dict[str, Any] | None = None, id_token: str | None = None,
                 userinfo: dict[str, Any] | None = None) -> None:
        self.key = key
        self.effects: list[Any] = []
        self.id_token = id_token or mint(key, id_claims(sub=sub, nonce=nonce, name="Alice ID"))
        self.token = token if token is not None else {
            "access_token": "at-1", "token_type": "Bearer", "expires_in": 3600,
            "refresh_token": "rt-1", "id_token": self.id_token, "scope": "openid email",
        }
        self.userinfo = userinfo if userinfo is not None else {
            "sub": sub, "name": "Alice Userinfo", "email": "alice@example"}

    def __call__(self, effect: Any) -> Any:
        self.effects.append(effect)
        if isinstance(effect, GetJSON):
            return DISCOVERY if effect.url == DISCOVERY_URL else jwks(self.key)
        if isinstance(effect, TokenRequest):
            return self.token
        if isinstance(effect, UserInfoRequest):
            return self.userinfo
        raise AssertionError(effect)


def callback(flows: Flows, query: dict[str, str], cookies: str | None, handler: Any,
             accept: str | None = "text/html", kind: Kind = "login") -> tuple[Reply, list[Any]]:
    return run_flow(flows.routes.callback(kind, query, cookies, accept, flows.clock()), handler)


