"""A failing provider during renewal: every failure gets a deliberate answer, never a 500.

Faults are injected at the real oidc-provider's token endpoint (see ``Provider.fail_next``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.integration.apps import NAVIGATE, Running, running, session_cookie
from tests.op.harness import Provider, login, start_provider

API = {"accept": "application/json"}
TIMEOUT = 1.0  # http_timeout_seconds of the app under test

# Each fault the token endpoint can show, as arguments of Provider.fail_next.
FAULTS: dict[str, dict[str, Any]] = {
    "500": {"status": 500},
    "503": {"status": 503},
    # Hangs past the app's timeout, then fails: the provider never processes the grant.
    "timeout": {"status": 503, "hang_ms": 4000},
    "connection-closed": {"close": True},
    "non-json-200": {"status": 200, "body": "<html>maintenance</html>"},
    "non-json-502": {"status": 502, "body": "<html>bad gateway</html>"},
    "invalid_client": {"status": 401, "json_body": {"error": "invalid_client"}},
}


@pytest.fixture(params=["asgi", "wsgi"])
def app(provider: Provider, request: pytest.FixtureRequest) -> Iterator[Running]:
    provider.reset_stats()
    with running(provider, request.param, http_timeout_seconds=TIMEOUT) as app:
        yield app


def no_call_but_the_fault(provider: Provider) -> bool:
    """Only the injected fault reached the token endpoint (any other call would have succeeded)."""
    stats = provider.stats()
    return bool(stats["faults"] == 1 and not stats["grants"])


@pytest.mark.parametrize("fault", FAULTS.values(), ids=FAULTS.keys())
async def test_fault_while_token_valid_serves_current_token_and_backs_off(
        app: Running, provider: Provider, fault: dict[str, Any]) -> None:
    async with httpx.AsyncClient(timeout=30) as client:
        await login(client, app.url)
        before = (await client.get(app.url + "/api/me")).json()
        provider.reset_stats()
        provider.fail_next(**fault)
        app.grace_window()
        started = time.monotonic()
        served = await client.get(app.url + "/api/me")
        waited = time.monotonic() - started
        assert served.status_code == 200
        assert served.json()["access_token"] == before["access_token"]
        assert "set-cookie" not in served.headers
        assert waited < TIMEOUT + 2  # bounded by the timeout, not by the provider's hang
        # The session backs off: a burst right after the failure makes no provider call.
        for _ in range(10):
            assert (await client.get(app.url + "/api/me")).status_code == 200
        assert no_call_but_the_fault(provider), provider.stats()
        # Past the backoff the next request renews.
        app.clock.advance(3)
        renewed = await client.get(app.url + "/api/me")
    assert renewed.status_code == 200
    assert renewed.json()["access_token"] != before["access_token"]
    assert provider.stats()["grants"].get("refresh_token") == 1


@pytest.mark.parametrize("fault", FAULTS.values(), ids=FAULTS.keys())
async def test_fault_after_expiry_gives_401_to_api_and_anonymous_page_keeping_the_session(
        app: Running, provider: Provider, fault: dict[str, Any]) -> None:
    async with httpx.AsyncClient(timeout=30) as client:
        await login(client, app.url)
        cookie = session_cookie(client)
        provider.fail_next(count=1, **fault)
        app.clock.advance(120)
        api = await client.get(app.url + "/api/me", headers=API)
        assert api.status_code == 401
        assert api.json()["error"] == "invalid_token"
        assert api.headers["www-authenticate"].startswith('Bearer error="invalid_token"')
        page = await client.get(app.url + "/", headers=NAVIGATE)
        assert page.status_code == 200 and page.text == "hello anonymous"
        assert "set-cookie" not in page.headers  # the session is kept for when the OP is back
        assert session_cookie(client) == cookie
        app.clock.advance(3)
        back = await client.get(app.url + "/api/me")
    assert back.status_code == 200 and back.json()["sub"] == "alice"


async def test_retry_after_is_honoured(app: Running, provider: Provider) -> None:
    async with httpx.AsyncClient() as client:
        await login(client, app.url)
        provider.reset_stats()
        provider.fail_next(status=503, headers={"Retry-After": "20"})
        app.grace_window()
        assert (await client.get(app.url + "/api/me")).status_code == 200
        app.clock.advance(10)  # well past the first backoff step, not past Retry-After
        assert (await client.get(app.url + "/api/me")).status_code == 200
        assert no_call_but_the_fault(provider), provider.stats()
        app.clock.advance(11)
        assert (await client.get(app.url + "/api/me")).status_code == 200
    assert provider.stats()["grants"].get("refresh_token") == 1


async def test_slow_answer_within_the_timeout_renews(app: Running, provider: Provider) -> None:
    async with httpx.AsyncClient() as client:
        await login(client, app.url)
        before = (await client.get(app.url + "/api/me")).json()
        provider.fail_next(hang_ms=300)
        app.grace_window()
        renewed = await client.get(app.url + "/api/me")
    assert renewed.json()["access_token"] != before["access_token"]


async def test_refresh_processed_after_our_timeout_ends_the_session_cleanly(
        app: Running, provider: Provider) -> None:
    """The provider rotated the refresh token after we gave up waiting: the next attempt
    replays it, the provider revokes the grant, and the session ends (no 500, no stale login)."""
    async with httpx.AsyncClient() as client:
        await login(client, app.url)
        provider.fail_next(late_ms=1500)  # processes the grant, answers after our timeout
        app.grace_window()
        assert (await client.get(app.url + "/api/me")).status_code == 200
        for _ in range(100):  # the provider counts the grant once it has answered
            if provider.stats()["grants"].get("refresh_token"):
                break
            await asyncio.sleep(0.05)
        assert provider.stats()["grants"].get("refresh_token") == 1  # rotated at the provider
        app.clock.advance(5)
        ended = await client.get(app.url + "/api/me")
    assert ended.status_code == 401  # the app's answer to an anonymous request
    assert "Max-Age=0" in ended.headers["set-cookie"]
    assert provider.stats()["grant_errors"].get("refresh_token") == 1


async def test_backoff_is_per_session(app: Running, provider: Provider) -> None:
    async with httpx.AsyncClient() as alice, httpx.AsyncClient() as bob:
        await login(alice, app.url)
        await login(bob, app.url, username="bob", password="builder")
        provider.fail_next(status=500)
        app.grace_window()
        assert (await alice.get(app.url + "/api/me")).status_code == 200  # fails, backs off
        bob_before = app.middleware.flows.sessions.load(
            f"renewal_session={session_cookie(bob)}", app.clock()).view
        bob_after = (await bob.get(app.url + "/api/me")).json()
    assert bob_before is not None
    assert bob_after["access_token"] != bob_before.session.access_token


@pytest.fixture
def lonely_provider() -> Iterator[Provider]:
    with start_provider(access_token_ttl=60) as op:
        yield op


async def test_provider_down_at_start_up_then_back(lonely_provider: Provider) -> None:
    lonely_provider.stop()
    with running(lonely_provider, http_timeout_seconds=TIMEOUT) as app:
        async with httpx.AsyncClient() as client:
            # The app starts and serves; only the middleware's own routes need the provider.
            assert (await client.get(app.url + "/")).text == "hello anonymous"
            down = await client.get(app.url + "/login", headers=API)
            assert down.status_code == 503
            assert down.json()["error"] == "provider_unavailable"
            page = await client.get(app.url + "/login", headers=NAVIGATE)
            assert page.status_code == 503 and "<h1>" in page.text
            lonely_provider.start()
            up = await login(client, app.url)
            assert up.text == "hello Alice Liddell"
            # Connection refused during renewal: served while valid, 401 once expired.
            lonely_provider.stop()
            app.grace_window()
            assert (await client.get(app.url + "/api/me")).status_code == 200
            app.clock.advance(120)
            assert (await client.get(app.url + "/api/me", headers=API)).status_code == 401
