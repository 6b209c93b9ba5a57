"""Timelines as a browser lives them, across renewals and logouts, against the real provider.

Set-Cookie is applied in the order the responses arrive, as a browser does; two
middlewares on one store play two worker processes.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from renewal_middleware.session import Session
from tests.integration.apps import SAME_ORIGIN, Running, running, session_cookie
from tests.op.harness import (
    CLIENT_ID,
    CLIENT_SECRET,
    DEFAULT_CLIENT,
    Provider,
    browse,
    free_port,
    login,
    start_provider,
)
from tests.set_cookie import browser_jar_after


@pytest.fixture(params=["asgi", "wsgi"])
def driver(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def app(provider: Provider, driver: str) -> Iterator[Running]:
    provider.reset_stats()
    with running(provider, driver) as app:
        yield app


def grants(provider: Provider) -> tuple[int, int]:
    """Refresh grants the provider answered, and those it refused."""
    stats = provider.stats()
    return (int(stats["grants"].get("refresh_token", 0)),
            int(stats["grant_errors"].get("refresh_token", 0)))


def session_of(app: Running, cookie: str) -> Session:
    view = app.middleware.flows.sessions.load(f"renewal_session={cookie}", app.clock()).view
    assert view is not None
    return view.session


def sealed_sessions(app: Running) -> list[Session]:
    """Every generation the middleware records in the store, in order."""
    recorded: list[Session] = []
    lineages = app.middleware.flows.lineages
    seal = lineages.seal

    def recording(session: Session) -> str:
        recorded.append(session)
        return seal(session)

    lineages.seal = recording  # type: ignore[method-assign]
    return recorded


def cookies_decided_after_logout(app: Running) -> list[tuple[str, ...]]:
    """The Set-Cookie values of each renewal response decided once a session had ended.

    Whether it ended is read before the decision starts, so every entry was decided with
    the tombstone already known to the middleware.
    """
    decided: list[tuple[str, ...]] = []
    flows = app.middleware.flows
    learn, final = flows.tombstones.learn, flows.response_cookies.final
    done = threading.Event()

    def learning(*args: Any) -> bool:
        new = learn(*args)
        if new:
            done.set()
        return new

    def deciding(*args: Any) -> tuple[str, ...]:
        after = done.is_set()
        cookies = final(*args)
        if after:
            decided.append(cookies)
        return cookies

    flows.tombstones.learn = learning  # type: ignore[method-assign]
    flows.response_cookies.final = deciding  # type: ignore[method-assign]
    return decided


def apply_set_cookies(jar: dict[str, str], response: httpx.Response) -> None:
    """What a browser does with a response's Set-Cookie headers, in arrival order."""
    kept = browser_jar_after(response.headers.get_list("set-cookie"), jar)
    jar.clear()
    jar.update(kept)


def live_session_cookies(response: httpx.Response) -> list[str]:
    """The session cookie values ``response`` sets (not those it deletes)."""
    kept = browser_jar_after(response.headers.get_list("set-cookie"), {})
    return [value for name, value in kept.items() if name == "renewal_session"]


def cookie_header(jar: dict[str, str]) -> str:
    return "; ".join(f"{k}={v}" for k, v in jar.items())


async def refresh_token_is_dead(provider: Provider, refresh_token: str) -> bool:
    async with httpx.AsyncClient() as client:
        answer = await client.post(provider.issuer + "/token", auth=(CLIENT_ID, CLIENT_SECRET),
                                   data={"grant_type": "refresh_token",
                                         "refresh_token": refresh_token})
    return answer.status_code == 400 and answer.json()["error"] == "invalid_grant"


async def test_a_late_request_never_downgrades_the_browser(app: Running,
                                                           provider: Provider) -> None:
    """gen1 -> gen2 -> gen3; a request still carrying gen1 arrives last: it must set gen3."""
    async with httpx.AsyncClient() as client:
        await login(client, app.url)
        gen1 = session_cookie(client)
        app.clock.advance(40)
        assert (await client.get(app.url + "/api/me")).status_code == 200
        app.clock.advance(45)  # gen2 is now inside its window (and gen1 expired)
        gen3_me = (await client.get(app.url + "/api/me")).json()
        gen3 = session_cookie(client)
    assert grants(provider) == (2, 0)
    assert session_of(app, gen3).generation == 2
    async with httpx.AsyncClient() as late:
        stale = await late.get(app.url + "/api/me", headers={"cookie": f"renewal_session={gen1}"})
    assert stale.status_code == 200
    jar: dict[str, str] = {}
    apply_set_cookies(jar, stale)
    assert session_of(app, jar["renewal_session"]).generation == 2  # never gen2's older cookie
    async with httpx.AsyncClient() as browser:
        me = await browser.get(app.url + "/api/me", headers={"cookie": cookie_header(jar)})
    assert me.json()["access_token"] == gen3_me["access_token"]
    assert grants(provider) == (2, 0)
    # The grant is alive: the next renewal works from the cookie the late response set.
    app.clock.advance(45)
    async with httpx.AsyncClient() as browser:
        again = await browser.get(app.url + "/api/me", headers={"cookie": cookie_header(jar)})
    assert again.status_code == 200 and again.json()["sub"] == "alice"
    assert grants(provider) == (3, 0)


