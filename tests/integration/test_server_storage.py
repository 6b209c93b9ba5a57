"""Server-side session storage against the real provider: an 86 KB token set logs in, renews
and logs out with a cookie under 200 bytes, with the host store and with Redis, on both
drivers; with cookie storage the same login gets a clear 4xx."""

from __future__ import annotations

import httpx

from tests.integration.apps import SAME_ORIGIN, running
from tests.op.harness import Provider, login

CAROL = {"username": "carol", "password": "looking-glass"}
SCOPE = "openid profile email offline_access groups"


def session_cookies(client: httpx.AsyncClient) -> dict[str, str]:
    return {c.name: c.value or "" for c in client.cookies.jar
            if c.name.startswith("renewal_session") and "_tx_" not in c.name
            and not c.name.endswith("_pending")}


async def test_a_token_set_too_large_for_cookies_lives_in_the_store(
        provider: Provider, driver_and_store: tuple[str, str]) -> None:
    driver, store = driver_and_store
    grants = provider.stats()["grants"].get("refresh_token", 0)
    with running(provider, driver, store=store, scope=SCOPE, session_storage="server") as app:
        async with httpx.AsyncClient(timeout=30) as client:
            await login(client, app.url, **CAROL)
            cookies = session_cookies(client)
            assert list(cookies) == ["renewal_session"]
            assert len("renewal_session=" + cookies["renewal_session"]) < 200
            me = await client.get(app.url + "/api/me")
            assert me.status_code == 200 and me.json()["sub"] == "carol"
            view = app.middleware.flows.sessions.load(
                "renewal_session=" + cookies["renewal_session"], app.clock())
            groups = (view.view.session.claims if view.view else {}).get("groups", [])
            assert len(groups) == 1200  # the whole token set, from the store
            app.grace_window()
            renewed = await client.get(app.url + "/api/me")
            assert renewed.status_code == 200
            assert renewed.json()["access_token"] != me.json()["access_token"]
            assert provider.stats()["grants"].get("refresh_token", 0) == grants + 1
            assert len("renewal_session=" + session_cookies(client)["renewal_session"]) < 200
            await client.get(app.url + "/logout", headers=SAME_ORIGIN)
            assert (await client.get(app.url + "/api/me")).status_code == 401
            stale = {"cookie": "renewal_session=" + cookies["renewal_session"]}
            assert (await client.get(app.url + "/api/me", headers=stale)).status_code == 401


async def test_with_cookie_storage_the_same_login_is_a_clear_4xx(provider: Provider) -> None:
    with running(provider, scope=SCOPE) as app:
        async with httpx.AsyncClient(timeout=30) as client:
            page = await login(client, app.url, **CAROL)
            assert 400 <= page.status_code < 500
            assert "too large to keep in cookies" in page.text
            assert not session_cookies(client)
