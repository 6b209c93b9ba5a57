"""A session's absolute and idle lifetimes, through the ASGI middleware (provider stubbed)."""

# ruff: noqa: F811  (the fixtures of test_spa, imported, are the parameters of the tests)

from __future__ import annotations

import httpx
import pytest

from tests.unit.helpers import T0, FakeClock, make_session, make_settings
from tests.unit.test_spa import Harness, harness, settings  # noqa: F401 (fixtures)

DAY = 24 * 3600


def revoked_tokens(harness: Harness) -> list[str]:
    return [call.request.content.decode() for call in harness.revoked.calls]


def clears_the_session(response: httpx.Response) -> bool:
    cookies = response.headers.get_list("set-cookie")
    return bool(cookies) and all("Max-Age=0" in c for c in cookies)


async def test_a_session_ends_at_its_absolute_lifetime_however_active(
        harness: Harness, clock: FakeClock) -> None:
    session = make_session(login_at=int(T0) - 7 * DAY + 10, expires_in=7 * DAY)
    cookies = harness.cookies(session)
    assert (await harness.client.get("/api/notes", headers=cookies)).json() == {"user": "alice"}
    clock.advance(10)
    ended = await harness.client.get("/api/notes", headers=cookies)
    assert ended.json() == {"user": False}
    assert clears_the_session(ended)
    assert revoked_tokens(harness) == ["token=rt-1&token_type_hint=refresh_token"]
    again = await harness.client.get("/api/notes", headers=cookies)  # a copy of the old cookie
    assert again.json() == {"user": False}


async def test_a_session_ends_after_a_day_without_a_request(
        harness: Harness, clock: FakeClock) -> None:
    cookies = harness.cookies(make_session(expires_in=2 * DAY))
    clock.advance(DAY - 1)
    assert (await harness.client.get("/api/notes", headers=cookies)).json() == {"user": "alice"}
    clock.advance(1)
    ended = await harness.client.get("/api/notes", headers=cookies)
    assert ended.json() == {"user": False} and clears_the_session(ended)
    assert len(revoked_tokens(harness)) == 1


async def test_activity_is_recorded_once_a_minute_and_keeps_the_session(
        harness: Harness, clock: FakeClock) -> None:
    cookies = harness.cookies(make_session(expires_in=3 * DAY))
    clock.advance(59)
    quiet = await harness.client.get("/api/notes", headers=cookies)
    assert "set-cookie" not in quiet.headers  # nothing to record yet
    clock.advance(1)
    recorded = await harness.client.get("/api/notes", headers=cookies)
    (set_cookie,) = recorded.headers.get_list("set-cookie")
    name, _, rest = set_cookie.partition("=")
    renewed = {"cookie": f"{name}={rest.split(';', 1)[0]}"}
    assert renewed != cookies
    clock.advance(DAY - 1)  # a day after the first request, but not after the recorded one
    assert (await harness.client.get("/api/notes", headers=renewed)).json() == {"user": "alice"}
    assert (await harness.client.get("/api/notes", headers=cookies)).json() == {"user": False}
    assert not harness.token.called


async def test_a_session_from_before_login_times_were_kept_has_no_absolute_limit(
        harness: Harness, clock: FakeClock) -> None:
    session = make_session(login_at=0, expires_in=30 * DAY)
    clock.advance(7 * DAY)
    fresh = harness.cookies(session)  # signed now: active
    assert (await harness.client.get("/api/notes", headers=fresh)).json() == {"user": "alice"}


async def test_an_ended_session_is_anonymous_even_when_revocation_fails(
        harness: Harness, clock: FakeClock) -> None:
    harness.revoked.mock(return_value=httpx.Response(503))
    cookies = harness.cookies(make_session(expires_in=2 * DAY))
    clock.advance(DAY)
    ended = await harness.client.get("/api/notes", headers=cookies)
    assert ended.status_code == 200 and ended.json() == {"user": False}
    assert clears_the_session(ended)


@pytest.mark.parametrize("settings", [
    make_settings(absolute_lifetime_seconds=0, idle_timeout_seconds=0)])
async def test_both_limits_can_be_turned_off(harness: Harness, clock: FakeClock) -> None:
    session = make_session(login_at=int(T0), expires_in=60 * DAY)
    cookies = harness.cookies(session)
    clock.advance(10 * DAY)
    response = await harness.client.get("/api/notes", headers=cookies)
    assert response.json() == {"user": "alice"} and "set-cookie" not in response.headers