async def test_a_logout_in_the_middle_of_a_renewal_storm_sticks(app: Running,
                                                                provider: Provider) -> None:
    recorded = sealed_sessions(app)
    after_logout = cookies_decided_after_logout(app)
    async with httpx.AsyncClient() as client:
        await login(client, app.url)
        cookie = session_cookie(client)
    first = session_of(app, cookie)
    app.grace_window()
    jar = {"renewal_session": cookie}
    arrived: list[httpx.Response] = []
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    async with httpx.AsyncClient(limits=limits, timeout=30) as browser:

        async def fetch(path: str) -> None:
            sent = {"cookie": cookie_header(jar), **SAME_ORIGIN}
            request = browser.build_request("GET", app.url + path, headers=sent)
            # A browser applies Set-Cookie when the headers arrive, not when the body ends.
            response = await browser.send(request, stream=True)
            arrived.append(response)
            await response.aread()

        storm = [asyncio.ensure_future(fetch("/api/me")) for _ in range(200)]
        await asyncio.sleep(0.005)
        await asyncio.gather(fetch("/logout"), *storm)
    logout_at = next(i for i, r in enumerate(arrived) if r.url.path == "/logout")
    for response in arrived:
        apply_set_cookies(jar, response)
    assert all(r.status_code in (200, 302, 401) for r in arrived)
    assert all(r.status_code != 200 or r.json()["sub"] == "alice"
               for r in arrived if r.url.path == "/api/me")
    # A response decided once the logout was done sets no session, on any worker thread.
    assert not any(browser_jar_after(cookies, {}) for cookies in after_logout)
    # A response whose cookie was decided just before the logout took effect can still
    # arrive after the logout's (its thread paused between deciding and writing): what it
    # sets is dead all the same. Every cookie the browser could hold now is refused, and
    # cleared, by requests sent after the logout.
    revived = {live for r in arrived[logout_at + 1:] for live in live_session_cookies(r)}
    async with httpx.AsyncClient() as after:
        for held in (cookie_header(jar), *(f"renewal_session={v}" for v in {cookie, *revived})):
            replay = await after.get(app.url + "/api/me", headers={"cookie": held})
            assert replay.status_code == 401
            assert not live_session_cookies(replay)
    assert "renewal_session" not in jar or jar["renewal_session"] in revived
    # The newest refresh token is the one revoked, and no grant was refused on the way.
    newest = recorded[-1] if recorded else first
    assert grants(provider)[1] == 0 and grants(provider)[0] == len(recorded) <= 1
    assert newest.refresh_token and await refresh_token_is_dead(provider, newest.refresh_token)


@pytest.fixture
def backchannel_apps(driver: str) -> Iterator[tuple[Provider, Running, Running]]:
    """A provider that POSTs logout tokens to worker A; worker B shares A's store."""
    port = free_port()
    client: dict[str, Any] = {**DEFAULT_CLIENT,
                              "backchannel_logout_uri": f"http://127.0.0.1:{port}/backchannel-logout",
                              "backchannel_logout_session_required": True}
    op = start_provider(access_token_ttl=60, clients=[client])
    try:
        with running(op, driver, port=port) as a, running(op, driver) as b:
            yield op, a, b
    finally:
        op.stop()


async def test_a_sign_out_at_the_provider_ends_the_session_on_every_worker(
        backchannel_apps: tuple[Provider, Running, Running]) -> None:
    op, a, b = backchannel_apps
    async with httpx.AsyncClient() as client:
        await login(client, a.url)
        cookie = {"cookie": f"renewal_session={session_cookie(client)}"}
        assert (await client.get(b.url + "/api/me", headers=cookie)).status_code == 200
        assert "sid" in session_of(a, session_cookie(client)).claims
        # Signed out at the provider, not through the app: the provider tells the app.
        signed_out = await browse(client, op.issuer + "/session/end")
        assert signed_out.status_code == 200
        assert (await client.get(a.url + "/api/me", headers=cookie)).status_code == 401
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 1.5  # other workers learn it within a second
        while (await client.get(b.url + "/api/me", headers=cookie)).status_code != 401:
            assert loop.time() < deadline, "worker B still serves the signed-out session"
            await asyncio.sleep(0.05)


async def test_a_forged_logout_token_is_a_400(app: Running) -> None:
    async with httpx.AsyncClient() as client:
        forged = await client.post(app.url + "/backchannel-logout",
                                   data={"logout_token": "eyJhbGciOiJub25lIn0.e30."})
        empty = await client.post(app.url + "/backchannel-logout", data={})
    assert forged.status_code == 400 and forged.json()["error"] == "invalid_request"
    assert empty.status_code == 400
