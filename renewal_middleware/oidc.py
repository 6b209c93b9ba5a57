"""The OpenID provider, without I/O: discovery, JWKS, token requests and ID-token checks.

Every method that needs the network is a generator: it yields an :data:`Effect`
describing the call and receives its result (or has the driver's error thrown
in). The ASGI and WSGI drivers run the same generators, so every decision lives
here once, like httpx's ``auth_flow``.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Generator, Mapping
from typing import Any, TypeVar

from authlib.oidc.core import CodeIDToken
from joserfc import jwt
from joserfc.errors import InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet

from .config import Settings
from .errors import AuthenticationError, ProviderError, ProviderUnavailable

logger = logging.getLogger("renewal_middleware")

T = TypeVar("T")

#: Signature algorithms accepted for ID tokens: asymmetric only, never ``none`` or HS*.
ASYMMETRIC_ALGORITHMS = frozenset({
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA",
})
DISCOVERY_TTL = 3600.0
#: A removed key is trusted at most this long (unless an unknown kid triggers a refetch).
JWKS_TTL = 600.0
#: A JWKS refetch for an unknown ``kid`` happens at most this often.
JWKS_REFETCH_INTERVAL = 30.0


@dataclasses.dataclass(frozen=True)
class GetJSON:
    """GET a JSON document (discovery, JWKS)."""

    url: str


@dataclasses.dataclass(frozen=True)
class TokenRequest:
    """POST to the token endpoint; the result is the token response as a dict."""

    url: str
    params: Mapping[str, str]


@dataclasses.dataclass(frozen=True)
class RevokeRequest:
    """POST to the revocation endpoint (RFC 7009); the result is ``None``."""

    url: str
    token: str
    token_type_hint: str


@dataclasses.dataclass(frozen=True)
class UserInfoRequest:
    """GET the UserInfo endpoint with an access token; the result is the claims dict."""

    url: str
    access_token: str


Effect = GetJSON | TokenRequest | RevokeRequest | UserInfoRequest
Flow = Generator[Effect, Any, T]


@dataclasses.dataclass(frozen=True)
class ProviderMetadata:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    end_session_endpoint: str | None
    revocation_endpoint: str | None
    userinfo_endpoint: str | None
    id_token_algorithms: frozenset[str]
    #: RFC 9207: the provider puts ``iss`` in every authorization response.
    iss_parameter_supported: bool

    @classmethod
    def parse(cls, doc: object, expected_issuer: str) -> ProviderMetadata:
        if not isinstance(doc, dict):
            raise ProviderUnavailable("discovery document is not a JSON object")
        issuer = doc.get("issuer")
        if not isinstance(issuer, str) or issuer.rstrip("/") != expected_issuer:
            raise ProviderUnavailable(
                f"discovery names issuer {issuer!r}, expected {expected_issuer!r}")
        urls = {}
        for key in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
            value = doc.get(key)
            if not isinstance(value, str) or not value:
                raise ProviderUnavailable(f"discovery document lacks {key}")
            urls[key] = value
        algs = doc.get("id_token_signing_alg_values_supported") or ["RS256"]
        allowed = frozenset(a for a in algs if isinstance(a, str)) & ASYMMETRIC_ALGORITHMS
        return cls(
            issuer=issuer,
            end_session_endpoint=_optional_url(doc, "end_session_endpoint"),
            revocation_endpoint=_optional_url(doc, "revocation_endpoint"),
            userinfo_endpoint=_optional_url(doc, "userinfo_endpoint"),
            id_token_algorithms=allowed or frozenset({"RS256"}),
            iss_parameter_supported=doc.get("authorization_response_iss_parameter_supported")
            is True,
            **urls,
        )


def _optional_url(doc: Mapping[str, Any], key: str) -> str | None:
    value = doc.get(key)
    return value if isinstance(value, str) and value else None


class Provider:
    """Caches discovery and the JWKS; builds token requests; validates ID tokens."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.discovery_url = settings.issuer + "/.well-known/openid-configuration"
        self._metadata: ProviderMetadata | None = None
        self._metadata_at = float("-inf")
        self._keys: KeySet | None = None
        self._keys_at = float("-inf")
        self._refetched_at = float("-inf")

    def metadata(self, now: float) -> Flow[ProviderMetadata]:
        if self._metadata is None or now - self._metadata_at > DISCOVERY_TTL:
            try:
                doc = yield GetJSON(self.discovery_url)
                self._metadata = ProviderMetadata.parse(doc, self.settings.issuer)
                self._metadata_at = now
            except ProviderUnavailable:
                if self._metadata is None:
                    raise
                logger.warning("discovery refresh failed; keeping the cached document")
        return self._metadata

    def keys(self, now: float, *, refetch: bool = False) -> Flow[KeySet]:
        stale = now - self._keys_at > JWKS_TTL
        # Refetches for unknown kids are rate-limited among themselves only, so a key the
        # provider starts using right after our last regular fetch is still found at once.
        if refetch and now > self._keys_at and now - self._refetched_at > JWKS_REFETCH_INTERVAL:
            self._refetched_at = now
            stale = True
        if self._keys is None or stale:
            meta = yield from self.metadata(now)
            doc = yield GetJSON(meta.jwks_uri)
            try:
                self._keys = KeySet.import_key_set(doc)
            except (JoseError, ValueError, TypeError, KeyError) as exc:
                raise ProviderUnavailable(f"the provider's JWKS is not usable: {exc}") from exc
            self._keys_at = now
        assert self._keys is not None
        return self._keys

    def exchange_code(self, now: float, code: str, redirect_uri: str,
                      code_verifier: str) -> Flow[dict[str, Any]]:
        meta = yield from self.metadata(now)
        token = yield TokenRequest(meta.token_endpoint, {
            "grant_type": "authorization_code", "code": code,
            "redirect_uri": redirect_uri, "code_verifier": code_verifier,
        })
        return _check_token_response(token)

    def refresh_grant(self, now: float, refresh_token: str) -> Flow[dict[str, Any]]:
        """The refresh_token grant: the token response."""
        meta = yield from self.metadata(now)
        token = yield TokenRequest(meta.token_endpoint, {
            "grant_type": "refresh_token", "refresh_token": refresh_token,
        })
        return _check_token_response(token)

    def revoke(self, meta: ProviderMetadata, refresh_token: str) -> Flow[None]:
        assert meta.revocation_endpoint is not None
        yield RevokeRequest(meta.revocation_endpoint, refresh_token, "refresh_token")

    def userinfo(self, now: float, access_token: str, sub: str) -> Flow[dict[str, Any]]:
        """UserInfo claims for ``sub``; empty when there is no endpoint or it fails.

        Providers that follow OIDC Core §5.4 put profile claims there, not in
        the ID token of a code flow; one call at login fills ``request.user``.
        """
        meta = yield from self.metadata(now)
        if meta.userinfo_endpoint is None:
            return {}
        try:
            claims = yield UserInfoRequest(meta.userinfo_endpoint, access_token)
        except ProviderError as exc:
            logger.warning("userinfo unavailable at login: %s", exc.message)
            return {}
        if not isinstance(claims, dict) or claims.get("sub") != sub:
            logger.warning("userinfo ignored: it names another subject")
            return {}
        return claims

    def validate_id_token(
        self,
        now: float,
        id_token: str,
        *,
        nonce: str | None,
        access_token: str | None = None,
        expected_sub: str | None = None,
        max_age: int | None = None,
    ) -> Flow[dict[str, Any]]:
        """Verify signature and claims; returns the claims or raises AuthenticationError.

        With ``max_age`` (the login asked for it) the token must say when the user
        authenticated, no longer ago than that (:func:`check_auth_time`).
        """
        meta = yield from self.metadata(now)
        keys = yield from self.keys(now)
        try:
            token = jwt.decode(id_token, keys, algorithms=sorted(meta.id_token_algorithms))
        except InvalidKeyIdError:
            # The provider may have rotated its keys since we fetched them: refetch once.
            keys = yield from self.keys(now, refetch=True)
            try:
                token = jwt.decode(id_token, keys, algorithms=sorted(meta.id_token_algorithms))
            except JoseError as exc:
                raise _id_token_error(exc) from exc
        except (JoseError, ValueError) as exc:
            raise _id_token_error(exc) from exc
        for name in _TIME_CLAIMS:
            # joserfc < 1.8 (what Python 3.10 gets) lets NaN through: an exp that never passes.
            if name in token.claims and not _is_numeric_date(token.claims[name]):
                raise AuthenticationError(f"ID token refused: '{name}' is not a NumericDate",
                                          code="invalid_id_token")
        claims = CodeIDToken(
            token.claims, token.header,
            options={
                "iss": {"essential": True, "value": meta.issuer},
                "aud": {"essential": True, "value": self.settings.client_id},
            },
            params={"nonce": nonce, "client_id": self.settings.client_id,
                    "access_token": access_token},
        )
        try:
            claims.validate(now=int(now), leeway=self.settings.clock_skew_seconds)
        except (JoseError, ValueError, TypeError, KeyError) as exc:
            raise _id_token_error(exc) from exc
        if not isinstance(claims.get("sub"), str) or not claims["sub"]:
            raise AuthenticationError("ID token has no subject", code="invalid_id_token")
        if expected_sub is not None and claims["sub"] != expected_sub:
            raise AuthenticationError("ID token names another user", code="subject_changed")
        if max_age is not None:
            check_auth_time(claims, max_age, now, self.settings.clock_skew_seconds)
        return dict(claims)


