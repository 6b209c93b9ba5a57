"""A session's absolute and idle lifetimes against the real provider, with the host store and
with Redis, on both drivers, the tokens in the cookie or in the store: past either limit the
user is anonymous and the newest refresh token is revoked at the provider."""

from __future__ import annotations

import httpx
import pytest

from tests.integration.apps import Running, running, session_cookie
from tests.op.harness import CLIENT_ID, CLIENT_SECRET, Provider, login


@pytest.fixture(params=["cookie", "server"])
def storage(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def refresh_token_of(app: Running, cookie: str) -> str:
    loaded = app.middleware.flows.sessions.load(f"renewal_session={cookie}", app.clock())
    assert loaded.view is not None and loaded.view.session.refresh_token is not None
    return loaded.view.session.refresh_token


async def still_works(provider: Provider, refresh_token: str) -> bool:
    async with httpx.AsyncClient() as client:
        answer = await client.post(provider.url("/token"), auth=(CLIENT_ID, CLIENT_SECRET),
                                   data={"grant_type": "refresh_token",
                                         "refresh_token": refresh_token})
    return answer.status_code == 200


async def test_an_idle_session_ends_and_its_grant_is_revoked(
        provider: Provider, driver_and_store: tuple[str, str], storage: str) -> None:
    driver, store = driver_and_store
    revocations = provider.stats()["revocations"]
    with running(provider, driver, store=store, session_storage=storage,
                 idle_timeout_seconds=600) as app:
        async with httpx.AsyncClient(timeout=30) as client:
            await login(client, app.url)
            assert (await client.get(app.url + "/api/me")).status_code == 200
            refresh_token = refresh_token_of(app, session_cookie(client))
            app.clock.advance(600)
            ended = await client.get(app.url + "/api/me")
            assert ended.status_code == 401
            assert not [c for c in client.cookies.jar if c.name == "renewal_session"]
    assert provider.stats()["revocations"] == revocations + 1
    assert not await still_works(provider, refresh_token)


async def test_an_active_session_ends_at_its_absolute_lifetime(
        provider: Provider, driver_and_store: tuple[str, str], storage: str) -> None:
    driver, store = driver_and_store
    grants = provider.stats()["grants"].get("refresh_token", 0)
    with running(provider, driver, store=store, session_storage=storage,
                 absolute_lifetime_seconds=150) as app:
        async with httpx.AsyncClient(timeout=30) as client:
            await login(client, app.url)
            for _ in range(2):  # active all along: renewed as the 60 s tokens age
                app.clock.advance(50)
                assert (await client.get(app.url + "/api/me")).status_code == 200
            newest = refresh_token_of(app, session_cookie(client))
            app.clock.advance(50)
            ended = await client.get(app.url + "/api/me")
            assert ended.status_code == 401
    assert provider.stats()["grants"].get("refresh_token", 0) > grants
    assert not await still_works(provider, newest)  # the newest generation's grant is gone
