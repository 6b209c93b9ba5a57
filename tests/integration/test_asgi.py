"""Both drivers end to end against the real oidc-provider: the ASGI middleware in front of a
Starlette app under uvicorn, and the WSGI middleware in front of a bare WSGI app under waitress."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.integration.apps import NAVIGATE, SAME_ORIGIN, Running, running, session_cookie
from tests.op.harness import CLIENT_ID, CLIENT_SECRET, Provider, browse, login


@pytest.fixture(params=["asgi", "wsgi"])
def driver(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def app(provider: Provider, driver: str) -> Iterator[Running]:
    provider.reset_stats()
    with running(provider, driver) as app:
        yield app


def refresh_grants(provider: Provider) -> int:
    stats = provider.stats()
    return int(stats["grants"].get("refresh_token", 0)
               + stats["grant_errors"].get("refresh_token", 0))


async def test_login_sets_session_and_user(app: Running, provider: Provider) -> None:
    async with httpx.AsyncClient() as client:
        page = await login(client, app.url, return_to="/private")
        assert page.status_code == 200
        assert page.text == "secret page"
        assert str(page.url) == app.url + "/private"
        me_ = (await client.get(app.url + "/api/me")).json()
        assert me_["sub"] == "alice"
        assert me_["name"] == "Alice Liddell"  # from UserInfo, fetched once at login
    assert provider.stats()["grants"] == {"authorization_code": 1}


async def test_session_cookie_attributes(app: Running) -> None:
    async with httpx.AsyncClient() as client:
        await login(client, app.url)
        login_redirect = await client.get(app.url + "/login")
        tx_cookie = login_redirect.headers["set-cookie"]
    assert "HttpOnly" in tx_cookie and "SameSite=Lax" in tx_cookie
    assert "Path=/callback" in tx_cookie and "Secure" not in tx_cookie


async def test_anonymous_request_passes_through(app: Running) -> None:
    async with httpx.AsyncClient() as client:
        assert (await client.get(app.url + "/")).text == "hello anonymous"
        denied = await client.get(app.url + "/private")
    assert denied.status_code == 403
    assert "set-cookie" not in denied.headers


async def test_return_to_only_accepts_local_paths(app: Running) -> None:
    async with httpx.AsyncClient() as client:
        page = await login(client, app.url, return_to="//evil.example/steal")
    assert str(page.url) == app.url + "/"


async def test_parallel_logins_do_not_clobber_each_other(app: Running, provider: Provider
                                                         ) -> None:
    async with httpx.AsyncClient() as client:
        first = await client.get(app.url + "/login", params={"return_to": "/first"})
        second = await client.get(app.url + "/login", params={"return_to": "/second"})
        # Finish the second tab's login first, then the first one's.
        done_second = await browse(client, second.headers["location"])
        done_first = await browse(client, first.headers["location"])
    assert str(done_second.url).endswith("/second")
    assert str(done_first.url).endswith("/first")
    assert done_first.status_code == done_second.status_code == 404  # the app has no such page
    assert provider.stats()["grants"]["authorization_code"] == 2


async def test_callback_replay_is_refused(app: Running) -> None:
    async with httpx.AsyncClient() as client:
        start = await client.get(app.url + "/login")
        callback = await browse(client, start.headers["location"],
                                stop_at=lambda url: url.path == "/callback")
        callback_url = callback.headers["location"]
        assert (await client.get(callback_url)).status_code == 302
        replay = await client.get(callback_url, headers={"accept": "application/json"})
    assert replay.status_code == 400
    assert replay.json()["error"] == "unknown_state"


async def test_provider_error_is_a_clear_4xx(app: Running) -> None:
    async with httpx.AsyncClient() as client:
        start = await client.get(app.url + "/login")
        state = parse_qs(urlsplit(start.headers["location"]).query)["state"][0]
        page = await client.get(app.url + "/callback", params={
            "state": state, "error": "access_denied", "error_description": "the user said no",
            "iss": app.middleware.settings.issuer})
    assert page.status_code == 400
    assert "access_denied" in page.text and "the user said no" in page.text
    assert page.headers["content-type"].startswith("text/html")


async def test_fresh_session_makes_no_provider_call_and_sets_no_cookie(
        app: Running, provider: Provider) -> None:
    async with httpx.AsyncClient() as client:
        await login(client, app.url)
        provider.reset_stats()
        for _ in range(20):
            response = await client.get(app.url + "/api/me")
            assert response.status_code == 200
            assert "set-cookie" not in response.headers
    assert provider.stats()["grants"] == {}


async def test_renewal_storm_makes_exactly_one_refresh_grant(app: Running, provider: Provider
                                                             ) -> None:
    async with httpx.AsyncClient() as client:
        await login(client, app.url)
        before = (await client.get(app.url + "/api/me")).json()
        old_cookie = session_cookie(client)
    app.grace_window()
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    async with httpx.AsyncClient(limits=limits, timeout=30) as burst:
        responses = await asyncio.gather(*(
            burst.get(app.url + "/api/me", headers={"cookie": f"renewal_session={old_cookie}"})
            for _ in range(200)))
    assert refresh_grants(provider) == 1
    bodies = [r.json() for r in responses]
    assert all(r.status_code == 200 for r in responses)
    new_tokens = {b["access_token"] for b in bodies}
    assert len(new_tokens) == 1 and before["access_token"] not in new_tokens
    assert all("renewal_session=" in r.headers.get("set-cookie", "") for r in responses)
    assert all(b["expires_at"] > before["expires_at"] for b in bodies)


async def test_old_cookie_after_rotation_does_not_replay_the_refresh_token(
        app: Running, provider: Provider) -> None:
    async with httpx.AsyncClient() as client:
        await login(client, app.url)
        old_cookie = session_cookie(client)
        app.grace_window()
        renewed = await client.get(app.url + "/api/me")
        assert renewed.status_code == 200
        assert refresh_grants(provider) == 1
        # A request that left before the rotation arrives afterwards with the old cookie.
        async with httpx.AsyncClient() as late:
            stale = await late.get(app.url + "/api/me",
                                   headers={"cookie": f"renewal_session={old_cookie}"})
        assert stale.status_code == 200
        assert stale.json()["access_token"] == renewed.json()["access_token"]
        assert "renewal_session=" in stale.headers["set-cookie"]
        assert refresh_grants(provider) == 1
        # The rotated refresh token is still good: the provider saw no reuse.
        app.clock.advance(45)
        again = await client.get(app.url + "/api/me")
    assert again.status_code == 200
    assert again.json()["access_token"] != renewed.json()["access_token"]
    assert provider.stats()["grants"]["refresh_token"] == 2
    assert provider.stats()["grant_errors"] == {}


async def test_streaming_response_carries_the_renewed_cookie(app: Running, provider: Provider
                                                             ) -> None:
    async with httpx.AsyncClient() as client:
        await login(client, app.url)
        app.grace_window()
        response = await client.get(app.url + "/stream")
        token = (await client.get(app.url + "/api/me")).json()["access_token"]
    assert response.text == f"token={token}"
    assert "renewal_session=" in response.headers["set-cookie"]
    assert refresh_grants(provider) == 1


async def test_revoked_grant_ends_the_session(app: Running, provider: Provider) -> None:
    async with httpx.AsyncClient() as client:
        await login(client, app.url)
        cookie = session_cookie(client)
        # Revoke the grant at the provider, as an admin or another logout would.
        session = app.middleware.flows.sessions.load(f"renewal_session={cookie}", app.clock()).view
        assert session is not None and session.session.refresh_token
        revoked = await client.post(
            provider.issuer + "/token/revocation",
            data={"token": session.session.refresh_token, "token_type_hint": "refresh_token"},
            auth=(CLIENT_ID, CLIENT_SECRET))
        assert revoked.status_code == 200
        app.grace_window()
        response = await client.get(app.url + "/api/me")
        assert response.status_code == 401  # the app's own answer to an anonymous request
        assert "Max-Age=0" in response.headers["set-cookie"]
        assert (await client.get(app.url + "/")).text == "hello anonymous"


async def test_provider_down_while_token_valid_serves_current_token(
        app: Running, provider: Provider) -> None:
    async with httpx.AsyncClient() as client:
        await login(client, app.url)
        before = (await client.get(app.url + "/api/me")).json()
        provider.fail_next(status=503, count=1)
        app.grace_window()
        served = await client.get(app.url + "/api/me")
        assert served.status_code == 200
        assert served.json()["access_token"] == before["access_token"]
        assert "set-cookie" not in served.headers
        # Backing off: the next requests don't call the provider at once.
        for _ in range(5):
            assert (await client.get(app.url + "/api/me")).status_code == 200
        stats = provider.stats()
        assert stats["faults"] == 1
        assert stats["grants"].get("refresh_token", 0) == 0
        app.clock.advance(5)  # past the first backoff delay (at most 1 s)
        renewed = await client.get(app.url + "/api/me")
    assert renewed.json()["access_token"] != before["access_token"]
    assert provider.stats()["grants"]["refresh_token"] == 1


async def test_logout_revokes_and_ends_the_session_at_the_provider(
        app: Running, provider: Provider) -> None:
    async with httpx.AsyncClient() as client:
        await login(client, app.url)
        cookie = session_cookie(client)
        view = app.middleware.flows.sessions.load(f"renewal_session={cookie}", app.clock()).view
        assert view is not None
        refresh_token = view.session.refresh_token
        out = await client.get(app.url + "/logout", headers=SAME_ORIGIN)
        assert out.status_code == 302
        location = urlsplit(out.headers["location"])
        query = parse_qs(location.query)
        assert out.headers["location"].startswith(provider.issuer + "/session/end")
        assert query["id_token_hint"] == [view.session.id_token]
        assert query["post_logout_redirect_uri"] == [app.url + "/"]
        assert "Max-Age=0" in out.headers["set-cookie"]
        assert provider.stats()["revocations"] == 1
        final = await browse(client, out.headers["location"])
        assert str(final.url) == app.url + "/"
        assert final.text == "hello anonymous"
        # The refresh token is dead at the provider.
        dead = await client.post(provider.issuer + "/token", auth=(CLIENT_ID, CLIENT_SECRET),
                                 data={"grant_type": "refresh_token",
                                       "refresh_token": refresh_token or ""})
    assert dead.status_code == 400 and dead.json()["error"] == "invalid_grant"


@pytest.fixture
def app_without_refresh(provider: Provider, driver: str) -> Iterator[Running]:
    provider.reset_stats()
    with running(provider, driver, scope="openid profile email") as app:
        yield app


async def test_without_refresh_token_navigation_renews_silently(
        app_without_refresh: Running, provider: Provider) -> None:
    app = app_without_refresh
    async with httpx.AsyncClient() as client:
        await login(client, app.url)
        before = (await client.get(app.url + "/api/me")).json()
        loaded = app.middleware.flows.sessions.load(f"renewal_session={session_cookie(client)}",
                                                     app.clock())
        assert loaded.view is not None and loaded.view.session.refresh_token is None
        app.grace_window()
        # An API call inside the window is served with the still-valid token.
        assert (await client.get(app.url + "/api/me")).json() == before
        bounce = await client.get(app.url + "/private?x=1", headers=NAVIGATE)
        assert bounce.status_code == 302
        authorize = parse_qs(urlsplit(bounce.headers["location"]).query)
        assert authorize["prompt"] == ["none"]
        assert authorize["redirect_uri"] == [app.url + "/silent"]
        landed = await browse(client, bounce.headers["location"])
        assert str(landed.url) == app.url + "/private?x=1"
        assert landed.text == "secret page"
        after = (await client.get(app.url + "/api/me")).json()
    assert after["access_token"] != before["access_token"]
    assert after["expires_at"] > before["expires_at"]
    assert provider.stats()["authorizations_prompt_none"] == 1


async def test_without_refresh_token_expired_api_call_gets_401(
        app_without_refresh: Running) -> None:
    app = app_without_refresh
    async with httpx.AsyncClient() as client:
        await login(client, app.url)
        app.clock.advance(120)
        response = await client.get(app.url + "/api/me", headers={"accept": "application/json"})
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith('Bearer error="invalid_token"')
    assert response.json()["error"] == "invalid_token"


async def test_silent_renewal_without_provider_session_continues_anonymous(
        app_without_refresh: Running) -> None:
    app = app_without_refresh
    async with httpx.AsyncClient() as client:
        await login(client, app.url)
        # The user logged out at the provider elsewhere: its session cookies are gone.
        for name in [c.name for c in client.cookies.jar if c.name.startswith("_session")]:
            client.cookies.delete(name)
        app.clock.advance(120)
        bounce = await client.get(app.url + "/", headers=NAVIGATE)
        landed = await browse(client, bounce.headers["location"])
    assert str(landed.url) == app.url + "/"
    assert landed.text == "hello anonymous"
    assert not [c for c in client.cookies.jar if c.name == "renewal_session"]


async def test_lifespan_shutdown_closes_the_http_client(provider: Provider) -> None:
    with running(provider) as app:
        async with httpx.AsyncClient() as client:
            assert (await client.get(app.url + "/login")).status_code == 302
        assert not app.middleware.transport.client.is_closed
    assert app.middleware.transport.client.is_closed


async def test_iframe_silent_renewal_posts_only_to_the_app_origin(
        app_without_refresh: Running) -> None:
    app = app_without_refresh
    async with httpx.AsyncClient() as client:
        await login(client, app.url)
        before = (await client.get(app.url + "/api/me")).json()
        app.grace_window()
        page = await browse(client, app.url + "/silent?mode=iframe")
        after = (await client.get(app.url + "/api/me")).json()
    assert page.status_code == 200
    assert str(page.url).startswith(app.url + "/silent?")
    assert f'parent.postMessage({{"type": "renewal_middleware:silent", "ok": true, ' \
           f'"expires_at": {after["expires_at"]}}},"{app.url}");' in page.text
    assert "'*'" not in page.text and '"*"' not in page.text
    policy = page.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "frame-ancestors 'self'" in policy
    assert after["access_token"] != before["access_token"]
    assert before["access_token"] not in page.text and after["access_token"] not in page.text


async def test_iframe_silent_renewal_reports_login_required(app_without_refresh: Running) -> None:
    app = app_without_refresh
    async with httpx.AsyncClient() as client:
        await login(client, app.url)
        for name in [c.name for c in client.cookies.jar if c.name.startswith("_session")]:
            client.cookies.delete(name)
        page = await browse(client, app.url + "/silent?mode=iframe")
        me = await client.get(app.url + "/api/me")
    assert '"ok": false, "error": "login_required"' in page.text
    assert f',"{app.url}");' in page.text
    assert me.status_code == 401
