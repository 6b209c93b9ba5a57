"""The app's hooks, sync and async, through the ASGI middleware (provider stubbed)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import respx
from joserfc.jwk import RSAKey

from renewal_middleware.errors import LoginDenied
from renewal_middleware.hooks import (
    CallHook,
    Hooks,
    LoginEvent,
    LoginRefused,
    LogoutEvent,
    RenewalEvent,
    RenewalFailureEvent,
    admit,
    call_async,
    call_sync,
)
from tests.unit.helpers import FakeClock, make_session, make_settings
from tests.unit.test_spa import Harness


class Recorder:
    """Every event its hooks saw, by hook name; ``fail`` makes them raise."""

    def __init__(self, fail: bool = False) -> None:
        self.events: list[tuple[str, Any]] = []
        self.fail = fail

    def sync(self, name: str) -> Any:
        def hook(event: Any) -> None:
            self.events.append((name, event))
            if self.fail:
                raise RuntimeError("the app's hook broke")
        return hook

    def asynchronous(self, name: str) -> Any:
        async def hook(event: Any) -> None:
            await asyncio.sleep(0)
            self.events.append((name, event))
        return hook

    def hooks(self, asynchronous: bool = False) -> Hooks:
        make = self.asynchronous if asynchronous else self.sync
        return Hooks(after_renewal=make("after_renewal"), after_logout=make("after_logout"),
                     on_renewal_failure=make("on_renewal_failure"))


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture(params=["sync", "async"])
async def harness(request: pytest.FixtureRequest, clock: FakeClock, rsa_key: RSAKey,
                  recorder: Recorder) -> AsyncIterator[Harness]:
    with respx.mock(assert_all_called=False) as router:
        h = Harness(clock, rsa_key, router, make_settings(),
                    recorder.hooks(asynchronous=request.param == "async"))
        try:
            yield h
        finally:
            await h.client.aclose()
            await h.middleware.aclose()


async def test_a_renewal_is_told_once_with_both_expiries(
        harness: Harness, recorder: Recorder, clock: FakeClock) -> None:
    session = make_session()
    clock.advance(3600 - 30)
    cookies = harness.cookies(session)
    answers = await asyncio.gather(*(harness.client.get("/api/notes", headers=cookies)
                                     for _ in range(5)))
    assert all(a.json() == {"user": "alice"} for a in answers)
    assert recorder.events == [("after_renewal", RenewalEvent(
        "sid-1", "alice", session.expires_at, int(clock()) + 3600, "refresh"))]


@pytest.mark.parametrize(("status", "body", "reason", "ended"), [
    (400, {"error": "invalid_grant"}, "invalid_grant", True),
    (503, {}, "provider_unavailable", False),
])
async def test_a_failed_renewal_is_told_with_its_reason(
        harness: Harness, recorder: Recorder, clock: FakeClock, status: int,
        body: dict[str, str], reason: str, ended: bool) -> None:
    harness.token.side_effect = None
    harness.token.return_value = httpx.Response(status, json=body)
    clock.advance(3600 - 30)
    await harness.client.get("/api/notes", headers=harness.cookies(make_session()))
    assert recorder.events == [("on_renewal_failure", RenewalFailureEvent(
        "sid-1", "alice", reason, ended))]  # type: ignore[arg-type]


async def test_logouts_are_told_with_their_reason(
        harness: Harness, recorder: Recorder, clock: FakeClock) -> None:
    idle = harness.cookies(make_session(id="sid-2", expires_in=3 * 24 * 3600))
    await harness.client.post("/logout", headers=harness.cookies(make_session(), **{
        "x-csrf": "1"}))
    clock.advance(24 * 3600)  # the other session has been idle for a day
    await harness.client.get("/api/notes", headers=idle)
    assert recorder.events == [("after_logout", LogoutEvent("user", "sid-1", "alice")),
                               ("after_logout", LogoutEvent("lifetime", "sid-2", "alice"))]


async def test_a_hook_that_raises_is_logged_and_the_request_goes_on(
        clock: FakeClock, rsa_key: RSAKey, caplog: pytest.LogCaptureFixture) -> None:
    recorder = Recorder(fail=True)
    with respx.mock(assert_all_called=False) as router:
        harness = Harness(clock, rsa_key, router, make_settings(), recorder.hooks())
        clock.advance(3600 - 30)
        response = await harness.client.get("/api/notes",
                                             headers=harness.cookies(make_session()))
        await harness.client.aclose()
        await harness.middleware.aclose()
    assert response.json() == {"user": "alice"}
    assert "set-cookie" in response.headers  # the renewal stands
    assert [n for n, _ in recorder.events] == ["after_renewal"]
    assert any(r.levelno == logging.ERROR and "after_renewal hook raised" in r.getMessage()
               for r in caplog.records)


def test_the_wsgi_driver_runs_async_hooks_to_their_end() -> None:
    seen: list[object] = []

    async def hook(event: object) -> str:
        await asyncio.sleep(0)
        seen.append(event)
        return "done"

    outcome = call_sync(CallHook(hook, "after_logout", "event"))
    assert (outcome.value, outcome.error, seen) == ("done", None, ["event"])
    broken = call_sync(CallHook(lambda e: 1 / 0, "after_logout", "event"))
    assert isinstance(broken.error, ZeroDivisionError)


async def test_the_asgi_driver_awaits_hooks_and_keeps_their_errors() -> None:
    async def hook(event: object) -> object:
        return {"seen": event}

    assert (await call_async(CallHook(hook, "after_login", 1))).value == {"seen": 1}
    broken = await call_async(CallHook(lambda e: {}["x"], "after_login", 1))
    assert isinstance(broken.error, KeyError)


def admitted(hook: Any) -> Any:
    """Run :func:`admit` for a new session of Alice, the driver's way."""
    flow = admit(Hooks(after_login=hook), make_session())
    step = next(flow)
    try:
        flow.send(call_sync(step))
    except StopIteration as stop:
        return stop.value
    raise AssertionError("admit yields one hook call")


def test_an_after_login_hook_adds_claims_or_refuses() -> None:
    session = admitted(lambda event: {"roles": ["admin"], "sub": event.sub})
    assert session.claims == {"sub": "alice", "name": "Alice", "roles": ["admin"]}
    assert admitted(lambda event: None) == make_session()

    def refuse(event: LoginEvent) -> None:
        raise LoginRefused("Acme employees only.")

    with pytest.raises(LoginDenied, match="Acme employees only") as refused:
        admitted(refuse)
    assert refused.value.status == 403


def test_an_after_login_hook_that_breaks_refuses_the_login(
        caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(LoginDenied, match="could not be completed"):
        admitted(lambda event: 1 / 0)
    assert "after_login hook raised" in caplog.text
