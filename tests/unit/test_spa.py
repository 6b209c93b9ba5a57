"""What a page's script relies on: GET /session, GET /renewal.js, the CSRF header and /logout.

The ASGI middleware over httpx.ASGITransport, the provider stubbed with respx (no network);
tests/browser drives the same through a real browser against the real provider.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import respx
from joserfc.jwk import RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from renewal_middleware import RenewalMiddleware
from renewal_middleware.config import Settings
from renewal_middleware.flows import Flows
from renewal_middleware.hooks import Hooks
from tests.unit.helpers import (
    BASE_URL,
    DISCOVERY,
    DISCOVERY_URL,
    T0,
    FakeClock,
    id_claims,
    jwks,
    make_session,
    make_settings,
    mint,
    session_cookie_header,
)

SCRIPT = resources.files("renewal_middleware").joinpath("static/renewal.js").read_bytes()


class Harness:
    def __init__(self, clock: FakeClock, key: RSAKey, router: respx.Router,
                 settings: Settings, hooks: Hooks | None = None) -> None:
        self.clock = clock
        self.settings = settings
        self.calls: list[str] = []
        app = Starlette(routes=[Route("/api/notes", self.notes, methods=["GET", "POST", "DELETE"])])
        self.middleware = RenewalMiddleware(app, settings=settings, clock=clock, hooks=hooks)
        self.browser_flows = Flows(settings, clock)  # signs the browser's cookies
        self.client = httpx.AsyncClient(transport=httpx.ASGITransport(app=self.middleware),
                                        base_url=BASE_URL)
        router.get(DISCOVERY_URL).mock(return_value=httpx.Response(200, json=DISCOVERY))
        router.get(DISCOVERY["jwks_uri"]).mock(return_value=httpx.Response(200, json=jwks(key)))
        self.token = router.post(DISCOVERY["token_endpoint"]).mock(side_effect=self._token)
        self.revoked = router.post(DISCOVERY["revocation_endpoint"]).mock(
            return_value=httpx.Response(200))
        self.key = key

    async def notes(self, request: Request) -> Response:
        self.calls.append(request.method)
        return JSONResponse({"user": request.user.is_authenticated and request.user.identity})

    def _token(self, request: httpx.Request) -> httpx.Response:
        now = int(self.clock())
        return httpx.Response(200, json={
            "access_token": "at-2", "token_type": "Bearer", "expires_in": 3600,
            "refresh_token": "rt-2", "scope": "openid profile",
            "id_token": mint(self.key, id_claims(now, nonce=None)),
        })

    def cookies(self, session: Any, **headers: str) -> dict[str, str]:
        return {"cookie": session_cookie_header(self.browser_flows, session), **headers}


@pytest.fixture
def settings() -> Settings:
    return make_settings()


@pytest.fixture
async def harness(clock: FakeClock, rsa_key: RSAKey, settings: Settings
                  ) -> AsyncIterator[Harness]:
    with respx.mock(assert_all_called=False) as router:
        h = Harness(clock, rsa_key, router, settings)
        try:
            yield h
        finally:
            await h.client.aclose()
            await h.middleware.aclose()


# -- GET /session ------------------------------------------------------------------------------

async def test_session_of_an_anonymous_page(harness: Harness) -> None:
    response = await harness.client.get("/session")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    assert response.json() == {"authenticated": False, "login_url": "/login", "now": T0}


async def test_session_tells_who_when_and_how_but_never_a_token(harness: Harness) -> None:
    session = make_session(claims={"sub": "alice", "name": "Alice", "sid": "op-session"})
    response = await harness.client.get("/session", headers=harness.cookies(session))
    body = response.json()
    assert body.pop("logout_url").startswith("/logout?t=")
    assert body == {
        "authenticated": True, "user": {"sub": "alice", "name": "Alice"},
        "expires_at": session.expires_at, "renew_at": session.expires_at - 60, "now": T0,
        "renewal": "refresh", "silent_url": "/silent?mode=iframe",
        "csrf_header": {"name": "X-CSRF", "value": "1"},
    }
    for secret in (session.access_token, session.refresh_token, session.id_token):
        assert secret is not None and secret not in response.text
    assert "set-cookie" not in response.headers
    assert not harness.token.called


async def test_session_in_the_grace_window_is_renewed_by_asking(harness: Harness,
                                                               clock: FakeClock) -> None:
    session = make_session()
    clock.advance(3600 - 30)
    response = await harness.client.get("/session", headers=harness.cookies(session))
    body = response.json()
    assert body["expires_at"] == int(clock()) + 3600 and body["renew_at"] > clock()
    assert harness.token.call_count == 1
    assert any(c.startswith("__Host-renewal_session=") for c in
               response.headers.get_list("set-cookie"))
    assert "at-2" not in response.text and "rt-2" not in response.text


async def test_session_without_refresh_token_is_renewed_by_the_iframe(
        harness: Harness, clock: FakeClock) -> None:
    session = make_session(refresh_token=None)
    fresh = (await harness.client.get("/session", headers=harness.cookies(session))).json()
    assert fresh["renewal"] == "iframe" and fresh["authenticated"]
    clock.advance(3600 + 1)
    expired = await harness.client.get("/session", headers=harness.cookies(session))
    assert expired.json() == {"authenticated": False, "login_url": "/login", "now": clock(),
                              "expired": True, "renewal": "iframe",
                              "silent_url": "/silent?mode=iframe"}
    assert "set-cookie" not in expired.headers  # the iframe may still renew it
    assert not harness.token.called


async def test_session_accepts_get_only(harness: Harness) -> None:
    response = await harness.client.post("/session", headers={"x-csrf": "1"})
    assert response.status_code == 405
    assert response.json()["error"] == "method_not_allowed"


# -- GET /renewal.js --------------------------------------------------------------------------

async def test_the_script_is_served_with_an_etag(harness: Harness) -> None:
    response = await harness.client.get("/renewal.js")
    assert response.status_code == 200
    assert response.content == SCRIPT
    assert response.headers["content-type"] == "text/javascript; charset=utf-8"
    assert response.headers["cache-control"] == "no-cache"
    etag = response.headers["etag"]
    again = await harness.client.get("/renewal.js", headers={"if-none-match": etag})
    assert again.status_code == 304 and again.content == b""


async def test_the_scripts_hashed_url_is_cached_for_good(harness: Harness) -> None:
    url = harness.middleware.flows.script.url
    assert url.startswith("/renewal.js?v=")
    response = await harness.client.get(url)
    assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
    stale = await harness.client.get("/renewal.js?v=0123456789abcdef")
    assert stale.headers["cache-control"] == "no-cache"


# -- CSRF --------------------------------------------------------------------------------------

async def test_an_unsafe_request_of_a_session_needs_the_header(harness: Harness) -> None:
    cookies = harness.cookies(make_session())
    assert (await harness.client.get("/api/notes", headers=cookies)).status_code == 200
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        refused = await harness.client.request(method, "/api/notes", headers=cookies)
        assert refused.status_code == 403, method
        assert refused.json()["error"] == "csrf_header_missing"
        assert "X-CSRF: 1" in refused.json()["error_description"]
    assert harness.calls == ["GET"]  # the app never saw a refused request
    passed = await harness.client.post("/api/notes", headers={**cookies, "x-csrf": "1"})
    assert passed.status_code == 200 and passed.json() == {"user": "alice"}


async def test_a_same_origin_form_needs_no_header_a_cross_origin_one_does(
        harness: Harness) -> None:
    cookies = harness.cookies(make_session())
    form = {"sec-fetch-mode": "navigate", "content-type": "application/x-www-form-urlencoded"}
    same = await harness.client.post("/api/notes", headers={
        **cookies, **form, "sec-fetch-site": "same-origin"})
    assert same.status_code == 200
    for site in ("same-site", "cross-site"):
        other = await harness.client.post("/api/notes", headers={
            **cookies, **form, "sec-fetch-site": site})
        assert other.status_code == 403, site
    cors = await harness.client.post("/api/notes", headers={
        **cookies, "sec-fetch-mode": "cors", "sec-fetch-site": "same-origin"})
    assert cors.status_code == 403  # a fetch can send the header: it must


async def test_without_fetch_metadata_a_form_is_judged_by_its_origin(harness: Harness) -> None:
    cookies = harness.cookies(make_session())
    form = {**cookies, "content-type": "application/x-www-form-urlencoded"}
    ours = await harness.client.post("/api/notes", headers={**form, "origin": BASE_URL})
    theirs = await harness.client.post("/api/notes",
                                       headers={**form, "origin": "https://evil.example"})
    json_ours = await harness.client.post("/api/notes", headers={
        **cookies, "origin": BASE_URL, "content-type": "application/json"})
    assert (ours.status_code, theirs.status_code, json_ours.status_code) == (200, 403, 403)


async def test_a_remembered_cookie_header_does_not_skip_the_check(harness: Harness) -> None:
    cookies = harness.cookies(make_session())
    for _ in range(3):  # the pass-through now knows this Cookie header
        assert (await harness.client.get("/api/notes", headers=cookies)).status_code == 200
    assert (await harness.client.post("/api/notes", headers=cookies)).status_code == 403


async def test_requests_without_a_session_are_not_checked(harness: Harness) -> None:
    assert (await harness.client.post("/api/notes")).json() == {"user": False}
    forged = {"cookie": "__Host-renewal_session=forged"}
    response = await harness.client.post("/api/notes", headers=forged)
    assert response.status_code == 200 and response.json() == {"user": False}


@pytest.mark.parametrize("settings", [make_settings(csrf_protection=False)])
async def test_the_check_can_be_left_to_the_framework(harness: Harness) -> None:
    response = await harness.client.post("/api/notes", headers=harness.cookies(make_session()))
    assert response.status_code == 200 and response.json() == {"user": "alice"}


@pytest.mark.parametrize("settings", [make_settings(csrf_header="X-Requested-By")])
async def test_the_header_name_is_a_setting(harness: Harness) -> None:
    cookies = harness.cookies(make_session())
    session = (await harness.client.get("/session", headers=cookies)).json()
    assert session["csrf_header"] == {"name": "X-Requested-By", "value": "1"}
    assert (await harness.client.post("/api/notes", headers={
        **cookies, "x-requested-by": "1"})).status_code == 200
    assert (await harness.client.post("/api/notes", headers={
        **cookies, "x-csrf": "1"})).status_code == 403


# -- /logout -----------------------------------------------------------------------------------

async def test_a_cross_site_logout_only_asks_to_confirm(harness: Harness) -> None:
    cookies = harness.cookies(make_session())
    for extra in ({"sec-fetch-site": "cross-site"}, {"sec-fetch-site": "same-site"}, {}):
        page = await harness.client.get("/logout", headers={**cookies, **extra})
        assert page.status_code == 200 and "Log out?" in page.text
        assert "set-cookie" not in page.headers
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert (await harness.client.get("/api/notes", headers=cookies)).json() == {"user": "alice"}


async def test_the_logout_url_of_the_session_logs_out_from_anywhere(harness: Harness) -> None:
    cookies = harness.cookies(make_session())
    url = (await harness.client.get("/session", headers=cookies)).json()["logout_url"]
    confirm_page = (await harness.client.get("/logout", headers=cookies)).text
    assert url.replace("&", "&amp;") in confirm_page  # the page's link is that URL
    out = await harness.client.get(url, headers={**cookies, "sec-fetch-site": "cross-site"})
    assert out.status_code == 302
    assert out.headers["location"].startswith(DISCOVERY["end_session_endpoint"])
    assert all("Max-Age=0" in c for c in out.headers.get_list("set-cookie"))


async def test_another_sessions_logout_url_does_not_log_out(harness: Harness) -> None:
    other = harness.cookies(make_session(id="sid-2"))
    url = (await harness.client.get("/session", headers=other)).json()["logout_url"]
    mine = harness.cookies(make_session())
    page = await harness.client.get(url, headers=mine)
    assert page.status_code == 200 and "set-cookie" not in page.headers


@pytest.mark.parametrize("headers", [{"sec-fetch-site": "same-origin"},
                                     {"sec-fetch-site": "none"}, {"x-csrf": "1"}])
async def test_the_apps_own_logout_needs_no_token(harness: Harness,
                                                   headers: dict[str, str]) -> None:
    cookies = harness.cookies(make_session())
    out = await harness.client.post("/logout", headers={**cookies, **headers})
    assert out.status_code == 302
    assert all("Max-Age=0" in c for c in out.headers.get_list("set-cookie"))


# -- the cookie profile ------------------------------------------------------------------------

def test_over_https_the_session_cookie_is_host_prefixed() -> None:
    flows = Flows(make_settings(), FakeClock())
    (header,) = flows.sessions.cookie.set_headers("value", ())
    assert header.startswith("__Host-renewal_session=value;")
    attributes = [a.strip() for a in header.split(";")[1:]]
    assert {"Path=/", "HttpOnly", "SameSite=Lax", "Secure"} <= set(attributes)
    assert not any(a.startswith("Domain") for a in attributes)
    assert flows.transactions.prefix == "__Secure-renewal_session_tx_"


@pytest.mark.parametrize("overrides", [
    {"base_url": "http://127.0.0.1:8000"}, {"cookie_domain": "example.com"},
    {"cookie_path": "/app"}, {"cookie_host_prefix": False}])
def test_without_the_full_profile_the_cookie_keeps_its_plain_name(
        overrides: dict[str, Any]) -> None:
    assert make_settings(**overrides).session_cookie_name == "renewal_session"


def test_the_default_profile_logs_no_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="renewal_middleware"):
        Flows(make_settings(), FakeClock())
        Flows(make_settings(base_url="http://localhost:8000"), FakeClock())
    assert caplog.records == []


@pytest.mark.parametrize(("overrides", "said"), [
    ({"encrypt_cookies": False}, "encrypt_cookies is off"),
    ({"cookie_samesite": "none"}, "cookie_samesite is 'none'"),
    ({"cookie_domain": "example.com"}, "cookie_domain"),
    ({"cookie_path": "/app"}, "cookie_path"),
    ({"cookie_host_prefix": False}, "cookie_host_prefix is off"),
    ({"csrf_protection": False}, "csrf_protection is off"),
])
def test_each_relaxation_logs_one_warning_at_start(
        caplog: pytest.LogCaptureFixture, overrides: dict[str, Any], said: str) -> None:
    with caplog.at_level(logging.WARNING, logger="renewal_middleware"):
        Flows(make_settings(**overrides), FakeClock())
    (record,) = caplog.records
    assert said in record.getMessage()


# -- pending logins ----------------------------------------------------------------------------

async def test_pending_logins_are_capped_when_they_start(harness: Harness) -> None:
    prefix = harness.middleware.flows.transactions.prefix
    states = []
    for _ in range(40):  # a user who clicks "log in" again and again, never finishing
        started = await harness.client.get("/login", headers={"accept": "text/html"})
        assert started.status_code == 302
        states.append(parse_qs(urlsplit(started.headers["location"]).query)["state"][0])
    kept = [c.name for c in harness.client.cookies.jar if c.name.startswith(prefix)]
    assert sorted(kept) == sorted(prefix + state for state in states[-8:])
    assert [c.name for c in harness.client.cookies.jar if c.name.endswith("_pending")] == [
        "__Secure-renewal_session_pending"]


@pytest.mark.parametrize("settings", [make_settings(max_pending_logins=2)])
async def test_the_cap_is_a_setting(harness: Harness) -> None:
    for _ in range(5):
        await harness.client.get("/login")
    prefix = harness.middleware.flows.transactions.prefix
    assert len([c for c in harness.client.cookies.jar if c.name.startswith(prefix)]) == 2
