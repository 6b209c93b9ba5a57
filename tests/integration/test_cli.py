"""``python -m renewal_middleware`` run for real against the bundled test OP."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from renewal_middleware.config import Settings
from tests.op.harness import CLIENT_ID, CLIENT_SECRET, Provider, start_provider

pytestmark = pytest.mark.integration

BASE_URL = "http://127.0.0.1:8000"
KEY = "integration-test-key-0123456789abcdefghij"


def run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RENEWAL_")}
    clean.update(PYTHONIOENCODING="utf-8", **env)
    return subprocess.run([sys.executable, "-m", "renewal_middleware", *args], env=clean,
                          capture_output=True, text=True, timeout=60, check=False)


def check(issuer: str, **env: str) -> subprocess.CompletedProcess[str]:
    settings = {"RENEWAL_ISSUER": issuer, "RENEWAL_CLIENT_ID": CLIENT_ID,
                "RENEWAL_CLIENT_SECRET": CLIENT_SECRET, "RENEWAL_SECRET_KEYS": KEY,
                "RENEWAL_BASE_URL": BASE_URL, "RENEWAL_HTTP_TIMEOUT_SECONDS": "5"}
    return run("check", **{**settings, **env})


def marks(output: str) -> list[str]:
    return [line[0] for line in output.splitlines() if line[:2] in ("✓ ", "✗ ", "! ")]


def test_configured_right(provider: Provider) -> None:
    result = check(provider.issuer)
    assert result.returncode == 0, result.stdout + result.stderr
    assert marks(result.stdout) == ["✓"] * 9
    for uri in ("/callback", "/silent"):
        assert f"✓ redirect URI {BASE_URL}{uri} is registered" in result.stdout
    assert f"✓ post-logout redirect URI {BASE_URL}/ is accepted" in result.stdout
    assert f"✓ discovery at {provider.issuer}/.well-known/openid-configuration" in result.stdout
    assert f"✓ client {CLIENT_ID} authenticates with client_secret_basic" in result.stdout
    assert f"✓ client {CLIENT_ID} may use the refresh_token grant" in result.stdout
    for uri in ("/callback", "/silent", "/", "/backchannel-logout"):
        assert f" {BASE_URL}{uri}\n" in result.stdout
    assert result.stderr == ""


def test_client_secret_post(provider: Provider) -> None:
    result = check(provider.issuer, RENEWAL_TOKEN_ENDPOINT_AUTH_METHOD="client_secret_post")
    assert result.returncode == 0, result.stdout
    assert "authenticates with client_secret_post" in result.stdout


def test_wrong_client_secret(provider: Provider) -> None:
    result = check(provider.issuer, RENEWAL_CLIENT_SECRET="not-the-secret")
    assert result.returncode == 1
    assert ("✗ client credentials rejected (invalid_client: client authentication failed) — "
            "fix: check RENEWAL_CLIENT_ID and RENEWAL_CLIENT_SECRET") in result.stdout
    assert marks(result.stdout).count("✗") == 1


def test_redirect_uris_not_registered(provider: Provider) -> None:
    result = check(provider.issuer, RENEWAL_BASE_URL="http://127.0.0.1:8000/elsewhere")
    assert result.returncode == 1
    for uri in ("/callback", "/silent"):
        assert (f"✗ redirect URI http://127.0.0.1:8000/elsewhere{uri} is not registered"
                in result.stdout)
    assert ("✗ post-logout redirect URI http://127.0.0.1:8000/elsewhere/ is not registered"
            in result.stdout)


def test_issuer_with_a_trailing_path(provider: Provider) -> None:
    result = check(provider.issuer + "/realms/main")
    assert result.returncode == 1
    assert (f"✗ discovery: {provider.issuer}/realms/main/.well-known/openid-configuration "
            "answered HTTP 404 — fix: set RENEWAL_ISSUER") in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_provider_down() -> None:
    op = start_provider()
    issuer = op.issuer
    op.stop()
    result = check(issuer)
    assert result.returncode == 1
    assert f"✗ discovery: {issuer}/.well-known/openid-configuration is unreachable (" \
        in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


@pytest.fixture(scope="module")
def no_refresh_provider() -> Iterator[Provider]:
    """A client registered with the authorization_code grant only."""
    client = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
              "redirect_uris": [BASE_URL + "/callback", BASE_URL + "/silent"],
              "post_logout_redirect_uris": [BASE_URL + "/"],
              "grant_types": ["authorization_code"], "scope": "openid profile email"}
    op = start_provider(clients=[client])
    try:
        yield op
    finally:
        op.stop()


def test_client_without_refresh_token_grant(no_refresh_provider: Provider) -> None:
    # Discovery is provider-wide: it still lists offline_access and refresh_token. Only the
    # token endpoint shows the client's restriction, which the refresh_token probe reveals.
    doc = no_refresh_provider.discovery()
    assert "refresh_token" in doc["grant_types_supported"]
    assert "offline_access" in doc["scopes_supported"]
    result = check(no_refresh_provider.issuer)
    assert result.returncode == 1
    assert (f"✗ client {CLIENT_ID} may not use the refresh_token grant (invalid_request: "
            "requested grant type is not allowed for this client) — fix:") in result.stdout
    assert marks(result.stdout).count("✗") == 1
    assert f"✓ client {CLIENT_ID} authenticates" in result.stdout


def test_client_without_refresh_token_grant_and_no_offline_access(
        no_refresh_provider: Provider) -> None:
    result = check(no_refresh_provider.issuer, RENEWAL_SCOPE="openid profile email")
    assert result.returncode == 0, result.stdout
    assert "✓ scope asks for no offline_access" in result.stdout


def test_keygen_output_is_accepted_by_settings() -> None:
    result = run("keygen")
    assert result.returncode == 0
    key = result.stdout.strip()
    assert "\n" not in key
    settings = Settings.load({"RENEWAL_ISSUER": "http://127.0.0.1:9", "RENEWAL_CLIENT_ID": "c",
                              "RENEWAL_CLIENT_SECRET": "s", "RENEWAL_BASE_URL": BASE_URL,
                              "RENEWAL_SECRET_KEYS": key})
    assert settings.secret_keys[0].reveal() == key
    assert run("keygen").stdout.strip() != key


def test_configuration_error_exit_code() -> None:
    result = run("check", RENEWAL_ISSUER="http://127.0.0.1:9")
    assert result.returncode == 1
    assert result.stdout.startswith("✗ configuration: setting 'client_id' is required")
    assert result.stderr == ""
