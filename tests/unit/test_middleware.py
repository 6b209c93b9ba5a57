"""The ASGI middleware over httpx.ASGITransport, the provider stubbed with respx (no network)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
import respx
from joserfc.jwk import RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from renewal_middleware import RenewalMiddleware
from renewal_middleware.flows import Flows
from tests.unit.helpers import (
    BASE_URL,
    DISCOVERY,
    DISCOVERY_URL,
    FakeClock,
    cookie_header,
    id_claims,
    jwks,
    make_session,
    make_settings,
    mint,
    session_cookie_header,
    set_cookie_pairs,
)


async def me(request: Request) -> Response:
    if not request.user.is_authenticated:
        return JSONResponse({"error": "anonymous"}, status_code=401)
    return JSONResponse({"sub": request.user.identity, "name": request.user.display_name,
                         "access_token": request.auth.access_token,
                         "expires_at": request.auth.expires_at})


async def stream(request: Request) -> Response:
    token = request.auth.access_token

    async def body() -> AsyncIterator[bytes]:
        yield b"token="
        await asyncio.sleep(0)
        yield token.encode()

    return StreamingResponse(body(), media_type="text/plain")


class Harness:
    def __init__(self, clock: FakeClock, key: RSAKey, router: respx.Router) -> None:
        self.clock = clock
        self.settings = make_settings()
        app = Starlette(routes=[Route("/api/me", me), Route("/stream", stream)])
        self.middleware = RenewalMiddleware(app, settings=self.settings, clock=clock)
        # A separate instance signs the browser's cookie, so the middleware really decodes it.
        self.browser_flows = Flows(self.settings, clock)
        self.client = httpx.AsyncClient(transport=httpx.ASGITransport(app=self.middleware),
                                        base_url=BASE_URL)
        self.discovery = router.get(DISCOVERY_URL).mock(
            return_value=httpx.Response(200, json=DISCOVERY))
        self.jwks = router.get(DISCOVERY["jwks_uri"]).mock(
            return_value=httpx.Response(200, json=jwks(key)))
        self.token = router.post(DISCOVERY["token_endpoint"]).mock(side_effect=self._token)
        self.key = key

    def _token(self, request: httpx.Request) -> httpx.Response:
        now = int(self.clock())
        return httpx.Response(200, json={
            "access_token": "at-2", "token_type": "Bearer", "expires_in": 3600,
            "refresh_token": "rt-2", "scope": "openid profile",
            "id_token": mint(self.key, id_claims(now, nonce=None, name="Alice Renewed")),
        })

    def cookies(self, session: Any) -> dict[str, str]:
        return {"cookie": session_cookie_header(self.browser_flows, session)}

    def read_cookie(self, response: httpx.Response) -> Any:
        pairs = set_cookie_pairs(response.headers.get_list("set-cookie"))
        loaded = Flows(self.settings, self.clock).sessions.load(cookie_header(pairs), self.clock())
        assert loaded.view is not None
        return loaded.view.session


@pytest.fixture
async def harness(clock: FakeClock, rsa_key: RSAKey) -> AsyncIterator[Harness]:
    with respx.mock(assert_all_called=False) as router:
        h = Harness(clock, rsa_key, router)
        try:
            yield h
        finally:
            await h.client.aclose()
            await h.middleware.aclose()


async def test_fresh_session_passes_through_without_set_cookie(harness: Harness) -> None:
    session = make_session()
    response = await harness.client.get("/api/me", headers=harness.cookies(session))
    assert response.status_code == 200
    assert response.json() == {"sub": "alice", "name": "Alice", "access_token": "at-1",
                               "expires_at": session.expires_at}
    assert "set-cookie" not in response.headers
    assert not harness.token.called
    assert not harness.discovery.called


async def test_anonymous_request_reaches_the_app(harness: Harness) -> None:
    response = await harness.client.get("/api/me")
    assert response.status_code == 401
    assert response.json() == {"error": "anonymous"}
    assert "set-cookie" not in response.headers


async def test_session_in_the_grace_window_is_renewed_before_the_app_runs(
        harness: Harness, clock: FakeClock) -> None:
    session = make_session()
    clock.now = session.expires_at - 30
    response = await harness.client.get("/api/me", headers=harness.cookies(session))
    assert response.status_code == 200
    assert response.json()["access_token"] == "at-2"
    assert response.json()["name"] == "Alice Renewed"

    assert harness.token.call_count == 1
    form = parse_qs(harness.token.calls.last.request.content.decode())
    assert form == {"grant_type": ["refresh_token"], "refresh_token": ["rt-1"]}

    renewed = harness.read_cookie(response)
    assert renewed.access_token == "at-2"
    assert renewed.refresh_token == "rt-2"
    assert renewed.id == session.id
    assert renewed.expires_at == int(clock()) + 3600


async def test_the_provider_client_sends_no_cookie_of_one_user_with_anothers(
        harness: Harness, clock: FakeClock) -> None:
    """One pooled client makes every user's provider calls: a cookie the provider sets on
    one user's token answer is not kept, and not sent with the next user's grant."""
    def with_a_cookie(request: httpx.Request) -> httpx.Response:
        sub = "bob" if b"rt-bob" in request.content else "alice"
        claims = id_claims(int(clock()), nonce=None, sub=sub)
        return httpx.Response(200, json={
            "access_token": "at-2", "token_type": "Bearer", "expires_in": 3600,
            "refresh_token": "rt-2", "id_token": mint(harness.key, claims),
        }, headers={"set-cookie": f"affinity={sub}; Path=/"})

    harness.token.side_effect = with_a_cookie
    alice, bob = make_session(), make_session(id="sid-2", refresh_token="rt-bob",
                                              claims={"sub": "bob", "name": "Bob"})
    clock.now = alice.expires_at - 30
    for session in (alice, bob):
        renewed = await harness.client.get("/api/me", headers=harness.cookies(session))
        assert renewed.status_code == 200 and renewed.json()["access_token"] == "at-2"
    assert harness.token.call_count == 2
    assert all("cookie" not in call.request.headers for call in harness.token.calls)
    assert not list(harness.middleware.transport.client.cookies.jar)


async def test_streaming_response_also_gets_the_new_cookie(
        harness: Harness, clock: FakeClock) -> None:
    session = make_session()
    clock.now = session.expires_at - 30
    response = await harness.client.get("/stream", headers=harness.cookies(session))
    assert response.status_code == 200
    assert response.text == "token=at-2"
    assert harness.read_cookie(response).access_token == "at-2"


async def test_concurrent_requests_share_one_refresh(harness: Harness, clock: FakeClock) -> None:
    session = make_session()
    clock.now = session.expires_at - 30
    responses = await asyncio.gather(*[
        harness.client.get("/api/me", headers=harness.cookies(session)) for _ in range(20)])
    assert harness.token.call_count == 1
    assert {r.json()["access_token"] for r in responses} == {"at-2"}
    assert all(harness.read_cookie(r).refresh_token == "rt-2" for r in responses)


async def test_expired_api_request_when_the_grant_is_revoked_is_anonymous_and_cleared(
        harness: Harness, clock: FakeClock) -> None:
    harness.token.mock(side_effect=None, return_value=httpx.Response(
        400, json={"error": "invalid_grant", "error_description": "revoked"}))
    session = make_session()
    clock.now = session.expires_at + 5
    response = await harness.client.get("/api/me", headers=harness.cookies(session))
    assert response.status_code == 401
    assert response.json() == {"error": "anonymous"}
    cookies = response.headers.get_list("set-cookie")
    assert len(cookies) == 1 and cookies[0].startswith("__Host-renewal_session=;")
    assert "Max-Age=0" in cookies[0]


async def test_silent_route_without_a_response_starts_a_silent_renewal(harness: Harness) -> None:
    response = await harness.client.get("/silent?mode=iframe&return_to=/x")
    assert response.status_code == 302
    location = httpx.URL(response.headers["location"])
    assert str(location.copy_with(query=None)) == DISCOVERY["authorization_endpoint"]
    assert location.params["prompt"] == "none"
    assert location.params["redirect_uri"] == BASE_URL + "/silent"
    assert response.headers["set-cookie"].startswith("__Secure-renewal_session_tx_")


async def test_callback_with_unknown_state_is_answered_by_the_middleware(
        harness: Harness) -> None:
    response = await harness.client.get("/callback?state=nope&code=x",
                                        headers={"accept": "application/json"})
    assert response.status_code == 400
    assert response.json()["error"] == "unknown_state"
    assert not harness.token.called