def check_auth_time(claims: Mapping[str, Any], max_age: int, now: float, skew: int) -> None:
    """OIDC Core §3.1.2.1 / §3.1.3.7 (13): a ``max_age`` login needs an ``auth_time`` (a
    NumericDate) no more than ``max_age`` plus the clock-skew leeway ago."""
    auth_time = claims.get("auth_time")
    if auth_time is None:
        raise AuthenticationError(
            "The provider did not say when you signed in, although this sign-in asked for a "
            "recent one. Please sign in again.", code="auth_time_missing")
    if not _is_numeric_date(auth_time):
        raise AuthenticationError("ID token refused: 'auth_time' is not a NumericDate",
                                  code="invalid_id_token")
    if now - auth_time > max_age + skew:
        logger.info("ID token refused: auth_time is %ds old, max_age was %d",
                    int(now - auth_time), max_age)
        raise AuthenticationError(
            "The provider reused an earlier sign-in, but this page asks for a recent one. "
            "Please sign in again.", code="auth_time_too_old")


_TIME_CLAIMS = ("exp", "iat", "nbf", "auth_time")


def _is_numeric_date(value: object) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and math.isfinite(value))


def _check_token_response(token: object) -> dict[str, Any]:
    if not isinstance(token, dict):
        raise ProviderUnavailable("token response is not a JSON object")
    if not isinstance(token.get("access_token"), str) or not token["access_token"]:
        raise ProviderUnavailable("token response has no access_token")
    if str(token.get("token_type", "bearer")).lower() not in ("bearer", "dpop"):
        raise ProviderUnavailable("token response has an unknown token_type")
    return token


def _id_token_error(exc: Exception) -> AuthenticationError:
    detail = getattr(exc, "description", None) or getattr(exc, "error", None) or str(exc)
    return AuthenticationError(f"ID token refused: {detail}", code="invalid_id_token")
