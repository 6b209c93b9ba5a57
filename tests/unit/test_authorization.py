"""The authorization request, and the checks of its response (pure, no flow to drive)."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

import renewal_middleware
from renewal_middleware.authorization import (
    SILENT_LOGIN_ERRORS,
    authorization_code,
    authorization_url,
)
from renewal_middleware.errors import AuthenticationError
from renewal_middleware.login_parameters import LoginParameters, login_url
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


# -- per-login parameters ----------------------------------------------------------------------


def test_the_allowed_parameters_are_taken_from_a_login_query() -> None:
    params = LoginParameters.from_query({
        "prompt": "login", "login_hint": "alice@example.com", "ui_locales": "fr-CA fr en",
        "max_age": "0", "acr_values": "urn:mace:incommon:iap:silver phr",
        "return_to": "/x", "scope": "admin", "redirect_uri": "https://evil.example",
        "claims": "{}", "request": "eyJ",
    })
    assert params == LoginParameters(prompt="login", login_hint="alice@example.com",
                                     ui_locales="fr-CA fr en", max_age=0,
                                     acr_values="urn:mace:incommon:iap:silver phr")
    assert params.to_query() == {
        "prompt": "login", "login_hint": "alice@example.com", "ui_locales": "fr-CA fr en",
        "max_age": "0", "acr_values": "urn:mace:incommon:iap:silver phr"}
    assert LoginParameters.from_query({}) == LoginParameters()
    assert LoginParameters().to_query() == {}
    assert "alice@example.com" not in repr(params)


@pytest.mark.parametrize(("value", "expected"), [
    ("login", "login"), ("consent", "consent"), ("select_account", "select_account"),
    ("none", "none"), ("login consent", "login consent"), ("login  login", "login"),
    ("consent select_account", "consent select_account"),
])
def test_prompt_takes_the_oidc_values(value: str, expected: str) -> None:
    assert LoginParameters.from_query({"prompt": value}).prompt == expected


@pytest.mark.parametrize(("name", "value"), [
    ("prompt", "create"), ("prompt", "login bogus"), ("prompt", "none login"),
    ("prompt", "LOGIN"), ("prompt", "   "),
    ("max_age", "-1"), ("max_age", "1.5"), ("max_age", "1e3"), ("max_age", "+5"),
    ("max_age", " 5"), ("max_age", "٣"), ("max_age", "12345678901"),
    ("login_hint", "a" * 257), ("login_hint", "alice\r\nSet-Cookie: x"),
    ("ui_locales", "fr_FR"), ("ui_locales", "fr  en"), ("ui_locales", "<script>"),
    ("ui_locales", "en " * 50),
    ("acr_values", 'a"b'), ("acr_values", "x" * 513), ("acr_values", "é"),
])
def test_a_refused_value_is_dropped_with_a_log_line(
        name: str, value: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, "renewal_middleware"):
        params = LoginParameters.from_query({name: value, "login_hint": "bob"}
                                            if name != "login_hint" else {name: value})
    assert getattr(params, name) is None
    assert f"parameter {name} dropped" in caplog.text
    assert value not in caplog.text or name == "prompt"  # a login_hint may be personal


def test_empty_values_are_no_values(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, "renewal_middleware"):
        params = LoginParameters.from_query(dict.fromkeys(("prompt", "max_age", "acr_values"), ""))
    assert params == LoginParameters()
    assert not caplog.text


def test_limits_are_inclusive() -> None:
    params = LoginParameters.from_query({"login_hint": "a" * 256, "max_age": "9" * 10,
                                         "acr_values": "x" * 512, "ui_locales": "e" * 8})
    assert params.login_hint == "a" * 256 and params.max_age == 9_999_999_999
    assert params.acr_values == "x" * 512 and params.ui_locales == "eeeeeeee"


def login_tx(**params: Any) -> LoginTransaction:
    return LoginTransaction.start("login", "/", params=LoginParameters(**params))


def test_a_login_sends_its_parameters() -> None:
    query = query_of(authorization_url(make_settings(), ISSUER + "/auth", login_tx(
        login_hint="bob", ui_locales="de", max_age=0, acr_values="gold silver")))
    assert (query["login_hint"], query["ui_locales"]) == ("bob", "de")
    assert (query["max_age"], query["acr_values"]) == ("0", "gold silver")
    assert query["prompt"] == "consent"  # the configured one, as none was asked for


@pytest.mark.parametrize(("configured", "asked", "sent"), [
    ("auto", "login", "login consent"),  # offline_access still needs consent
    ("auto", "consent", "consent"),
    ("auto", "select_account consent", "select_account consent"),
    ("auto", "none", "none"),
    ("login", "select_account", "select_account"),  # an explicit setting is replaced
    ("", "login", "login"),
    ("consent", "none", "none"),
])
def test_the_prompt_asked_for_overrides_the_configured_one(configured: str, asked: str,
                                                           sent: str) -> None:
    settings = make_settings(login_prompt=configured)
    assert query_of(authorization_url(settings, ISSUER + "/auth",
                                      login_tx(prompt=asked)))["prompt"] == sent


def test_auto_adds_no_consent_without_offline_access() -> None:
    settings = make_settings(scope="openid email")
    assert query_of(authorization_url(settings, ISSUER + "/auth",
                                      login_tx(prompt="login")))["prompt"] == "login"


def test_a_prompt_none_login_goes_without_offline_access() -> None:
    query = query_of(authorization_url(make_settings(), ISSUER + "/auth", login_tx(prompt="none")))
    assert query["prompt"] == "none"
    assert query["redirect_uri"] == BASE_URL + "/callback"
    assert "offline_access" not in query["scope"].split()


def test_login_url_builds_the_login_link() -> None:
    assert renewal_middleware.login_url is login_url
    assert login_url() == "/login"
    assert login_url("/x") == "/login?return_to=%2Fx"
    url = login_url("/account?tab=2", prompt="login", login_hint="alice@example.com",
                    ui_locales=["fr-CA", "fr"], max_age=0, acr_values=("gold", "silver"),
                    login_path="/auth/login")
    assert url == ("/auth/login?return_to=%2Faccount%3Ftab%3D2&prompt=login"
                   "&login_hint=alice%40example.com&ui_locales=fr-CA+fr&max_age=0"
                   "&acr_values=gold+silver")
    assert login_url(prompt=["login", "consent"]) == "/login?prompt=login+consent"
    assert login_url(prompt="login login") == "/login?prompt=login"  # as /login reads it
    assert login_url("/café") == "/login?return_to=%2Fcaf%C3%A9"


def test_login_url_round_trips_through_the_login_query() -> None:
    url = login_url("/x", prompt="select_account", login_hint="bob", ui_locales="de",
                    max_age=300, acr_values="gold")
    query = query_of("https://app.example" + url)
    assert query["return_to"] == "/x"
    assert LoginParameters.from_query(query) == LoginParameters(
        prompt="select_account", login_hint="bob", ui_locales="de", max_age=300,
        acr_values="gold")


@pytest.mark.parametrize("kwargs", [
    {"return_to": "//evil.example"}, {"return_to": "https://evil.example/"},
    {"prompt": "create"}, {"prompt": ["none", "login"]}, {"prompt": ""}, {"max_age": -1},
    {"max_age": True}, {"max_age": 1.5}, {"login_hint": "x" * 300}, {"ui_locales": "fr_FR"},
    {"acr_values": ""}, {"login_path": "https://app.example/login"}, {"login_path": "login"},
])
def test_login_url_refuses_what_login_would_drop(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        login_url(**kwargs)
