"""The provider without I/O: discovery, JWKS caching, token responses, ID-token checks."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey

from renewal_middleware.errors import (
    AuthenticationError,
    ProviderUnavailable,
    TokenRequestRejected,
)
from renewal_middleware.oidc import (
    DISCOVERY_TTL,
    JWKS_REFETCH_INTERVAL,
    GetJSON,
    Provider,
    ProviderMetadata,
    TokenRequest,
    UserInfoRequest,
    check_auth_time,
)
from tests.unit.helpers import (
    CLIENT_ID,
    DISCOVERY,
    DISCOVERY_URL,
    ISSUER,
    T0,
    b64url,
    id_claims,
    jwks,
    make_settings,
    mint,
    run_flow,
    unsigned_token,
)

JWKS_URL = DISCOVERY["jwks_uri"]


def provider() -> Provider:
    return Provider(make_settings())


def op(*keys: RSAKey, discovery: dict[str, Any] | None = None, calls: list[str] | None = None):
    """A handler answering discovery and the JWKS (``keys``), recording the URLs asked."""

    def handle(effect: Any) -> Any:
        assert isinstance(effect, GetJSON), effect
        if calls is not None:
            calls.append(effect.url)
        if effect.url == DISCOVERY_URL:
            return discovery or DISCOVERY
        assert effect.url == JWKS_URL
        return jwks(*keys)

    return handle


def validate(p: Provider, token: str, handler: Any, *, now: float = T0,
             nonce: str | None = "nonce-1", **kwargs: Any) -> dict[str, Any]:
    result, _ = run_flow(p.validate_id_token(now, token, nonce=nonce, **kwargs), handler)
    return result


# -- discovery ----------------------------------------------------------------------------------


def test_metadata_is_parsed_and_cached() -> None:
    p = provider()
    calls: list[str] = []
    meta, _ = run_flow(p.metadata(T0), op(calls=calls))
    assert meta.token_endpoint == DISCOVERY["token_endpoint"]
    assert meta.end_session_endpoint == DISCOVERY["end_session_endpoint"]
    assert meta.id_token_algorithms == frozenset({"RS256"})
    again, effects = run_flow(p.metadata(T0 + DISCOVERY_TTL - 1), op(calls=calls))
    assert again is meta
    assert effects == []
    run_flow(p.metadata(T0 + DISCOVERY_TTL + 1), op(calls=calls))
    assert calls == [DISCOVERY_URL, DISCOVERY_URL]


def test_first_discovery_failure_propagates() -> None:
    def down(effect: Any) -> Any:
        raise ProviderUnavailable("down")

    with pytest.raises(ProviderUnavailable):
        run_flow(provider().metadata(T0), down)


def test_stale_discovery_is_kept_when_the_refetch_fails() -> None:
    p = provider()
    meta, _ = run_flow(p.metadata(T0), op())

    def down(effect: Any) -> Any:
        raise ProviderUnavailable("down")

    again, effects = run_flow(p.metadata(T0 + DISCOVERY_TTL + 1), down)
    assert again is meta
    assert effects == [GetJSON(DISCOVERY_URL)]


@pytest.mark.parametrize("doc", [
    [], {**DISCOVERY, "issuer": "https://evil.example"},
    {k: v for k, v in DISCOVERY.items() if k != "token_endpoint"},
    {**DISCOVERY, "jwks_uri": ""},
])
def test_unusable_discovery_is_refused(doc: object) -> None:
    with pytest.raises(ProviderUnavailable):
        ProviderMetadata.parse(doc, ISSUER)


def test_discovery_never_allows_symmetric_or_none_algorithms() -> None:
    meta = ProviderMetadata.parse(
        {**DISCOVERY, "id_token_signing_alg_values_supported": ["none", "HS256", "ES256"]},
        ISSUER)
    assert meta.id_token_algorithms == frozenset({"ES256"})
    only_bad = ProviderMetadata.parse(
        {**DISCOVERY, "id_token_signing_alg_values_supported": ["none", "HS256"]}, ISSUER)
    assert only_bad.id_token_algorithms == frozenset({"RS256"})


def test_optional_endpoints_may_be_absent() -> None:
    doc = {k: v for k, v in DISCOVERY.items()
           if k not in ("end_session_endpoint", "revocation_endpoint", "userinfo_endpoint")}
    meta = ProviderMetadata.parse(doc, ISSUER)
    assert (meta.end_session_endpoint, meta.revocation_endpoint, meta.userinfo_endpoint) == (
        None, None, None)


# -- token requests -----------------------------------------------------------------------------


def test_refresh_yields_the_refresh_token_grant() -> None:
    p = provider()
    flow = p.refresh_grant(T0, "rt-1")
    assert next(flow) == GetJSON(DISCOVERY_URL)
    assert flow.send(DISCOVERY) == TokenRequest(
        DISCOVERY["token_endpoint"], {"grant_type": "refresh_token", "refresh_token": "rt-1"})
    with pytest.raises(StopIteration) as stop:
        flow.send({"access_token": "at-2", "token_type": "Bearer"})
    assert stop.value.value["access_token"] == "at-2"


@pytest.mark.parametrize("answer", [
    "not json", {}, {"access_token": ""}, {"access_token": 5},
    {"access_token": "at", "token_type": "mac"},
])
def test_unusable_token_response_is_provider_unavailable(answer: object) -> None:
    p = provider()
    run_flow(p.metadata(T0), op())
    flow = p.exchange_code(T0, "code", "https://app.example/callback", "verifier")
    next(flow)
    with pytest.raises(ProviderUnavailable):
        flow.send(answer)


def test_token_request_rejection_propagates() -> None:
    p = provider()
    run_flow(p.metadata(T0), op())
    flow = p.refresh_grant(T0, "rt")
    next(flow)
    with pytest.raises(TokenRequestRejected):
        flow.throw(TokenRequestRejected("invalid_grant"))


def test_userinfo_claims_only_for_the_same_subject() -> None:
    p = provider()
    run_flow(p.metadata(T0), op())
    flow = p.userinfo(T0, "at-1", "alice")
    assert next(flow) == UserInfoRequest(DISCOVERY["userinfo_endpoint"], "at-1")
    with pytest.raises(StopIteration) as stop:
        flow.send({"sub": "alice", "name": "Alice"})
    assert stop.value.value == {"sub": "alice", "name": "Alice"}

    other, _ = run_flow(p.userinfo(T0, "at-1", "alice"), lambda e: {"sub": "mallory"})
    assert other == {}

    def down(effect: Any) -> Any:
        raise ProviderUnavailable("down")

    assert run_flow(p.userinfo(T0, "at-1", "alice"), down)[0] == {}


# -- ID tokens ----------------------------------------------------------------------------------


def test_valid_id_token_is_accepted(rsa_key: RSAKey) -> None:
    p = provider()
    calls: list[str] = []
    claims = validate(p, mint(rsa_key, id_claims(name="Alice")), op(rsa_key, calls=calls))
    assert claims["sub"] == "alice"
    assert claims["name"] == "Alice"
    assert calls == [DISCOVERY_URL, JWKS_URL]
    # The JWKS is cached.
    validate(p, mint(rsa_key, id_claims()), op(rsa_key, calls=calls), now=T0 + 10)
    assert calls == [DISCOVERY_URL, JWKS_URL]


def test_audience_list_including_the_client_is_accepted(rsa_key: RSAKey) -> None:
    token = mint(rsa_key, id_claims(aud=[CLIENT_ID], azp=CLIENT_ID))
    assert validate(provider(), token, op(rsa_key))["sub"] == "alice"


def test_clock_skew_is_tolerated(rsa_key: RSAKey) -> None:
    token = mint(rsa_key, id_claims(iat=int(T0) + 30, exp=int(T0) - 30))
    assert validate(provider(), token, op(rsa_key))["sub"] == "alice"


@pytest.mark.parametrize("changes", [
    {"nonce": "other-nonce"},
    {"nonce": None},
    {"aud": "another-client"},
    {"aud": "another-client", "azp": CLIENT_ID},
    {"aud": ["another-client", "third"]},
    {"aud": [CLIENT_ID, "third"], "azp": "third"},
    {"iss": "https://evil.example"},
    {"iss": None},
    {"exp": int(T0) - 3600},
    {"exp": None},
    {"iat": None},
    {"iat": int(T0) + 3600},
    {"nbf": int(T0) + 3600},
    {"sub": None},
    {"sub": ""},
], ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()))
def test_id_token_with_wrong_claims_is_refused(rsa_key: RSAKey, changes: dict[str, Any]) -> None:
    token = mint(rsa_key, id_claims(**changes))
    with pytest.raises(AuthenticationError) as info:
        validate(provider(), token, op(rsa_key))
    assert info.value.code == "invalid_id_token"


def test_at_hash_must_match_the_access_token(rsa_key: RSAKey) -> None:
    digest = hashlib.sha256(b"at-1").digest()
    at_hash = b64url(digest[:16])
    token = mint(rsa_key, id_claims(at_hash=at_hash))
    assert validate(provider(), token, op(rsa_key), access_token="at-1")["sub"] == "alice"
    with pytest.raises(AuthenticationError):
        validate(provider(), token, op(rsa_key), access_token="at-other")


def test_subject_change_is_refused(rsa_key: RSAKey) -> None:
    token = mint(rsa_key, id_claims(sub="mallory"))
    with pytest.raises(AuthenticationError) as info:
        validate(provider(), token, op(rsa_key), expected_sub="alice")
    assert info.value.code == "subject_changed"


def test_alg_none_is_refused(rsa_key: RSAKey) -> None:
    token = unsigned_token({"alg": "none", "kid": "k1"}, id_claims())
    with pytest.raises(AuthenticationError):
        validate(provider(), token, op(rsa_key))
    no_kid = unsigned_token({"alg": "none"}, id_claims())
    with pytest.raises(AuthenticationError):
        validate(provider(), no_kid, op(rsa_key))


def test_hs256_signed_with_the_public_key_is_refused(rsa_key: RSAKey) -> None:
    """The classic key confusion: HMAC keyed with the provider's public key."""
    header, claims = {"alg": "HS256", "kid": "k1"}, id_claims()
    unsigned = unsigned_token(header, claims).rsplit(".", 1)[0]
    for secret in (rsa_key.as_pem(private=False), rsa_key.as_dict(private=False)["n"].encode()):
        signature = hmac.new(secret, unsigned.encode(), hashlib.sha256).digest()
        with pytest.raises(AuthenticationError):
            validate(provider(), unsigned + "." + b64url(signature), op(rsa_key))


