"""Pending logins are capped when they start, against the real provider, on both drivers."""

from __future__ import annotations

import httpx
import pytest

from tests.integration.apps import running
from tests.op.harness import Provider, login


@pytest.mark.parametrize("driver", ["asgi", "wsgi"])
async def test_many_abandoned_logins_leave_eight_cookies_and_the_last_one_succeeds(
        provider: Provider, driver: str) -> None:
    with running(provider, driver) as app:
        async with httpx.AsyncClient(timeout=30) as client:
            for _ in range(40):  # forty tabs that went to the provider and were closed there
                started = await client.get(app.url + "/login")
                assert started.status_code == 302
            pending = [c for c in client.cookies.jar if "_tx_" in c.name]
            assert len(pending) == 8
            assert sum(len(c.name) + len(c.value or "") for c in pending) < 4000
            home = await login(client, app.url)
            assert home.status_code == 200
            assert (await client.get(app.url + "/api/me")).json()["sub"] == "alice"
            # The last login pushed the oldest out and ended its own: seven other tabs may
            # still finish theirs.
            assert len([c for c in client.cookies.jar if "_tx_" in c.name]) == 7
