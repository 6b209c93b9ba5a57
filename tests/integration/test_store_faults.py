"""The shared store failing under the middleware: Redis stopped mid-test, a worker killed
while it holds a session's renewal lock. Requests are served throughout, never a 5xx."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.integration.apps import Running, running, session_cookie
from tests.op.harness import Provider, login
from tests.redis_server import RedisServer


@pytest.fixture(params=["asgi", "wsgi"])
def driver(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.close()


def refresh_grants(provider: Provider) -> int:
    return int(provider.stats()["grants"].get("refresh_token", 0))


async def test_redis_stopped_mid_test_serves_renews_and_recovers(
        provider: Provider, driver: str, redis_server: RedisServer,
        caplog: pytest.LogCaptureFixture) -> None:
    provider.reset_stats()
    with running(provider, driver, store=redis_server.url, http_timeout_seconds=2) as app:
        async with httpx.AsyncClient(timeout=30) as client:
            await login(client, app.url)
            redis_server.stop()
            fresh = await client.get(app.url + "/api/me")
            assert fresh.status_code == 200  # pass-through never touches the store
            app.grace_window()
            renewed = await client.get(app.url + "/api/me")
            assert renewed.status_code == 200
            assert renewed.json()["access_token"] != fresh.json()["access_token"]
            assert refresh_grants(provider) == 1  # in this process only, but the user stays in
            assert "store" in caplog.text and "unavailable" in caplog.text
            redis_server.start()
            app.clock.advance(45)
            again = await client.get(app.url + "/api/me")
            assert again.status_code == 200 and refresh_grants(provider) == 2
            # The store has the lineage again: a request with the previous cookie adopts it.
            cookie = session_cookie(client)
            view = app.middleware.flows.sessions.load(f"renewal_session={cookie}", app.clock())
            assert view.view is not None and view.view.session.generation == 2


HOLD_LOCK = """
import sys, time
from renewal_middleware.stores.host import HostStore
store = HostStore(sys.argv[1])
assert store.lock(sys.argv[2], 60, 0) is not None
print("locked", flush=True)
time.sleep(600)
"""


async def test_a_worker_killed_while_it_holds_the_lock_does_not_block_renewal(
        provider: Provider, driver: str) -> None:
    """Another worker took the session's lock to renew it, and died (SIGKILL) meanwhile."""
    provider.reset_stats()
    with running(provider, driver) as app:
        async with httpx.AsyncClient(timeout=30) as client:
            await login(client, app.url)
            session_id = session_id_of(app, session_cookie(client))
            holder = subprocess.Popen(
                [sys.executable, "-c", HOLD_LOCK, str(app.middleware.settings.store_directory),
                 session_id], stdout=subprocess.PIPE, text=True)
            try:
                assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
                app.grace_window()
                waiting = asyncio.ensure_future(client.get(app.url + "/api/me"))
                await asyncio.sleep(0.5)
                assert not waiting.done()  # the renewal waits for the holder
                holder.send_signal(signal.SIGKILL)
                killed = time.monotonic()
                renewed = await waiting
                waited = time.monotonic() - killed
            finally:
                if holder.poll() is None:
                    holder.kill()
                holder.wait(10)
                if holder.stdout is not None:
                    holder.stdout.close()
            assert renewed.status_code == 200 and refresh_grants(provider) == 1
            assert waited < 2.0  # the kernel frees a dead holder's lock at once


def session_id_of(app: Running, cookie: str) -> str:
    view = app.middleware.flows.sessions.load(f"renewal_session={cookie}", app.clock()).view
    assert view is not None
    return view.session.id