def test_signature_by_another_key_with_the_same_kid_is_refused(rsa_key: RSAKey) -> None:
    impostor = RSAKey.generate_key(2048, parameters={"kid": "k1"})
    with pytest.raises(AuthenticationError):
        validate(provider(), mint(impostor, id_claims()), op(rsa_key))


@pytest.mark.parametrize("garbage", ["", "a.b.c", "not-a-jwt", "e30.e30.", "x" * 50])
def test_garbage_id_token_is_refused(rsa_key: RSAKey, garbage: str) -> None:
    with pytest.raises(AuthenticationError):
        validate(provider(), garbage, op(rsa_key))


def test_unknown_kid_refetches_the_jwks_once_then_refuses(
        rsa_key: RSAKey, rotated_key: RSAKey) -> None:
    p = provider()
    validate(p, mint(rsa_key, id_claims()), op(rsa_key))
    later = T0 + JWKS_REFETCH_INTERVAL + 1
    calls: list[str] = []
    token = mint(rotated_key, id_claims(iat=int(later), exp=int(later) + 300))
    with pytest.raises(AuthenticationError):
        validate(p, token, op(rsa_key, calls=calls), now=later)
    assert calls == [JWKS_URL]


def test_unknown_kid_accepted_when_the_refetched_jwks_has_it(
        rsa_key: RSAKey, rotated_key: RSAKey) -> None:
    p = provider()
    validate(p, mint(rsa_key, id_claims()), op(rsa_key))
    later = T0 + JWKS_REFETCH_INTERVAL + 1
    calls: list[str] = []
    token = mint(rotated_key, id_claims(iat=int(later), exp=int(later) + 300))
    claims = validate(p, token, op(rsa_key, rotated_key, calls=calls), now=later)
    assert claims["sub"] == "alice"
    assert calls == [JWKS_URL]
    # The new set is kept: no further fetch for either key.
    calls.clear()
    validate(p, token, op(calls=calls), now=later + 1)
    validate(p, mint(rsa_key, id_claims(iat=int(later), exp=int(later) + 300)),
             op(calls=calls), now=later + 1)
    assert calls == []


