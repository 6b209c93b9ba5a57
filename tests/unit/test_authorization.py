"""The authorization request, and the checks of its response (pure, no flow to drive)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from renewal_middleware.authorization import (
    SILENT_LOGIN_ERRORS,
    authorization_code,
    authorization_url,
)
from renewal_middleware.errors import AuthenticationError
from renewal_middleware.oidc import ProviderMetadata
from renewal_middleware.transaction import LoginTransaction
from tests.unit.helpers import BASE_URL, DISCOVERY, ISSUER, make_settings, s256


def metadata(**changes: object) -> ProviderMetadata:
    return ProviderMetadata.parse({**DISCOVERY, **changes}, ISSUER)


def refusal(query: dict[str, str], meta: ProviderMetadata | None = None) -> str:
    with pytest.raises(AuthenticationError) as caught:
        authorization_code(query, meta or metadata())
    return caught.value.code


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def test_the_code_of_a_good_response() -> None:
    assert authorization_code({"code": "c1", "state": "s", "iss": ISSUER}, metadata()) == "c1"
    assert authorization_code({"code": "c1"}, metadata()) == "c1"  # iss not advertised


def test_an_issuer_mix_up_is_refused_before_anything_else() -> None:
    assert refusal({"code": "c", "iss": "https://evil.example"}) == "issuer_mismatch"
    assert refusal({"error": "access_denied", "iss": ISSUER + "/"}) == "issuer_mismatch"


def test_iss_is_required_when_the_provider_advertises_it() -> None:
    meta = metadata(authorization_response_iss_parameter_supported=True)
    assert refusal({"code": "c"}, meta) == "issuer_mismatch"
    assert authorization_code({"code": "c", "iss": ISSUER}, meta) == "c"


@pytest.mark.parametrize("error", sorted(SILENT_LOGIN_ERRORS))
def test_a_silent_login_error_keeps_its_name(error: str) -> None:
    assert refusal({"error": error}) == error


def test_other_errors_are_authorization_errors_with_the_providers_words() -> None:
    with pytest.raises(AuthenticationError) as caught:
        authorization_code({"error": "access_denied", "error_description": "said no"}, metadata())
    assert caught.value.code == "authorization_error"
    assert "access_denied" in caught.value.message and "said no" in caught.value.message


@pytest.mark.parametrize("query", [{}, {"code": ""}, {"state": "s"}])
def test_a_response_without_a_code_is_refused(query: dict[str, str]) -> None:
    assert refusal(query) == "missing_code"


def test_a_login_asks_with_pkce_and_the_configured_prompt() -> None:
    tx = LoginTransaction.start("login", "/")
    query = query_of(authorization_url(make_settings(), ISSUER + "/auth", tx))
    assert query["redirect_uri"] == BASE_URL + "/callback"
    assert (query["state"], query["nonce"]) == (tx.state, tx.nonce)
    assert query["code_challenge"] == s256(tx.verifier)
    assert query["prompt"] == "consent"  # offline_access is asked for
    assert "offline_access" in query["scope"].split()


def test_a_silent_renewal_asks_prompt_none_without_offline_access() -> None:
    tx = LoginTransaction.start("silent", "/")
    query = query_of(authorization_url(make_settings(), ISSUER + "/auth?tenant=t", tx))
    assert query["tenant"] == "t"
    assert query["redirect_uri"] == BASE_URL + "/silent"
    assert query["prompt"] == "none"
    assert "offline_access" not in query["scope"].split()
