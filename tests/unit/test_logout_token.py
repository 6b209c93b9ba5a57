"""Back-Channel Logout 1.0 logout tokens: what is accepted, and each rule that refuses one."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import pytest
from joserfc import jws, jwt
from joserfc.jwk import ECKey, KeySet, OctKey, RSAKey

from renewal_middleware import logout_token as lt
from renewal_middleware.errors import AuthenticationError
from renewal_middleware.logout_token import (
    BACKCHANNEL_LOGOUT_EVENT,
    MAX_AGE_SECONDS,
    LogoutClaims,
    validate_logout_token,
)
from tests.unit.helpers import (
    CLIENT_ID,
    CLIENT_SECRET,
    ISSUER,
    T0,
    b64url,
    id_claims,
    unsigned_token,
)

SKEW = 60
NOW = int(T0)


def logout_claims(**changes: Any) -> dict[str, Any]:
    """A valid logout token's claims; a change to ``None`` removes the claim."""
    claims: dict[str, Any] = {
        "iss": ISSUER, "aud": CLIENT_ID, "iat": NOW, "exp": NOW + 120, "jti": "jti-1",
        "sub": "alice", "sid": "op-session-1", "events": {BACKCHANNEL_LOGOUT_EVENT: {}},
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def sign(key: RSAKey | ECKey, claims: dict[str, Any], **header: Any) -> str:
    alg = "ES256" if isinstance(key, ECKey) else "RS256"
    fields = {"alg": alg, "kid": key.kid, "typ": "logout+jwt", **header}
    return jwt.encode({k: v for k, v in fields.items() if v is not None}, claims, key,
                      default_type=None)


def key_set(*keys: RSAKey | ECKey) -> KeySet:
    return KeySet.import_key_set({"keys": [k.as_dict(private=False) for k in keys]})


def validate(token: str, keys: KeySet, **overrides: Any) -> LogoutClaims:
    options: dict[str, Any] = {"issuer": ISSUER, "client_id": CLIENT_ID, "now": T0, "skew": SKEW}
    options.update(overrides)
    return validate_logout_token(token, keys, **options)


def refused(token: str, keys: KeySet, code: str, **overrides: Any) -> AuthenticationError:
    with pytest.raises(AuthenticationError) as info:
        validate(token, keys, **overrides)
    assert info.value.code == code
    assert info.value.status == 400
    assert_secret_free(info.value, token)
    return info.value


def assert_secret_free(error: AuthenticationError, token: str) -> None:
    """Neither the token nor any non-trivial part of it shows in the message."""
    for part in [token, *token.split(".")]:
        if len(part) >= 8:
            assert part not in error.message and part not in str(error)


# --- accepted ---


def test_a_valid_logout_token_gives_its_claims(rsa_key: RSAKey) -> None:
    claims = validate(sign(rsa_key, logout_claims()), key_set(rsa_key))
    assert claims == LogoutClaims(sub="alice", sid="op-session-1", jti="jti-1", iat=NOW,
                                  exp=NOW + 120)


@pytest.mark.parametrize(("changes", "sub", "sid"), [
    ({"sid": None}, "alice", None),
    ({"sub": None}, None, "op-session-1"),
])
def test_either_sub_or_sid_is_enough(rsa_key: RSAKey, changes: dict[str, Any],
                                     sub: str | None, sid: str | None) -> None:
    claims = validate(sign(rsa_key, logout_claims(**changes)), key_set(rsa_key))
    assert (claims.sub, claims.sid) == (sub, sid)


def test_audience_list_naming_the_client_is_accepted(rsa_key: RSAKey) -> None:
    token = sign(rsa_key, logout_claims(aud=["other-client", CLIENT_ID]))
    assert validate(token, key_set(rsa_key)).jti == "jti-1"


@pytest.mark.parametrize("typ", [None, "logout+jwt", "application/logout+jwt", "Logout+JWT",
                                 "JWT", "jwt", "application/jwt"])
def test_explicit_untyped_and_generic_types_are_accepted(rsa_key: RSAKey, typ: str | None) -> None:
    """§2.4 recommends ``logout+jwt``; §4.1 says requiring it breaks deployments."""
    assert validate(sign(rsa_key, logout_claims(), typ=typ), key_set(rsa_key)).sub == "alice"


def test_exp_is_optional_and_the_age_bound_still_applies(rsa_key: RSAKey) -> None:
    claims = validate(sign(rsa_key, logout_claims(exp=None)), key_set(rsa_key))
    assert claims.exp is None
    too_old = sign(rsa_key, logout_claims(exp=None, iat=NOW - MAX_AGE_SECONDS - SKEW - 1))
    refused(too_old, key_set(rsa_key), "logout_token_issued_at")


@pytest.mark.parametrize("changes", [
    {"iat": NOW + SKEW},  # ahead, within the skew
    {"iat": NOW - MAX_AGE_SECONDS - SKEW, "exp": NOW + 60},  # as old as allowed
    {"exp": NOW - SKEW + 1},  # expired, within the skew
    {"nbf": NOW + SKEW},
    {"iat": T0 + 0.5, "exp": T0 + 60.5},  # NumericDate may be fractional
])
def test_clock_skew_and_age_bounds_are_inclusive(rsa_key: RSAKey, changes: dict[str, Any]) -> None:
    validate(sign(rsa_key, logout_claims(**changes)), key_set(rsa_key))


def test_unknown_claims_are_ignored(rsa_key: RSAKey) -> None:
    token = sign(rsa_key, logout_claims(
        extra={"a": 1}, events={BACKCHANNEL_LOGOUT_EVENT: {"reason": "x"}, "urn:other": 1}))
    assert validate(token, key_set(rsa_key)).sid == "op-session-1"


def test_a_key_set_with_several_keys_picks_the_one_named_by_kid(
        rsa_key: RSAKey, rotated_key: RSAKey) -> None:
    token = sign(rotated_key, logout_claims())
    assert validate(token, key_set(rsa_key, rotated_key)).sub == "alice"


def test_the_provider_algorithms_are_honoured(rsa_key: RSAKey) -> None:
    ec_key = ECKey.generate_key("P-256", parameters={"kid": "e1"})
    token = sign(ec_key, logout_claims())
    assert validate(token, key_set(ec_key)).sub == "alice"
    refused(token, key_set(ec_key), "logout_token_invalid", algorithms=frozenset({"RS256"}))


@pytest.mark.parametrize("algorithms", [[], ["HS256"], ["none"]])
def test_no_asymmetric_algorithm_allowed_refuses_everything(
        rsa_key: RSAKey, algorithms: list[str]) -> None:
    """An empty list must not fall back to the JOSE library's defaults."""
    refused(sign(rsa_key, logout_claims()), key_set(rsa_key), "logout_token_invalid",
            algorithms=algorithms)


# --- refused: claims ---


@pytest.mark.parametrize(("changes", "code"), [
    ({"iss": "https://evil.example"}, "logout_token_issuer"),
    ({"iss": ISSUER + "/"}, "logout_token_issuer"),
    ({"iss": None}, "logout_token_issuer"),
    ({"aud": "other-client"}, "logout_token_audience"),
    ({"aud": ["other-client"]}, "logout_token_audience"),
    ({"aud": [CLIENT_ID, 5]}, "logout_token_audience"),
    ({"aud": None}, "logout_token_audience"),
    ({"iat": None}, "logout_token_issued_at"),
    ({"iat": str(NOW)}, "logout_token_issued_at"),
    ({"iat": True}, "logout_token_issued_at"),
    ({"iat": NOW + SKEW + 1}, "logout_token_issued_at"),
    ({"iat": NOW - MAX_AGE_SECONDS - SKEW - 1}, "logout_token_issued_at"),
    ({"exp": NOW - SKEW}, "logout_token_expired"),
    ({"exp": "tomorrow"}, "logout_token_expired"),
    ({"nbf": NOW + SKEW + 1}, "logout_token_not_yet_valid"),
    ({"sub": None, "sid": None}, "logout_token_subject"),
    ({"sub": "", "sid": None}, "logout_token_subject"),
    ({"sid": 42}, "logout_token_subject"),
    ({"events": None}, "logout_token_event"),
    ({"events": [BACKCHANNEL_LOGOUT_EVENT]}, "logout_token_event"),
    ({"events": {}}, "logout_token_event"),
    ({"events": {"urn:other": {}}}, "logout_token_event"),
    ({"events": {BACKCHANNEL_LOGOUT_EVENT: True}}, "logout_token_event"),
    ({"events": {BACKCHANNEL_LOGOUT_EVENT: "{}"}}, "logout_token_event"),
    ({"nonce": "nonce-1"}, "logout_token_nonce"),
    ({"nonce": ""}, "logout_token_nonce"),
    ({"jti": None}, "logout_token_jti"),
    ({"jti": ""}, "logout_token_jti"),
    ({"jti": 7}, "logout_token_jti"),
])
def test_each_claim_rule_refuses(rsa_key: RSAKey, changes: dict[str, Any], code: str) -> None:
    refused(sign(rsa_key, logout_claims(**changes)), key_set(rsa_key), code)


def test_nan_time_claims_are_refused(rsa_key: RSAKey) -> None:
    """JSON ``NaN`` compares false with everything: an ``exp`` that would never pass."""
    refused(sign(rsa_key, logout_claims(exp=float("nan"))), key_set(rsa_key),
            "logout_token_expired")
    refused(sign(rsa_key, logout_claims(iat=float("nan"))), key_set(rsa_key),
            "logout_token_issued_at")


@pytest.mark.parametrize("nonce", [None, "nonce-1"])
def test_an_id_token_signed_by_the_provider_is_refused(rsa_key: RSAKey, nonce: str | None) -> None:
    """An ID token is no logout token, whether or not it carries a nonce."""
    token = sign(rsa_key, id_claims(T0, nonce=nonce, sid="op-session-1", jti="id-jti"), typ="JWT")
    refused(token, key_set(rsa_key), "logout_token_event")


@pytest.mark.parametrize("typ", ["at+jwt", "application/at+jwt", "secevent+jwt", "JOSE", ""])
def test_a_jwt_typed_as_another_kind_is_refused(rsa_key: RSAKey, typ: str) -> None:
    refused(sign(rsa_key, logout_claims(), typ=typ), key_set(rsa_key), "logout_token_type")


# --- refused: signature, key and algorithm ---


def test_signature_by_another_key_with_the_same_kid_is_refused(rsa_key: RSAKey) -> None:
    impostor = RSAKey.generate_key(2048, parameters={"kid": "k1"})
    refused(sign(impostor, logout_claims()), key_set(rsa_key), "logout_token_invalid")


def test_an_unknown_kid_is_told_apart(rsa_key: RSAKey, rotated_key: RSAKey) -> None:
    """So that the caller can refetch the JWKS once, as it does for ID tokens."""
    error = refused(sign(rotated_key, logout_claims()), key_set(rsa_key),
                    "logout_token_unknown_key")
    assert rotated_key.kid is not None and rotated_key.kid not in error.message


def test_alg_none_is_refused(rsa_key: RSAKey) -> None:
    for header in ({"alg": "none"}, {"alg": "none", "kid": rsa_key.kid, "typ": "logout+jwt"}):
        refused(unsigned_token(header, logout_claims()), key_set(rsa_key), "logout_token_invalid")


def test_hs256_signed_with_the_client_secret_is_refused(rsa_key: RSAKey) -> None:
    secret = OctKey.import_key(CLIENT_SECRET)
    token = jwt.encode({"alg": "HS256", "kid": rsa_key.kid, "typ": "logout+jwt"},
                       logout_claims(), secret, algorithms=["HS256"])
    refused(token, key_set(rsa_key), "logout_token_invalid")
    # Even when the caller lists it: only asymmetric algorithms are ever used.
    refused(token, key_set(rsa_key), "logout_token_invalid", algorithms=["HS256", "RS256"])


def test_hs256_signed_with_the_public_key_is_refused(rsa_key: RSAKey) -> None:
    """The classic key confusion: HMAC keyed with the provider's public key."""
    header = {"alg": "HS256", "kid": rsa_key.kid, "typ": "logout+jwt"}
    unsigned = unsigned_token(header, logout_claims()).rsplit(".", 1)[0]
    modulus = rsa_key.as_dict(private=False)["n"]
    assert isinstance(modulus, str)
    for secret in (rsa_key.as_pem(private=False), modulus.encode()):
        signature = hmac.new(secret, unsigned.encode(), hashlib.sha256).digest()
        refused(unsigned + "." + b64url(signature), key_set(rsa_key), "logout_token_invalid")


@pytest.mark.parametrize("garbage", [
    "", "not-a-jwt", "a.b.c", "e30.e30.", "e30.e30.e30.e30.e30", "x" * 50, "é.é.é",
])
def test_what_is_not_a_signed_jwt_is_refused(rsa_key: RSAKey, garbage: str) -> None:
    refused(garbage, key_set(rsa_key), "logout_token_invalid")


def test_a_signed_payload_that_is_not_a_json_object_is_refused(rsa_key: RSAKey) -> None:
    token = jws.serialize_compact({"alg": "RS256", "kid": rsa_key.kid}, b"[1, 2]", rsa_key)
    refused(token, key_set(rsa_key), "logout_token_invalid")


def test_every_code_is_a_distinct_module_constant() -> None:
    codes = [value for name, value in vars(lt).items()
             if name.isupper() and isinstance(value, str) and value.startswith("logout_token_")]
    assert len(codes) == len(set(codes)) == 12