def test_unknown_kid_refetch_is_rate_limited(rsa_key: RSAKey, rotated_key: RSAKey) -> None:
    p = provider()
    validate(p, mint(rsa_key, id_claims()), op(rsa_key))
    calls: list[str] = []
    # The first unknown kid refetches at once, even right after a regular fetch...
    with pytest.raises(AuthenticationError):
        validate(p, mint(rotated_key, id_claims()), op(rsa_key, calls=calls), now=T0 + 1)
    assert len(calls) == 1
    # ...further unknown kids within the interval do not.
    with pytest.raises(AuthenticationError):
        validate(p, mint(rotated_key, id_claims()), op(rsa_key, calls=calls),
                 now=T0 + JWKS_REFETCH_INTERVAL)
    assert len(calls) == 1


def test_unusable_jwks_is_provider_unavailable(rsa_key: RSAKey) -> None:
    def handle(effect: Any) -> Any:
        return DISCOVERY if effect.url == DISCOVERY_URL else {"keys": [{"kty": "nope"}]}

    with pytest.raises(ProviderUnavailable):
        validate(provider(), mint(rsa_key, id_claims()), handle)


@pytest.mark.parametrize("changes", [
    {"at_hash": ["not", "a", "string"]},
    {"at_hash": 5},
    {"amr": "pwd"},
    {"auth_time": "yesterday"},
    {"azp": 5},
    {"nonce": 5},
    {"exp": "9999999999"},
], ids=lambda c: ",".join(f"{k}={v!r}" for k, v in c.items()))
def test_signed_id_token_with_malformed_claims_is_an_authentication_error(
        rsa_key: RSAKey, changes: dict[str, Any]) -> None:
    """validate_id_token "returns the claims or raises AuthenticationError", never a crash."""
    token = mint(rsa_key, id_claims(**changes))
    with pytest.raises(AuthenticationError):
        validate(provider(), token, op(rsa_key), access_token="at-1")


