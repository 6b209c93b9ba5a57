"""``renewal-middleware check`` and ``keygen`` against a provider mocked with respx."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
import respx
from joserfc.jwk import RSAKey

from renewal_middleware.cli import check, main, new_secret_key
from renewal_middleware.config import MIN_SECRET_KEY_LENGTH, Settings
from renewal_middleware.doctor import PROBE_CODE, signing_keys
from tests.unit.helpers import BASE_URL, CLIENT_ID, CLIENT_SECRET, DISCOVERY, ISSUER, KEY_A

ENV = {
    "RENEWAL_ISSUER": ISSUER,
    "RENEWAL_CLIENT_ID": CLIENT_ID,
    "RENEWAL_CLIENT_SECRET": CLIENT_SECRET,
    "RENEWAL_SECRET_KEYS": KEY_A,
    "RENEWAL_BASE_URL": BASE_URL,
    "RENEWAL_HTTP_TIMEOUT_SECONDS": "2",
}
DOC: dict[str, Any] = {
    **DISCOVERY,
    "jwks_uri": ISSUER + "/jwks",
    "token_endpoint": ISSUER + "/token",
    "end_session_endpoint": ISSUER + "/session/end",
    "revocation_endpoint": ISSUER + "/token/revocation",
    "scopes_supported": ["openid", "profile", "email", "offline_access"],
    "grant_types_supported": ["authorization_code", "refresh_token"],
}
BAD_GRANT = httpx.Response(400, json={"error": "invalid_grant", "error_description": "nope"})


@pytest.fixture(scope="module")
def public_jwks() -> dict[str, Any]:
    key = RSAKey.generate_key(2048, parameters={"kid": "k1", "alg": "RS256", "use": "sig"})
    return {"keys": [key.as_dict(private=False)]}


@pytest.fixture
def op(public_jwks: dict[str, Any]) -> Iterator[respx.MockRouter]:
    """A healthy provider: every check passes."""
    with respx.mock(assert_all_called=False) as router:
        router.get(ISSUER + "/.well-known/openid-configuration", name="discovery").respond(
            json=DOC)
        router.get(ISSUER + "/jwks", name="jwks").respond(json=public_jwks)
        router.post(ISSUER + "/token", name="token").mock(return_value=BAD_GRANT)
        router.get(DOC["authorization_endpoint"], name="authorize").mock(
            side_effect=_back_to_the_app)
        router.get(ISSUER + "/session/end", name="end_session").respond(200, html="Sign out?")
        yield router


def _back_to_the_app(request: httpx.Request) -> httpx.Response:
    """prompt=none without a user: back to the (registered) redirect URI with an error."""
    back = request.url.params["redirect_uri"] + "?error=login_required&state=x"
    return httpx.Response(303, headers={"location": back})


def run(**env: str) -> tuple[int, str]:
    out = io.StringIO()
    code = check(out, {**ENV, **env})
    return code, out.getvalue()


def marked(output: str, mark: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith(mark + " ")]


def test_all_good(op: respx.MockRouter) -> None:
    code, out = run()
    assert code == 0, out
    assert marked(out, "✗") == [] and marked(out, "!") == []
    assert len(marked(out, "✓")) == 9
    assert f"✓ discovery at {ISSUER}/.well-known/openid-configuration names issuer {ISSUER}" in out
    assert "✓ JWKS has 1 signing key(s): RS256 kid=k1" in out
    assert f"✓ client {CLIENT_ID} authenticates with client_secret_basic" in out
    assert f"✓ client {CLIENT_ID} may use the refresh_token grant" in out
    assert out.rstrip().endswith("All checks passed")


def test_registration_uris(op: respx.MockRouter) -> None:
    _, out = run(RENEWAL_BASE_URL=BASE_URL + "/app/", RENEWAL_CALLBACK_PATH="/cb")
    for uri in ("/app/cb", "/app/silent", "/app/", "/app/backchannel-logout"):
        assert f" {BASE_URL}{uri}\n" in out


def test_basic_auth_probe_sends_what_the_middleware_sends(op: respx.MockRouter) -> None:
    run()
    request = op["token"].calls[0].request
    form = parse_qs(request.content.decode())
    assert form["grant_type"] == ["authorization_code"]
    assert form["code"] == [PROBE_CODE]
    assert form["redirect_uri"] == [BASE_URL + "/callback"]
    assert "client_secret" not in form
    expected = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
    assert request.headers["authorization"] == f"Basic {expected}"


def test_post_auth_probe(op: respx.MockRouter) -> None:
    code, out = run(RENEWAL_TOKEN_ENDPOINT_AUTH_METHOD="client_secret_post")
    assert code == 0, out
    request = op["token"].calls[0].request
    form = parse_qs(request.content.decode())
    assert form["client_id"] == [CLIENT_ID] and form["client_secret"] == [CLIENT_SECRET]
    assert "authorization" not in request.headers
    assert "authenticates with client_secret_post" in out


def test_configuration_error() -> None:
    code, out = run(RENEWAL_SECRET_KEYS="short")
    assert code == 1
    assert out.startswith("✗ configuration: setting 'secret_keys' (RENEWAL_SECRET_KEYS)")


def test_missing_setting() -> None:
    out = io.StringIO()
    assert check(out, {k: v for k, v in ENV.items() if k != "RENEWAL_ISSUER"}) == 1
    assert "✗ configuration: setting 'issuer' is required" in out.getvalue()


def test_provider_unreachable() -> None:
    with respx.mock() as router:
        router.get(ISSUER + "/.well-known/openid-configuration").mock(
            side_effect=httpx.ConnectError("Connection refused"))
        code, out = run()
    assert code == 1
    assert "✗ discovery: " in out and "is unreachable (ConnectError: Connection refused)" in out
    assert "fix: set RENEWAL_ISSUER" in out and "Traceback" not in out
    assert len(marked(out, "✗")) == 1  # nothing else is tried without discovery


def test_provider_timeout() -> None:
    with respx.mock() as router:
        router.get(ISSUER + "/.well-known/openid-configuration").mock(
            side_effect=httpx.ReadTimeout("slow"))
        code, out = run()
    assert code == 1 and "is unreachable (no answer in time)" in out


@pytest.mark.parametrize("response", [httpx.Response(404), httpx.Response(200, text="<html>")])
def test_discovery_not_found_or_not_json(response: httpx.Response) -> None:
    with respx.mock() as router:
        router.get(ISSUER + "/.well-known/openid-configuration").mock(return_value=response)
        code, out = run()
    assert code == 1
    assert ("answered HTTP 404" in out) or ("did not answer JSON" in out)


def test_issuer_mismatch(op: respx.MockRouter) -> None:
    op["discovery"].respond(json={**DOC, "issuer": ISSUER + "/realms/main"})
    code, out = run()
    assert code == 1
    assert (f"✗ discovery names issuer '{ISSUER}/realms/main', configured '{ISSUER}' — fix: "
            f"set RENEWAL_ISSUER={ISSUER}/realms/main") in out


def test_trailing_slash_is_the_same_issuer(op: respx.MockRouter) -> None:
    op["discovery"].respond(json={**DOC, "issuer": ISSUER + "/"})
    assert run()[0] == 0


def test_jwks_unreachable(op: respx.MockRouter) -> None:
    op["jwks"].respond(500)
    code, out = run()
    assert code == 1 and f"✗ JWKS: {ISSUER}/jwks answered HTTP 500" in out


def test_jwks_symmetric_only(op: respx.MockRouter) -> None:
    op["jwks"].respond(json={"keys": [{"kty": "oct", "k": "c2VjcmV0", "alg": "HS256"}]})
    code, out = run()
    assert code == 1 and "✗ JWKS at" in out and "no usable asymmetric signing key" in out


def test_signing_keys_filter(public_jwks: dict[str, Any]) -> None:
    rsa = public_jwks["keys"][0]
    assert signing_keys({"keys": [{**rsa, "use": "enc"}]}) == []
    assert signing_keys({"keys": [{**rsa, "alg": "none"}]}) == []
    assert signing_keys({"keys": [{"kty": "RSA", "n": "broken"}]}) == []
    assert signing_keys({"nokeys": []}) == []
    assert signing_keys({"keys": [{k: v for k, v in rsa.items() if k != "alg"}]}) == ["RSA kid=k1"]


def test_wrong_client_secret(op: respx.MockRouter) -> None:
    op["token"].respond(401, json={"error": "invalid_client",
                                   "error_description": "client authentication failed"})
    code, out = run()
    assert code == 1
    assert ("✗ client credentials rejected (invalid_client: client authentication failed) — "
            "fix: check RENEWAL_CLIENT_ID and RENEWAL_CLIENT_SECRET") in out
    assert "! refresh_token grant not checked: the client did not authenticate" in out
    assert len(op["token"].calls) == 1
    assert out.rstrip().endswith("1 problem(s) found")


def test_bare_401(op: respx.MockRouter) -> None:
    op["token"].respond(401, text="Unauthorized")
    code, out = run()
    assert code == 1 and "✗ client credentials rejected (HTTP 401)" in out


def test_invalid_request_about_the_code_is_authenticated(op: respx.MockRouter) -> None:
    op["token"].respond(400, json={"error": "invalid_request",
                                   "error_description": "code is malformed"})
    code, out = run(RENEWAL_SCOPE="openid")
    assert code == 0, out
    assert f"✓ client {CLIENT_ID} authenticates" in out


def test_token_endpoint_unexpected(op: respx.MockRouter) -> None:
    op["token"].respond(500, text="oops")
    code, out = run(RENEWAL_SCOPE="openid")
    assert code == 1 and "✗ token endpoint answered unexpectedly (HTTP 500)" in out


def test_token_endpoint_unreachable(op: respx.MockRouter) -> None:
    op["token"].mock(side_effect=httpx.ConnectError("refused"))
    code, out = run()
    assert code == 1 and f"✗ token endpoint {ISSUER}/token is unreachable" in out


def refresh_answer(answer: httpx.Response) -> Any:
    def respond(request: httpx.Request) -> httpx.Response:
        if b"grant_type=refresh_token" in request.content:
            return answer
        return BAD_GRANT
    return respond


def test_client_without_refresh_grant(op: respx.MockRouter) -> None:
    # What oidc-provider answers for a client registered without the refresh_token grant.
    op["token"].mock(side_effect=refresh_answer(httpx.Response(400, json={
        "error": "invalid_request",
        "error_description": "requested grant type is not allowed for this client"})))
    code, out = run()
    assert code == 1
    assert (f"✗ client {CLIENT_ID} may not use the refresh_token grant (invalid_request: "
            "requested grant type is not allowed for this client) — fix: enable refresh tokens"
            ) in out


def test_unauthorized_client_for_refresh(op: respx.MockRouter) -> None:
    op["token"].mock(side_effect=refresh_answer(httpx.Response(
        400, json={"error": "unauthorized_client"})))
    assert "may not use the refresh_token grant (unauthorized_client)" in run()[1]


def test_refresh_answer_unclear_is_a_warning(op: respx.MockRouter) -> None:
    op["token"].mock(side_effect=refresh_answer(httpx.Response(503)))
    code, out = run()
    assert code == 0
    assert "! refresh_token grant not confirmed: the provider answered HTTP 503" in out


def test_provider_without_offline_access(op: respx.MockRouter) -> None:
    op["discovery"].respond(json={**DOC, "scopes_supported": ["openid"],
                                  "grant_types_supported": ["authorization_code"]})
    code, out = run()
    assert code == 1
    assert ("✗ provider does not support scope offline_access nor grant type refresh_token"
            " — fix:") in out


def test_unpublished_lists_are_not_failures(op: respx.MockRouter) -> None:
    doc = {k: v for k, v in DOC.items() if k not in ("scopes_supported", "grant_types_supported")}
    op["discovery"].respond(json=doc)
    assert run()[0] == 0


def test_no_offline_access_needs_no_refresh(op: respx.MockRouter) -> None:
    op["discovery"].respond(json={**DOC, "grant_types_supported": ["authorization_code"]})
    code, out = run(RENEWAL_SCOPE="openid profile")
    assert code == 0
    assert "✓ scope asks for no offline_access: no refresh_token grant needed" in out
    assert len(op["token"].calls) == 1


def test_logout_endpoints_missing_warn_only(op: respx.MockRouter) -> None:
    doc = {k: v for k, v in DOC.items()
           if k not in ("end_session_endpoint", "revocation_endpoint")}
    op["discovery"].respond(json=doc)
    code, out = run()
    assert code == 0
    assert "! no end_session_endpoint: logout is only local" in out
    assert "! no revocation_endpoint: refresh tokens are not revoked at logout" in out


def test_keygen(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keygen"]) == 0
    key = capsys.readouterr().out.strip()
    assert len(key) >= MIN_SECRET_KEY_LENGTH and "," not in key
    settings = Settings.load({}, issuer=ISSUER, client_id=CLIENT_ID, client_secret="s",
                             base_url=BASE_URL, secret_keys=key)
    assert settings.secret_keys[0].reveal() == key
    assert new_secret_key() != new_secret_key()


def test_usage(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main([])
    assert exited.value.code == 2
    assert "keygen" in capsys.readouterr().err


def test_an_unregistered_redirect_uri_is_named(op: respx.MockRouter) -> None:
    op.routes["authorize"].mock(return_value=httpx.Response(
        400, html="<p>invalid_redirect_uri: redirect_uri did not match</p>"))
    code, out = run()
    assert code == 1
    assert (f"✗ redirect URI {BASE_URL}/callback is not registered (HTTP 400) — fix: register "
            f"{BASE_URL}/callback as a redirect URI of client {CLIENT_ID}") in out


def test_an_unregistered_post_logout_uri_is_named(op: respx.MockRouter) -> None:
    op.routes["end_session"].respond(400, html="post_logout_redirect_uri not registered")
    code, out = run()
    assert code == 1
    assert f"✗ post-logout redirect URI {BASE_URL}/ is not registered (HTTP 400)" in out
