"""The ASGI driver's inlined pass-through answers exactly as Flows.pass_through does."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.types import Message, Receive, Scope, Send

from renewal_middleware import RenewalMiddleware
from renewal_middleware.access import CONTEXT_KEY
from renewal_middleware.flows import Flows
from tests.unit.helpers import FakeClock, make_session, make_settings, session_cookie_header


class App:
    """Records the scope of each call."""

    def __init__(self) -> None:
        self.scopes: list[Scope] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.scopes.append(scope)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


class Driven:
    """The middleware, with a count of the requests its fast path did not answer."""

    def __init__(self, clock: FakeClock) -> None:
        self.app = App()
        self.middleware = RenewalMiddleware(self.app, settings=make_settings(), clock=clock)
        self.slow = 0
        slow_path = self.middleware._handle_http

        async def counted(*args: Any) -> None:
            self.slow += 1
            await slow_path(*args)

        self.middleware._handle_http = counted  # type: ignore[method-assign]

    async def request(self, headers: list[tuple[bytes, bytes]], *, method: str = "GET",
                      path: str = "/", root_path: str = "") -> tuple[bool, Scope | None]:
        """(whether the fast path answered, the scope the app saw)."""
        scope: Scope = {"type": "http", "method": method, "path": path, "root_path": root_path,
                        "query_string": b"", "headers": headers, "state": {}}
        slow, seen = self.slow, len(self.app.scopes)

        async def receive() -> Message:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: Message) -> None:
            pass

        await self.middleware(scope, receive, send)
        return self.slow == slow, self.app.scopes[-1] if len(self.app.scopes) > seen else None


@pytest.fixture
async def driven(clock: FakeClock) -> Any:
    d = Driven(clock)
    yield d
    await d.middleware.aclose()


def _cookie(clock: FakeClock) -> bytes:
    return session_cookie_header(Flows(make_settings(), clock), make_session()).encode()


async def test_a_remembered_cookie_on_a_get_takes_the_fast_path(
        driven: Driven, clock: FakeClock) -> None:
    cookie = _cookie(clock)
    first, _ = await driven.request([(b"cookie", cookie)])
    assert not first  # verified once, then remembered
    fast, scope = await driven.request([(b"host", b"a"), (b"cookie", bytes(bytearray(cookie)))])
    assert fast and scope is not None
    expected = driven.middleware.flows.pass_through("/", cookie, clock(), "GET")
    assert expected is not None
    assert scope["user"] is expected.user and scope["auth"] is expected.auth
    assert scope["state"][CONTEXT_KEY] is expected
    assert scope["user"].identity == "alice"


@pytest.mark.parametrize(("method", "path", "root_path"), [
    ("POST", "/", ""),          # checked for forgery
    ("HEAD", "/", ""),          # Flows decides (it passes it through too)
    ("GET", "/login", ""),      # an own route
    ("GET", "/logout", ""),
    ("GET", "/app/", "/app"),   # mounted: the app's path is worked out by Flows
])
async def test_other_requests_are_left_to_flows(driven: Driven, clock: FakeClock, method: str,
                                                path: str, root_path: str) -> None:
    cookie = _cookie(clock)
    await driven.request([(b"cookie", cookie)])
    fast, _ = await driven.request([(b"cookie", cookie)], method=method, path=path,
                                   root_path=root_path)
    assert not fast


async def test_several_cookie_headers_are_joined_by_flows(
        driven: Driven, clock: FakeClock) -> None:
    cookie = _cookie(clock)
    await driven.request([(b"cookie", b"theme=dark; " + cookie)])
    fast, scope = await driven.request([(b"cookie", b"theme=dark"), (b"cookie", cookie)])
    assert not fast  # the last header alone was never seen
    assert scope is not None and scope["user"].identity == "alice"
    fast, scope = await driven.request([(b"cookie", b"theme=dark; " + cookie)])
    assert fast and scope is not None and scope["user"].identity == "alice"


async def test_only_the_last_cookie_header_is_looked_up(driven: Driven, clock: FakeClock) -> None:
    cookie = _cookie(clock)
    await driven.request([(b"cookie", cookie)])
    fast, scope = await driven.request([(b"cookie", cookie), (b"cookie", b"theme=dark")])
    assert not fast
    assert scope is not None and scope["user"].identity == "alice"


async def test_a_header_with_the_same_end_but_another_start_is_verified_again(
        driven: Driven, clock: FakeClock) -> None:
    cookie = _cookie(clock)
    await driven.request([(b"cookie", cookie)])
    forged = b"x" + cookie[1:]
    assert forged[-64:] == cookie[-64:]
    fast, scope = await driven.request([(b"cookie", forged)])
    assert not fast
    assert scope is not None and not scope["user"].is_authenticated


async def test_the_fast_path_ends_when_the_renewal_window_opens(
        driven: Driven, clock: FakeClock) -> None:
    cookie = _cookie(clock)
    await driven.request([(b"cookie", cookie)])
    entry = driven.middleware.flows.header_answers[cookie[-64:]]
    clock.now = entry[2]
    assert driven.middleware.flows.pass_through("/", cookie, clock(), "GET") is None
    fast, _ = await driven.request([(b"cookie", cookie)])
    assert not fast


async def test_no_cookie_is_anonymous(driven: Driven) -> None:
    _, scope = await driven.request([(b"host", b"a")])
    assert scope is not None and not scope["user"].is_authenticated