def test_only_the_algorithms_the_provider_declares_are_accepted() -> None:
    ec_key = ECKey.generate_key("P-256", parameters={"kid": "e1"})
    token = jwt.encode({"alg": "ES256", "kid": "e1"}, id_claims(), ec_key)
    with pytest.raises(AuthenticationError):
        validate(provider(), token, op(ec_key))  # DISCOVERY declares RS256 only
    es256 = {**DISCOVERY, "id_token_signing_alg_values_supported": ["RS256", "ES256"]}
    assert validate(provider(), token, op(ec_key, discovery=es256))["sub"] == "alice"


# -- max_age and auth_time (OIDC Core 3.1.2.1, 3.1.3.7 point 13) ---------------------------------

SKEW = make_settings().clock_skew_seconds


@pytest.mark.parametrize(("max_age", "age"), [(0, 0), (0, SKEW), (300, 300 + SKEW), (300, 10)])
def test_a_recent_enough_auth_time_passes(max_age: int, age: int) -> None:
    check_auth_time({"auth_time": int(T0) - age}, max_age, T0, SKEW)


@pytest.mark.parametrize(("max_age", "age"), [(0, SKEW + 1), (300, 301 + SKEW), (60, 86400)])
def test_an_auth_time_too_old_fails(max_age: int, age: int) -> None:
    with pytest.raises(AuthenticationError) as caught:
        check_auth_time({"auth_time": int(T0) - age}, max_age, T0, SKEW)
    assert caught.value.code == "auth_time_too_old"


def test_a_missing_auth_time_fails() -> None:
    with pytest.raises(AuthenticationError) as caught:
        check_auth_time({"sub": "alice"}, 300, T0, SKEW)
    assert caught.value.code == "auth_time_missing"


@pytest.mark.parametrize("bad", ["1700000000", True, float("nan"), None])
def test_an_auth_time_that_is_no_numeric_date_fails(bad: object) -> None:
    with pytest.raises(AuthenticationError) as caught:
        check_auth_time({"auth_time": bad}, 300, T0, SKEW)
    assert caught.value.code == ("auth_time_missing" if bad is None else "invalid_id_token")


def test_the_id_token_is_checked_against_max_age(rsa_key: RSAKey) -> None:
    p = provider()
    fresh = mint(rsa_key, id_claims(auth_time=int(T0) - 5, acr="gold", amr=["pwd"]))
    claims = validate(p, fresh, op(rsa_key), max_age=0)
    assert (claims["auth_time"], claims["acr"], claims["amr"]) == (int(T0) - 5, "gold", ["pwd"])
    old = mint(rsa_key, id_claims(auth_time=int(T0) - 3600))
    assert validate(p, old, op(rsa_key))["auth_time"] == int(T0) - 3600  # no max_age asked
    with pytest.raises(AuthenticationError, match="recent") as caught:
        validate(p, old, op(rsa_key), max_age=600)
    assert caught.value.code == "auth_time_too_old"
    with pytest.raises(AuthenticationError) as caught:
        validate(p, mint(rsa_key, id_claims()), op(rsa_key), max_age=600)
    assert caught.value.code == "auth_time_missing"
