"""Settings: keyword arguments, RENEWAL_* variables, and the errors a misconfiguration gives."""

from __future__ import annotations

from typing import Any

import pytest

from renewal_middleware import ConfigurationError, Secret, Settings
from tests.unit.helpers import BASE_URL, CLIENT_ID, CLIENT_SECRET, ISSUER, KEY_A, KEY_B

ENV = {
    "RENEWAL_ISSUER": ISSUER,
    "RENEWAL_CLIENT_ID": CLIENT_ID,
    "RENEWAL_CLIENT_SECRET": CLIENT_SECRET,
    "RENEWAL_SECRET_KEYS": f"{KEY_A},{KEY_B}",
    "RENEWAL_BASE_URL": BASE_URL,
}
KWARGS: dict[str, Any] = {
    "issuer": ISSUER, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
    "secret_keys": [KEY_A], "base_url": BASE_URL,
}


def load(**overrides: Any) -> Settings:
    return Settings.load(environ={}, **{**KWARGS, **overrides})


def test_load_from_kwargs() -> None:
    settings = load()
    assert settings.issuer == ISSUER
    assert settings.client_id == CLIENT_ID
    assert settings.client_secret.reveal() == CLIENT_SECRET
    assert [k.reveal() for k in settings.secret_keys] == [KEY_A]
    assert settings.base_url == BASE_URL
    assert settings.redirect_uri == BASE_URL + "/callback"


def test_load_from_environ_with_defaults() -> None:
    settings = Settings.load(environ=ENV)
    assert settings.issuer == ISSUER
    assert settings.client_id == CLIENT_ID
    assert settings.client_secret == Secret(CLIENT_SECRET)
    # Comma-separated, newest first.
    assert [k.reveal() for k in settings.secret_keys] == [KEY_A, KEY_B]
    assert settings.base_url == BASE_URL
    assert settings.scope == "openid profile email offline_access"
    assert settings.audience is None
    assert settings.grace_seconds == 60


def test_environ_optional_settings() -> None:
    settings = Settings.load(environ={
        **ENV, "RENEWAL_SCOPE": "openid email", "RENEWAL_AUDIENCE": "https://api.example",
        "RENEWAL_GRACE_SECONDS": "120",
    })
    assert settings.scope == "openid email"
    assert settings.scopes == ("openid", "email")
    assert settings.audience == "https://api.example"
    assert settings.grace_seconds == 120


def test_secret_keys_from_environ_are_trimmed_and_empty_items_dropped() -> None:
    settings = Settings.load(environ={**ENV, "RENEWAL_SECRET_KEYS": f" {KEY_B} , ,{KEY_A},"})
    assert [k.reveal() for k in settings.secret_keys] == [KEY_B, KEY_A]


def test_empty_audience_means_none() -> None:
    assert Settings.load(environ={**ENV, "RENEWAL_AUDIENCE": ""}).audience is None


def test_kwargs_win_over_environ() -> None:
    settings = Settings.load(environ={**ENV, "RENEWAL_GRACE_SECONDS": "5"},
                             client_id="from-kwargs", grace_seconds=30,
                             secret_keys=[KEY_B])
    assert settings.client_id == "from-kwargs"
    assert settings.grace_seconds == 30
    assert [k.reveal() for k in settings.secret_keys] == [KEY_B]


def test_defaults_to_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    assert Settings.load().client_id == CLIENT_ID


@pytest.mark.parametrize("name", ["issuer", "client_id", "client_secret", "secret_keys",
                                  "base_url"])
def test_missing_required_setting_names_it_and_its_variable(name: str) -> None:
    env = {k: v for k, v in ENV.items() if k != f"RENEWAL_{name.upper()}"}
    with pytest.raises(ConfigurationError) as info:
        Settings.load(environ=env)
    assert name in str(info.value)
    assert f"RENEWAL_{name.upper()}" in str(info.value)


@pytest.mark.parametrize(("name", "value"), [
    ("issuer", "not a url"),
    ("issuer", "http://op.example"),
    ("issuer", ""),
    ("base_url", "ftp://app.example"),
    ("base_url", "http://app.example"),
    ("base_url", "https://app.example/app?x=1"),
    ("client_id", ""),
    ("secret_keys", ""),
    ("secret_keys", "too-short"),
    ("scope", "profile email"),
    ("grace_seconds", "abc"),
    ("grace_seconds", "-1"),
    ("session_lifetime_seconds", "0"),
    ("http_timeout_seconds", "soon"),
    ("cookie_samesite", "sometimes"),
    ("cookie_samesite", "none"),  # needs https; the base_url below is http on loopback
    ("token_endpoint_auth_method", "private_key_jwt"),
    ("cookie_name", "bad name;"),
    ("cookie_name", "__Host-session"),  # the prefix is added over https, not configured
    ("csrf_header", "X CSRF"),
    ("csrf_header", "Content-Type"),  # safelisted: no preflight, so no protection
    ("csrf_protection", "perhaps"),
    ("session_path", "/login"),  # the own paths must differ
    ("script_path", "renewal.js"),
    ("login_path", "login"),
    ("callback_path", "//evil.example/cb"),
])
def test_invalid_setting_from_environ_names_it_and_its_variable(name: str, value: str) -> None:
    env = {**ENV, "RENEWAL_BASE_URL": "http://127.0.0.1:8000", f"RENEWAL_{name.upper()}": value}
    with pytest.raises(ConfigurationError) as info:
        Settings.load(environ=env)
    message = str(info.value)
    assert repr(name) in message
    assert f"RENEWAL_{name.upper()}" in message
    assert isinstance(info.value, ValueError)  # ConfigurationError is also a ValueError


