"""Server-side session storage through the ASGI middleware (provider stubbed, memory store)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import respx
from joserfc.jwk import RSAKey

from renewal_middleware.session import Session
from renewal_middleware.stores.base import Lineage
from tests.unit.helpers import (
    FakeClock,
    cookie_header,
    make_session,
    make_settings,
    set_cookie_pairs,
)
from tests.unit.test_spa import Harness


@pytest.fixture
async def harness(clock: FakeClock, rsa_key: RSAKey) -> AsyncIterator[Harness]:
    with respx.mock(assert_all_called=False) as router:
        h = Harness(clock, rsa_key, router, make_settings(session_storage="server"))
        try:
            yield h
        finally:
            await h.client.aclose()
            await h.middleware.aclose()


async def stored(harness: Harness, session: Session) -> dict[str, str]:
    """``session`` kept in the middleware's store, and the cookie that names it."""
    lineages = harness.middleware.flows.lineages
    await harness.middleware.store.write(
        session.id, Lineage(session.generation, lineages.seal(session)), 3600)
    return handle(harness, session)


def handle(harness: Harness, session: Session) -> dict[str, str]:
    """The cookie of a server-side ``session``: its id, signed."""
    sessions = harness.browser_flows.sessions
    value = sessions.encode(session, harness.clock())
    return {"cookie": cookie_header(set_cookie_pairs(sessions.cookie.set_headers(value, ())))}


async def test_the_cookie_names_the_session_and_the_store_holds_it(harness: Harness) -> None:
    session = make_session(claims={"sub": "alice", "blob": "x" * 100_000})
    cookies = await stored(harness, session)
    assert len(cookies["cookie"]) < 200
    response = await harness.client.get("/api/notes", headers=cookies)
    assert response.json() == {"user": "alice"}


async def test_a_renewal_writes_the_store_and_keeps_the_cookie_small(
        harness: Harness, clock: FakeClock) -> None:
    cookies = await stored(harness, make_session())
    clock.advance(3600 - 30)
    response = await harness.client.get("/api/notes", headers=cookies)
    assert response.json() == {"user": "alice"} and harness.token.call_count == 1
    (set_cookie,) = response.headers.get_list("set-cookie")
    assert len(set_cookie.split(";")[0]) < 200
    known = await harness.middleware.store.read("sid-1")
    assert known is not None and known.generation == 1


async def test_a_cookie_whose_session_is_not_in_the_store_is_cleared(harness: Harness) -> None:
    response = await harness.client.get("/api/notes", headers=handle(harness, make_session()))
    assert response.json() == {"user": False}
    assert all("Max-Age=0" in c for c in response.headers.get_list("set-cookie"))


async def test_the_store_down_is_a_503_not_a_logout(
        harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    cookies = await stored(harness, make_session())

    async def down(*args: Any) -> None:
        raise ConnectionError("store unreachable")

    monkeypatch.setattr(harness.middleware.store, "read", down)
    response = await harness.client.get("/api/notes", headers=cookies)
    assert response.status_code == 503
    assert "set-cookie" not in response.headers
    monkeypatch.undo()
    assert (await harness.client.get("/api/notes", headers=cookies)).json() == {"user": "alice"}


async def test_logout_deletes_the_stored_tokens(harness: Harness) -> None:
    cookies = await stored(harness, make_session())
    await harness.client.post("/logout", headers={**cookies, "x-csrf": "1"})
    known = await harness.middleware.store.read("sid-1")
    assert known is not None and known.ended and known.sealed == ""
    assert (await harness.client.get("/api/notes", headers=cookies)).json() == {"user": False}


async def test_a_session_from_cookie_storage_moves_to_the_store_at_its_renewal(
        harness: Harness, clock: FakeClock) -> None:
    whole = harness.cookies(make_session())  # written before session_storage was "server"
    assert (await harness.client.get("/api/notes", headers=whole)).json() == {"user": "alice"}
    clock.advance(3600 - 30)
    renewed = await harness.client.get("/api/notes", headers=whole)
    (set_cookie,) = renewed.headers.get_list("set-cookie")
    assert len(set_cookie.split(";")[0]) < 200
    assert await harness.middleware.store.read("sid-1") is not None
