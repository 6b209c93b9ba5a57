"""Validation of an OpenID Connect Back-Channel Logout 1.0 ``logout_token``, without I/O.

The provider POSTs a signed JWT to the back-channel logout route to end the
sessions of a user (``sub``) or of one login at the provider (``sid``). Section
2.6 of the specification says how to validate it: signature and ``alg`` as for
an ID token (never ``none``), ``iss``/``aud``/``iat``/``exp`` as for an ID token,
then the claims that only a logout token has (``events``, ``sub`` or ``sid``, no
``nonce``, a ``jti``). The ``events`` claim and the ban on ``nonce`` are what keep
an ID token from passing for a logout token, and a logout token for an ID token.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping
from typing import Any

from joserfc import jwt
from joserfc.errors import InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet

from .errors import AuthenticationError
from .oidc import ASYMMETRIC_ALGORITHMS, _is_numeric_date

#: The member of the ``events`` claim that makes a JWT a logout token (§2.4).
BACKCHANNEL_LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"

#: A logout token issued longer ago than this (plus the clock skew) is refused, whatever its
#: ``exp``. The specification leaves the window to the client (``iat`` is checked "as for ID
#: tokens") and asks providers for an ``exp`` at most two minutes ahead (§4); ten minutes
#: allows for a slow or retried delivery. It also bounds replays: a token is accepted for at
#: most ``MAX_AGE_SECONDS + 2 * skew`` seconds, so a seen ``jti`` must be remembered that long.
MAX_AGE_SECONDS = 600

#: ``typ`` values taken for a logout token, compared as media types (RFC 7515 §4.1.9: case
#: insensitive, ``application/`` implied). ``logout+jwt`` is the explicit type (§2.4); the
#: generic ``JWT`` is treated like an absent ``typ``, because §4.1 warns that requiring explicit
#: typing breaks most deployments, and many providers stamp every JWT they sign with ``JWT``.
#: An ID token cannot pass for a logout token even so: it has no ``events`` claim.
ACCEPTED_TYPES = frozenset({"logout+jwt", "jwt"})

# The ``code`` of each refusal; every one is an AuthenticationError (HTTP 400, as §2.8 asks).
INVALID = "logout_token_invalid"  # not a signed JWT, bad signature, refused alg
UNKNOWN_KEY = "logout_token_unknown_key"  # no key for its kid: the JWKS may be worth refetching
WRONG_TYPE = "logout_token_type"
WRONG_ISSUER = "logout_token_issuer"
WRONG_AUDIENCE = "logout_token_audience"
BAD_ISSUED_AT = "logout_token_issued_at"
EXPIRED = "logout_token_expired"
NOT_YET_VALID = "logout_token_not_yet_valid"
NO_SUBJECT = "logout_token_subject"
NO_EVENT = "logout_token_event"
HAS_NONCE = "logout_token_nonce"
NO_JTI = "logout_token_jti"


@dataclasses.dataclass(frozen=True)
class LogoutClaims:
    """What a valid logout token asks: end session ``sid``, or every session of ``sub``.

    At least one of ``sub`` and ``sid`` is set. When ``sid`` is set only that session
    ends; otherwise every session of ``sub`` at this issuer does (§2.4).
    """

    sub: str | None
    sid: str | None
    jti: str
    iat: int
    exp: int | None


def validate_logout_token(
    token: str,
    keys: KeySet,
    *,
    issuer: str,
    client_id: str,
    now: float,
    skew: int,
    algorithms: Collection[str] = ASYMMETRIC_ALGORITHMS,
) -> LogoutClaims:
    """Verify a ``logout_token`` against the provider's keys; return what it asks to end.

    ``algorithms`` should be the provider's ``id_token_signing_alg_values_supported``
    (§2.6 step 3); only asymmetric algorithms are ever used from it. ``skew`` is the
    clock skew tolerated on every time claim.

    Raises :class:`AuthenticationError` with one ``code`` per rule (the constants of
    this module); messages never contain the token or its claims. ``UNKNOWN_KEY``
    means no key matched the token's ``kid``: the caller may refetch the JWKS once and
    call again, as for an ID token.

    Replays are not checked here: the caller must refuse a ``jti`` it has seen before
    (§2.6 step 8), remembering each one for at least ``MAX_AGE_SECONDS + 2 * skew``.
    """
    allowed = sorted(frozenset(algorithms) & ASYMMETRIC_ALGORITHMS)
    if not allowed:  # joserfc reads an empty list as "its default algorithms"
        raise _refused("no asymmetric signature algorithm is allowed", INVALID)
    try:
        decoded = jwt.decode(token, keys, algorithms=allowed)
    except InvalidKeyIdError as exc:
        raise _refused("no key of the provider matches its 'kid'", UNKNOWN_KEY) from exc
    except (JoseError, ValueError, TypeError) as exc:
        reason = getattr(exc, "error", None) or type(exc).__name__
        raise _refused(f"not a JWT signed by the provider ({reason})", INVALID) from exc
    _check_type(decoded.header)
    claims: object = decoded.claims
    if not isinstance(claims, dict):  # some joserfc versions let a JSON array through
        raise _refused("the payload is not a JSON object", INVALID)
    if claims.get("iss") != issuer:
        raise _refused("'iss' is not the provider's issuer", WRONG_ISSUER)
    if not _names_audience(claims.get("aud"), client_id):
        raise _refused("'aud' does not name this client", WRONG_AUDIENCE)
    iat, exp = _check_times(claims, now, skew)
    sub, sid = _optional_string(claims, "sub"), _optional_string(claims, "sid")
    if sub is None and sid is None:
        raise _refused("it names neither 'sub' nor 'sid'", NO_SUBJECT)
    events = claims.get("events")
    if not isinstance(events, dict) or not isinstance(events.get(BACKCHANNEL_LOGOUT_EVENT), dict):
        raise _refused("'events' lacks the back-channel logout event", NO_EVENT)
    if "nonce" in claims:
        raise _refused("it has a 'nonce', which a logout token must not have", HAS_NONCE)
    jti = claims.get("jti")
    if not isinstance(jti, str) or not jti:
        raise _refused("it has no 'jti'", NO_JTI)
    return LogoutClaims(sub=sub, sid=sid, jti=jti, iat=iat, exp=exp)


def _refused(reason: str, code: str) -> AuthenticationError:
    return AuthenticationError(f"logout token refused: {reason}", code=code)


def _check_type(header: Mapping[str, Any]) -> None:
    typ = header.get("typ")
    if typ is None:
        return
    media = typ.lower().removeprefix("application/") if isinstance(typ, str) else None
    if media not in ACCEPTED_TYPES:
        raise _refused("its 'typ' names another kind of JWT", WRONG_TYPE)


def _names_audience(aud: object, client_id: str) -> bool:
    if isinstance(aud, str):
        return aud == client_id
    return isinstance(aud, list) and all(isinstance(a, str) for a in aud) and client_id in aud


def _check_times(claims: Mapping[str, Any], now: float, skew: int) -> tuple[int, int | None]:
    """``iat`` (required, not ahead, not too old), ``exp`` and ``nbf`` (when present).

    The final specification makes ``exp`` REQUIRED, but its drafts had no ``exp`` and
    some providers still send none; a token without one is accepted, since
    ``MAX_AGE_SECONDS`` bounds its life anyway.
    """
    iat = _numeric_date(claims, "iat", BAD_ISSUED_AT)
    if iat is None:
        raise _refused("it has no 'iat'", BAD_ISSUED_AT)
    if iat > now + skew:
        raise _refused("'iat' is in the future", BAD_ISSUED_AT)
    if iat < now - MAX_AGE_SECONDS - skew:
        raise _refused(f"it was issued more than {MAX_AGE_SECONDS} s ago", BAD_ISSUED_AT)
    exp = _numeric_date(claims, "exp", EXPIRED)
    if exp is not None and exp <= now - skew:
        raise _refused("it has expired", EXPIRED)
    nbf = _numeric_date(claims, "nbf", NOT_YET_VALID)
    if nbf is not None and nbf > now + skew:
        raise _refused("it is not valid yet ('nbf')", NOT_YET_VALID)
    return int(iat), None if exp is None else int(exp)


def _numeric_date(claims: Mapping[str, Any], name: str, code: str) -> float | None:
    """A time claim: None when absent, refused when not a finite JSON number."""
    if name not in claims:
        return None
    value: float = claims[name]
    if not _is_numeric_date(value):
        raise _refused(f"'{name}' is not a NumericDate", code)
    return value


def _optional_string(claims: Mapping[str, Any], name: str) -> str | None:
    """The claim when it is a non-empty string; None when absent; refused otherwise."""
    if name not in claims:
        return None
    value = claims[name]
    if not isinstance(value, str) or not value:
        raise _refused(f"'{name}' is not a non-empty string", NO_SUBJECT)
    return value