def test_invalid_kwarg_type_names_the_setting() -> None:
    with pytest.raises(ConfigurationError, match="RENEWAL_CLIENT_ID"):
        load(client_id=123)
    with pytest.raises(ConfigurationError, match="RENEWAL_GRACE_SECONDS"):
        load(grace_seconds=True)


def test_a_single_secret_as_secret_keys_is_accepted_or_refused_by_name() -> None:
    """``secret_keys=Secret(...)`` must not escape as a bare TypeError."""
    try:
        settings = load(secret_keys=Secret(KEY_A))
    except ConfigurationError as exc:
        assert "RENEWAL_SECRET_KEYS" in str(exc)
    else:
        assert [k.reveal() for k in settings.secret_keys] == [KEY_A]


def test_unknown_setting_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="grace_second"):
        load(grace_second=10)


def test_paths_must_differ() -> None:
    with pytest.raises(ConfigurationError, match="login_path"):
        load(callback_path="/login")


def test_secret_repr_hides_the_value() -> None:
    secret = Secret("hunter2-very-secret")
    assert "hunter2" not in repr(secret)
    assert "hunter2" not in str(secret)
    assert "hunter2" not in f"{secret!r} {secret}"
    assert secret.reveal() == "hunter2-very-secret"


def test_settings_repr_hides_client_secret_and_keys() -> None:
    text = repr(load())
    assert CLIENT_SECRET not in text
    assert KEY_A not in text


def test_short_secret_keys_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="RENEWAL_SECRET_KEYS"):
        load(secret_keys=["x" * 31])
    with pytest.raises(ConfigurationError, match="RENEWAL_SECRET_KEYS"):
        load(secret_keys=[KEY_A, "x" * 31])  # an old key must be strong too
    assert load(secret_keys=["x" * 32]).secret_keys == (Secret("x" * 32),)


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:8000", "http://localhost:8000", "http://[::1]:8000", "https://app.example",
])
def test_http_only_on_loopback_accepted(url: str) -> None:
    assert load(base_url=url).base_url == url


@pytest.mark.parametrize("url", [
    "http://app.example", "http://10.0.0.1", "http://localhost.evil.example",
    "http://127.0.0.1.evil.example",
])
def test_plain_http_elsewhere_refused(url: str) -> None:
    with pytest.raises(ConfigurationError, match="RENEWAL_BASE_URL"):
        load(base_url=url)
    with pytest.raises(ConfigurationError, match="RENEWAL_ISSUER"):
        load(issuer=url)


def test_trailing_slashes_are_dropped() -> None:
    settings = load(base_url=BASE_URL + "/", issuer=ISSUER + "/")
    assert settings.base_url == BASE_URL
    assert settings.issuer == ISSUER
    assert settings.redirect_uri == BASE_URL + "/callback"
    assert settings.post_logout_redirect_uri == BASE_URL + "/"


@pytest.mark.parametrize("url", [BASE_URL + "/?next=1", BASE_URL + "?next=1",
                                 BASE_URL + "#top"])
def test_base_url_with_query_or_fragment_refused(url: str) -> None:
    """base_url "must be an origin": a query or fragment would end up inside redirect_uri."""
    with pytest.raises(ConfigurationError, match="RENEWAL_BASE_URL"):
        load(base_url=url)


def test_uppercase_https_scheme_still_gives_secure_cookies() -> None:
    """Schemes are case-insensitive: an accepted ``HTTPS://`` base_url must not drop Secure."""
    assert load(base_url="HTTPS://app.example").secure_cookies


@pytest.mark.parametrize(("scope", "prompt", "expected"), [
    ("openid profile email offline_access", "auto", "consent"),
    ("openid profile", "auto", None),
    ("openid offline_access", "", None),
    ("openid offline_access", "login", "login"),
    ("openid", "select_account", "select_account"),
])
def test_effective_login_prompt(scope: str, prompt: str, expected: str | None) -> None:
    assert load(scope=scope, login_prompt=prompt).effective_login_prompt == expected


def test_secure_cookies_follow_base_url() -> None:
    assert load().secure_cookies
    assert not load(base_url="http://localhost:8000").secure_cookies


def test_choices_are_case_insensitive() -> None:
    settings = load(cookie_samesite="Strict", token_endpoint_auth_method="CLIENT_SECRET_POST")
    assert settings.cookie_samesite == "strict"
    assert settings.token_endpoint_auth_method == "client_secret_post"


@pytest.mark.parametrize(("raw", "expected"), [
    ("true", True), ("1", True), ("YES", True), ("on", True),
    ("false", False), ("0", False), ("no", False), (" Off ", False),
])
def test_encrypt_cookies_from_environ(raw: str, expected: bool) -> None:
    settings = Settings.load(environ={**ENV, "RENEWAL_ENCRYPT_COOKIES": raw})
    assert settings.encrypt_cookies is expected


def test_encrypt_cookies_defaults_on_and_refuses_garbage() -> None:
    assert Settings.load(environ=ENV).encrypt_cookies is True
    assert load(encrypt_cookies=False).encrypt_cookies is False
    with pytest.raises(ConfigurationError, match="RENEWAL_ENCRYPT_COOKIES"):
        Settings.load(environ={**ENV, "RENEWAL_ENCRYPT_COOKIES": "maybe"})


def test_the_typed_keyword_arguments_name_every_setting() -> None:
    import dataclasses

    from renewal_middleware.config import Options

    assert set(Options.__annotations__) == {f.name for f in dataclasses.fields(Settings)}
