"""The token set kept for a logged-in user, and what the app sees of it."""

from __future__ import annotations

import dataclasses
import hashlib
import secrets
from collections.abc import Mapping
from typing import Any, Final

from starlette.authentication import AuthCredentials, BaseUser

#: ``expires_at`` of a token whose lifetime the provider did not tell: never renewed early.
EXPIRY_UNKNOWN: Final = 0

# ID-token claims that only matter to the protocol; the app gets the rest, including
# ``auth_time``, ``acr`` and ``amr`` (how and when the user authenticated), which the app
# may check (the middleware enforces ``max_age`` only, never ``acr``).
_PROTOCOL_CLAIMS = frozenset(
    {"iss", "aud", "exp", "iat", "nbf", "nonce", "at_hash", "c_hash", "azp", "jti", "s_hash"}
)


@dataclasses.dataclass(frozen=True)
class Session:
    """One user's tokens, as stored (signed) in the session cookie.

    ``expires_at`` is a Unix time, or :data:`EXPIRY_UNKNOWN`; ``obtained_at``
    is when the current access token was issued to us, used to bound the
    grace window for short-lived tokens.
    """

    id: str
    access_token: str = dataclasses.field(repr=False)
    expires_at: int
    obtained_at: int
    refresh_token: str | None = dataclasses.field(repr=False)
    id_token: str | None = dataclasses.field(repr=False)
    claims: Mapping[str, Any] = dataclasses.field(repr=False)
    scope: str = ""
    #: Incremented by every renewal: the newest generation is the one whose cookie may be set.
    generation: int = 0
    #: When the user logged in (Unix time); kept across renewals.
    login_at: int = 0
    #: No renewal before this time (Unix time, 0: none): set when the provider answered a
    #: refresh with a token that lives no longer than the one it replaced.
    renew_from: int = 0

    @property
    def sub(self) -> str:
        return str(self.claims.get("sub", ""))

    @property
    def refresh_key(self) -> str | None:
        """The key of single-flight and of the result cache: a hash of the token pair.

        The access token is part of it so that a provider that does not rotate
        refresh tokens still gets a new refresh once the renewed token ages.
        """
        if self.refresh_token is None:
            return None
        pair = f"{self.refresh_token}\x00{self.access_token}"
        return hashlib.sha256(pair.encode()).hexdigest()

    def to_payload(self) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "v": 1, "id": self.id, "at": self.access_token, "exp": self.expires_at,
            "iat": self.obtained_at, "c": dict(self.claims),
        }
        if self.refresh_token is not None:
            payload["rt"] = self.refresh_token
        if self.id_token is not None:
            payload["it"] = self.id_token
        if self.scope:
            payload["sc"] = self.scope
        if self.generation:
            payload["g"] = self.generation
        if self.login_at:
            payload["li"] = self.login_at
        if self.renew_from:
            payload["rf"] = self.renew_from
        return payload

    @classmethod
    def from_payload(cls, payload: object) -> Session | None:
        """Rebuild a session from a verified payload; ``None`` when its shape is wrong."""
        if not isinstance(payload, dict) or type(payload.get("v")) is not int or payload["v"] != 1:
            return None
        sid, at, exp, iat, claims = (payload.get(k) for k in ("id", "at", "exp", "iat", "c"))
        rt, it, sc = payload.get("rt"), payload.get("it"), payload.get("sc", "")
        gen, login_at, renew_from = (payload.get(k, 0) for k in ("g", "li", "rf"))
        if not (isinstance(sid, str) and isinstance(at, str) and at
                and type(exp) is int and type(iat) is int and isinstance(claims, dict)
                and isinstance(claims.get("sub"), str)
                and (rt is None or (isinstance(rt, str) and rt))
                and (it is None or isinstance(it, str)) and isinstance(sc, str)
                and type(gen) is int and gen >= 0 and type(login_at) is int
                and type(renew_from) is int):
            return None
        return cls(id=sid, access_token=at, expires_at=exp, obtained_at=iat,
                   refresh_token=rt, id_token=it, claims=claims, scope=sc,
                   generation=gen, login_at=login_at, renew_from=renew_from)

    @classmethod
    def from_token_response(
        cls,
        token: Mapping[str, Any],
        claims: Mapping[str, Any],
        now: int,
        previous: Session | None = None,
    ) -> Session:
        """Build the session for a token endpoint answer, keeping what it did not renew.

        On a renewal the claims merge with the previous ones, a renewed ID token's
        winning: ``auth_time`` or ``acr`` of the login stay when it does not repeat them.
        """
        expiry = _expiry(token, now)
        refresh = token.get("refresh_token") or (previous.refresh_token if previous else None)
        id_token = token.get("id_token") or (previous.id_token if previous else None)
        user_claims = {k: v for k, v in claims.items() if k not in _PROTOCOL_CLAIMS}
        if previous is not None:
            user_claims = {**previous.claims, **user_claims}
        return cls(
            id=previous.id if previous else secrets.token_urlsafe(12),
            access_token=str(token["access_token"]),
            expires_at=expiry,
            obtained_at=now,
            refresh_token=str(refresh) if refresh else None,
            id_token=str(id_token) if id_token else None,
            claims=user_claims,
            scope=str(token.get("scope") or (previous.scope if previous else "")),
            generation=previous.generation + 1 if previous else 0,
            login_at=(previous.login_at or now) if previous else now,  # 0: from before it was kept
        )


def _expiry(token: Mapping[str, Any], now: int) -> int:
    # authlib adds expires_at from expires_in; trust expires_in, measured from our clock.
    expires_in = token.get("expires_in")
    if isinstance(expires_in, str) and expires_in.isdigit():
        expires_in = int(expires_in)
    if isinstance(expires_in, int) and not isinstance(expires_in, bool) and expires_in > 0:
        return now + expires_in
    return EXPIRY_UNKNOWN


class OIDCUser(BaseUser):
    """The logged-in user, as ``request.user``."""

    def __init__(self, claims: Mapping[str, Any]) -> None:
        self.claims = claims

    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def display_name(self) -> str:
        for key in ("name", "preferred_username", "nickname", "email", "sub"):
            value = self.claims.get(key)
            if isinstance(value, str) and value:
                return value
        return ""

    @property
    def identity(self) -> str:
        return str(self.claims["sub"])

    def __repr__(self) -> str:
        return f"OIDCUser(sub={self.identity!r})"


class TokenCredentials(AuthCredentials):
    """``request.auth`` of a logged-in request: the access token and what goes with it."""

    def __init__(self, session: Session) -> None:
        super().__init__(["authenticated", *session.scope.split()])
        self.access_token = session.access_token
        self.expires_at = session.expires_at
        self.claims = session.claims
        self.session_id = session.id

    def __repr__(self) -> str:
        return f"TokenCredentials(scopes={self.scopes!r}, expires_at={self.expires_at})"
