"""Self-check of the test OpenID Provider (tests/op/server.mjs) and its harness.

No app under test: these tests act as a tiny relying party themselves.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import secrets
import threading
import time
from collections.abc import Iterator
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from tests.op.harness import (
    ALICE,
    BOB,
    CLIENT_ID,
    CLIENT_SECRET,
    Provider,
    browse_sync,
    free_port,
    login,
    login_sync,
    logout_at_op_sync,
    start_provider,
)

pytestmark = pytest.mark.integration

SCOPE = "openid profile email offline_access"


# ------------------------------------------------------------------------------------------------
# Small RP helpers


def b64url_json(segment: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    return data


def jwt_parts(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    header, payload, _signature = token.split(".")
    return b64url_json(header), b64url_json(payload)


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=")
    return verifier, challenge.decode()


def authorize_url(
    op: Provider, redirect_uri: str, *, prompt: str | None, scope: str = SCOPE, **extra: str
) -> tuple[str, str, str]:
    """(url, state, code_verifier) for a code + PKCE S256 authorization request."""
    verifier, challenge = pkce_pair()
    state = secrets.token_urlsafe(16)
    params = {
        "response_type": "code",
        "client_id": CLIENT_ID,
        "redirect_uri": redirect_uri,
        "scope": scope,
        "state": state,
        "nonce": secrets.token_urlsafe(16),
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        **({"prompt": prompt} if prompt else {}),
        **extra,
    }
    return f"{op.issuer}/auth?{urlencode(params)}", state, verifier


def query(url: str | httpx.URL) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(str(url)).query).items()}


def token_request(http: httpx.Client, op: Provider, **data: str) -> httpx.Response:
    return http.post(op.url("/token"), data=data, auth=(CLIENT_ID, CLIENT_SECRET))


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(trust_env=False, timeout=10) as client:
        yield client


# ------------------------------------------------------------------------------------------------
# The provider itself


def test_discovery(provider: Provider, http: httpx.Client) -> None:
    meta = http.get(provider.url("/.well-known/openid-configuration")).json()
    assert meta["issuer"] == provider.issuer
    for key in (
        "authorization_endpoint",
        "token_endpoint",
        "revocation_endpoint",
        "introspection_endpoint",
        "end_session_endpoint",
        "jwks_uri",
        "userinfo_endpoint",
    ):
        assert meta[key].startswith(provider.issuer + "/"), key
    assert meta["code_challenge_methods_supported"] == ["S256"]
    assert meta["authorization_response_iss_parameter_supported"] is True
    assert {"openid", "profile", "email", "offline_access"} <= set(meta["scopes_supported"])
    keys = http.get(meta["jwks_uri"]).json()["keys"]
    assert [(k["kty"], k["alg"]) for k in keys] == [("RSA", "RS256")]
    assert "d" not in keys[0]


def test_code_pkce_login_refresh_rotation_and_prompt_none(
    provider: Provider, http: httpx.Client
) -> None:
    provider.reset_stats()
    rp_port = free_port()  # nothing listens there: the redirect to the callback is only captured
    redirect_uri = f"http://127.0.0.1:{rp_port}/callback"

    # -- interactive login, by hand -----------------------------------------------------------
    url, state, verifier = authorize_url(provider, redirect_uri, prompt="consent")
    r = http.get(url)
    assert r.status_code == 303
    interaction = r.url.join(r.headers["location"])
    assert interaction.path.startswith("/interaction/")

    r = http.get(interaction)
    assert r.status_code == 200
    assert 'name="login"' in r.text and 'name="password"' in r.text
    login_action = interaction.join(interaction.path + "/login")

    r = http.post(login_action, data={"login": "alice", "password": "wrong"})
    assert r.status_code == 200
    assert "Invalid username or password" in r.text

    r = http.post(login_action, data={"login": ALICE.username, "password": ALICE.password})
    assert r.status_code == 303
    r = http.get(r.url.join(r.headers["location"]))  # resume at /auth/:uid -> consent interaction
    assert r.status_code == 303
    consent = r.url.join(r.headers["location"])
    r = http.get(consent)
    assert r.status_code == 200 and "Continue" in r.text and "offline_access" in r.text
    r = http.post(consent.join(consent.path + "/confirm"))
    assert r.status_code == 303
    r = http.get(r.url.join(r.headers["location"]))  # resume -> redirect to the RP callback
    assert r.status_code == 303
    callback = r.url.join(r.headers["location"])
    assert str(callback).startswith(redirect_uri + "?")
    params = query(callback)
    assert params["state"] == state
    assert params["iss"] == provider.issuer

    # -- code exchange --------------------------------------------------------------------------
    r = token_request(
        http,
        provider,
        grant_type="authorization_code",
        code=params["code"],
        redirect_uri=redirect_uri,
        code_verifier=verifier,
    )
    assert r.status_code == 200, r.text
    tokens = r.json()
    assert tokens["token_type"] == "Bearer"
    assert 55 <= tokens["expires_in"] <= 60
    assert set(tokens["scope"].split()) == set(SCOPE.split())
    rt1 = tokens["refresh_token"]
    header, claims = jwt_parts(tokens["id_token"])
    assert header["alg"] == "RS256" and header["kid"]
    assert claims["iss"] == provider.issuer and claims["aud"] == CLIENT_ID
    assert claims["sub"] == "alice"

    me = http.get(
        provider.url("/me"), headers={"Authorization": f"Bearer {tokens['access_token']}"}
    )
    assert me.status_code == 200
    assert me.json() == dict(ALICE.claims)

    # -- prompt=none with the OP session: a code, no interaction, no refresh token ---------------
    url, state, verifier = authorize_url(
        provider, redirect_uri, prompt="none", scope="openid profile email"
    )
    r = http.get(url)
    assert r.status_code == 303
    silent = query(r.headers["location"])
    assert str(r.headers["location"]).startswith(redirect_uri + "?")
    assert silent["state"] == state and "code" in silent, silent
    r = token_request(
        http,
        provider,
        grant_type="authorization_code",
        code=silent["code"],
        redirect_uri=redirect_uri,
        code_verifier=verifier,
    )
    assert r.status_code == 200, r.text
    assert "refresh_token" not in r.json()

    # -- refresh once: rotation hands out a new refresh token -----------------------------------
    r = token_request(http, provider, grant_type="refresh_token", refresh_token=rt1)
    assert r.status_code == 200, r.text
    rt2 = r.json()["refresh_token"]
    assert rt2 != rt1
    assert r.json()["access_token"] != tokens["access_token"]

    # -- reuse of the rotated token: invalid_grant, and the whole grant is revoked ---------------
    r = token_request(http, provider, grant_type="refresh_token", refresh_token=rt1)
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    r = token_request(http, provider, grant_type="refresh_token", refresh_token=rt2)
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"

    stats = provider.stats()
    assert stats["grants"] == {"authorization_code": 2, "refresh_token": 1}
    assert stats["grant_errors"] == {"refresh_token": 2}
    assert stats["authorizations"] == 2 and stats["authorizations_prompt_none"] == 1

    # The revoked grant is gone, so silent auth now needs consent again (the OP session lives on).
    url, state, _ = authorize_url(provider, redirect_uri, prompt="none", scope="openid")
    r = http.get(url)
    assert r.status_code == 303
    assert query(r.headers["location"])["error"] == "consent_required"


def test_prompt_none_without_session_and_pkce_required(provider: Provider) -> None:
    redirect_uri = f"http://127.0.0.1:{free_port()}/silent"
    with httpx.Client(trust_env=False, timeout=10) as fresh:
        url, state, _ = authorize_url(provider, redirect_uri, prompt="none", scope="openid")
        r = fresh.get(url)
        assert r.status_code == 303
        assert query(r.headers["location"]) == {
            "error": "login_required",
            "error_description": "End-User authentication is required",
            "state": state,
            "iss": provider.issuer,
        }
        # PKCE is required for this confidential client too.
        params = dict(query(url))
        del params["code_challenge"], params["code_challenge_method"]
        r = fresh.get(provider.url("/auth?" + urlencode(params)))
        assert r.status_code == 303
        assert query(r.headers["location"])["error"] == "invalid_request"
        # Loopback redirect URIs match on any port, but everything else must be exact.
        for bad in (f"http://127.0.0.1:{free_port()}/callback/", "http://localhost:8000/callback"):
            url, _, _ = authorize_url(provider, bad, prompt=None)
            r = fresh.get(url)
            assert r.status_code == 400 and "redirect_uri" in r.text, bad


def test_fault_injection_and_reset(provider: Provider, http: httpx.Client) -> None:
    provider.reset_stats()
    provider.fail_next(503, count=2)
    for _ in range(2):
        r = token_request(http, provider, grant_type="refresh_token", refresh_token="x")
        assert r.status_code == 503 and r.json() == {"error": "server_error"}
    r = token_request(http, provider, grant_type="refresh_token", refresh_token="x")
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"

    provider.fail_next(hang_ms=300)
    started = time.monotonic()
    r = token_request(http, provider, grant_type="authorization_code", code="x", redirect_uri="x")
    assert time.monotonic() - started >= 0.3
    assert r.status_code == 400

    stats = provider.stats()
    assert stats["grant_errors"] == {"refresh_token": 3, "authorization_code": 1}
    assert stats["grants"] == {} and stats["faults"] == 3

    provider.fail_next(500, count=5)
    provider.reset_stats()  # also drops the pending fault
    assert provider.stats()["grant_errors"] == {}
    r = token_request(http, provider, grant_type="refresh_token", refresh_token="x")
    assert r.status_code == 400


def test_restart_keeps_port_and_keys(tmp_path: Path) -> None:
    jwks_file = tmp_path / "jwks.json"
    with start_provider(jwks_file=str(jwks_file)) as op:
        assert jwks_file.exists()
        port, keys = op.port, op.discovery()["jwks_uri"]
        with httpx.Client(trust_env=False) as http:
            before = http.get(keys).json()
            op.stop()
            assert not op.running
            op.start()
            assert op.port == port
            assert http.get(keys).json() == before


# ------------------------------------------------------------------------------------------------
# The headless helpers, against a tiny stdlib relying party


class TinyRP:
    """Just enough of an RP (on a random port) to exercise login/login_sync/logout_at_op_sync."""

    def __init__(self, op: Provider) -> None:
        self.op = op
        self.pending: dict[str, tuple[str, str]] = {}
        self.sessions: dict[str, dict[str, Any]] = {}
        rp = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                rp.handle(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()

    def handle(self, req: BaseHTTPRequestHandler) -> None:
        path, _, qs = req.path.partition("?")
        params = {k: v[0] for k, v in parse_qs(qs).items()}
        cookie = SimpleCookie(req.headers.get("Cookie", ""))
        sid = cookie["rp_session"].value if "rp_session" in cookie else ""
        headers: dict[str, str] = {}
        if path == "/login":
            url, state, verifier = authorize_url(self.op, f"{self.url}/callback", prompt="consent")
            self.pending[state] = (verifier, params.get("return_to", "/"))
            status, headers["Location"] = 302, url
        elif path == "/callback":
            verifier, return_to = self.pending.pop(params["state"])
            assert params["iss"] == self.op.issuer
            with httpx.Client(trust_env=False) as http:
                r = token_request(
                    http,
                    self.op,
                    grant_type="authorization_code",
                    code=params["code"],
                    redirect_uri=f"{self.url}/callback",
                    code_verifier=verifier,
                )
            r.raise_for_status()
            sid = secrets.token_urlsafe(16)
            self.sessions[sid] = r.json()
            status, headers["Location"] = 303, return_to
            headers["Set-Cookie"] = f"rp_session={sid}; Path=/; HttpOnly"
        elif path == "/logout":
            tokens = self.sessions.pop(sid)
            end = urlencode(
                {
                    "id_token_hint": tokens["id_token"],
                    "post_logout_redirect_uri": f"{self.url}/",
                    "state": "bye",
                }
            )
            status, headers["Location"] = 302, f"{self.op.issuer}/session/end?{end}"
        else:
            tokens = self.sessions.get(sid, {})
            user = jwt_parts(tokens["id_token"])[1]["sub"] if tokens else "anonymous"
            status = 200
            headers["Content-Type"] = "text/plain"
            body = f"{path} {user} {params.get('state', '')}".encode()
        req.send_response(status)
        for name, value in headers.items():
            req.send_header(name, value)
        if status == 200:
            req.send_header("Content-Length", str(len(body)))
            req.end_headers()
            req.wfile.write(body)
        else:
            req.send_header("Content-Length", "0")
            req.end_headers()


@pytest.fixture
def tiny_rp(provider: Provider) -> Iterator[TinyRP]:
    rp = TinyRP(provider)
    try:
        yield rp
    finally:
        rp.close()


def test_login_and_logout_helpers(provider: Provider, tiny_rp: TinyRP) -> None:
    provider.reset_stats()
    with httpx.Client(trust_env=False, timeout=10) as browser:
        page = login_sync(browser, tiny_rp.url, return_to="/private")
        assert page.status_code == 200
        assert page.text == "/private alice "
        assert str(page.url) == f"{tiny_rp.url}/private"

        # A wrong password comes back as the OP's login page with an error (status 200).
        with httpx.Client(trust_env=False, timeout=10) as other:
            page = login_sync(other, tiny_rp.url, password="nope")
            assert page.status_code == 200 and "Invalid username or password" in page.text

        # RP-initiated logout, finished headlessly (POST xsrf + logout=yes), back to the RP.
        page = logout_at_op_sync(browser, f"{tiny_rp.url}/logout")
        assert page.status_code == 200
        assert page.text == "/ anonymous bye"

        # The OP session is gone: prompt=none answers login_required.
        redirect_uri = f"{tiny_rp.url}/silent"
        url, _, _ = authorize_url(provider, redirect_uri, prompt="none", scope="openid")
        r = browse_sync(browser, url, stop_at=lambda u: str(u).startswith(redirect_uri))
        assert query(r.headers["location"])["error"] == "login_required"

    async def async_login() -> httpx.Response:
        async with httpx.AsyncClient(trust_env=False, timeout=10) as client:
            return await login(
                client, tiny_rp.url, return_to="/b", username=BOB.username, password=BOB.password
            )

    page = asyncio.run(async_login())
    assert page.status_code == 200 and page.text == "/b bob "

    stats = provider.stats()
    assert stats["grants"] == {"authorization_code": 2}
    assert stats["end_session"] == 1 and stats["end_session_confirm"] == 1
