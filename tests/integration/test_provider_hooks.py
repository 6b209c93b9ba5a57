"""The app's hooks against the real provider, on both drivers, sync and async."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import httpx
import pytest

from renewal_middleware import (
    Hooks,
    LoginEvent,
    LoginRefused,
    LogoutEvent,
    RenewalEvent,
)
from tests.integration.apps import SAME_ORIGIN, running, session_cookie
from tests.op.harness import Provider, login


class App:
    """Hooks that let Alice in with a role, refuse Bob, and record the rest."""

    def __init__(self, asynchronous: bool) -> None:
        self.events: list[object] = []
        self.asynchronous = asynchronous

    def hooks(self) -> Hooks:
        if not self.asynchronous:
            return Hooks(after_login=self.admit, after_renewal=self.events.append,
                         after_logout=self.events.append)

        async def admit(event: LoginEvent) -> Mapping[str, Any]:
            await asyncio.sleep(0)
            return self.admit(event)

        async def record(event: object) -> None:
            await asyncio.sleep(0)
            self.events.append(event)

        return Hooks(after_login=admit, after_renewal=record, after_logout=record)

    def admit(self, event: LoginEvent) -> Mapping[str, Any]:
        self.events.append(event)
        if event.sub == "bob":
            raise LoginRefused("This app is for Alice only.")
        if event.sub != "alice":
            raise RuntimeError("a directory lookup failed")
        return {"roles": ["admin"]}


@pytest.fixture(params=["asgi-sync", "asgi-async", "wsgi-sync", "wsgi-async"])
def setup(request: pytest.FixtureRequest) -> tuple[str, App]:
    driver, kind = str(request.param).split("-")
    return driver, App(asynchronous=kind == "async")


async def test_hooks_see_a_login_a_renewal_and_a_logout(
        provider: Provider, setup: tuple[str, App]) -> None:
    driver, app_hooks = setup
    with running(provider, driver, hooks=app_hooks.hooks()) as app:
        async with httpx.AsyncClient(timeout=30) as client:
            await login(client, app.url)
            cookie = session_cookie(client)
            view = app.middleware.flows.sessions.load(f"renewal_session={cookie}",
                                                      app.clock()).view
            assert view is not None and view.session.claims["roles"] == ["admin"]
            login_event = app_hooks.events[0]
            assert isinstance(login_event, LoginEvent) and login_event.claims["name"]
            app.grace_window()
            renewed = await client.get(app.url + "/api/me")
            assert renewed.status_code == 200
            await client.get(app.url + "/logout", headers=SAME_ORIGIN)
    renewal, logout = app_hooks.events[1:]
    assert isinstance(renewal, RenewalEvent) and renewal.via == "refresh"
    assert renewal.new_expires_at > renewal.old_expires_at == view.session.expires_at
    assert logout == LogoutEvent("user", view.session.id, "alice")


async def test_a_refusing_login_hook_ends_in_a_403_page_and_no_session(
        provider: Provider, setup: tuple[str, App]) -> None:
    driver, app_hooks = setup
    with running(provider, driver, hooks=app_hooks.hooks()) as app:
        async with httpx.AsyncClient(timeout=30) as client:
            page = await login(client, app.url, username="bob", password="builder")
            assert page.status_code == 403
            assert "This app is for Alice only." in page.text
            assert not [c for c in client.cookies.jar if c.name == "renewal_session"]
            assert (await client.get(app.url + "/api/me")).status_code == 401
