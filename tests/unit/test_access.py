"""What the app reads of a request, whatever the framework: access.py over both drivers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from starlette.authentication import AuthCredentials, SimpleUser
from starlette.types import Message, Receive, Scope, Send

from renewal_middleware import RenewalMiddleware, access_token, current_user, logged_in_user
from renewal_middleware.access import CONTEXT_KEY
from renewal_middleware.flows import Flows
from tests.unit.helpers import FakeClock, make_session, make_settings, session_cookie_header

Seen = dict[str, Any]


def inner_auth_app(seen: Seen) -> Any:
    """An app behind another auth middleware, which overwrites Starlette's two keys."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen["user"], seen["auth"] = scope["user"], scope["auth"]
        scope["user"], scope["auth"] = SimpleUser("api-key"), AuthCredentials(["api"])
        seen["ours"], seen["token"] = current_user(scope), access_token(scope)
        seen["keys"] = set(scope)
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    return app


async def call(middleware: RenewalMiddleware, cookie: str | None, state: bool,
               headers: list[tuple[bytes, bytes]] | None = None, kind: str = "http") -> Scope:
    if headers is None:
        headers = [(b"cookie", cookie.encode())] if cookie is not None else []
    scope: Scope = {"type": kind, "method": "GET", "path": "/page", "raw_path": b"/page",
                    "query_string": b"", "headers": headers}
    if state:
        scope["state"] = {}

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    async def send(message: Message) -> None:
        pass

    await middleware(scope, receive, send)
    return scope


class Behind:
    """The middleware in front of :func:`inner_auth_app`, and a browser's session cookie."""

    def __init__(self, clock: FakeClock) -> None:
        self.seen: Seen = {}
        settings = make_settings()
        self.middleware = RenewalMiddleware(inner_auth_app(self.seen), settings=settings,
                                            clock=clock)
        self.cookie = session_cookie_header(Flows(settings, clock), make_session())


@pytest.fixture
async def behind(clock: FakeClock) -> AsyncIterator[Behind]:
    made = Behind(clock)
    yield made
    await made.middleware.aclose()


@pytest.mark.parametrize("state", [True, False], ids=["server-state", "no-state"])
async def test_the_app_reads_the_session_even_behind_another_auth_middleware(
        behind: Behind, state: bool) -> None:
    seen = behind.seen
    scope = await call(behind.middleware, behind.cookie, state)
    assert seen["user"].identity == "alice" and seen["auth"].access_token == "at-1"
    assert seen["ours"].identity == "alice" and seen["token"] == "at-1"
    # The scope grows by Starlette's two keys only when the server gives a state.
    assert (CONTEXT_KEY in seen["keys"]) is not state
    assert logged_in_user(scope) is not None


async def test_an_anonymous_request_reads_as_anonymous(clock: FakeClock) -> None:
    seen: Seen = {}
    middleware = RenewalMiddleware(inner_auth_app(seen), settings=make_settings(), clock=clock)
    scope = await call(middleware, None, True)
    assert not seen["user"].is_authenticated
    assert not seen["ours"].is_authenticated and seen["token"] is None
    assert logged_in_user(scope) is None
    await middleware.aclose()


def test_a_carrier_the_middleware_never_saw_is_anonymous() -> None:
    assert not current_user({}).is_authenticated
    assert access_token({"state": {CONTEXT_KEY: "not ours"}}) is None
    assert not current_user({"user": "not a user"}).is_authenticated


@pytest.mark.parametrize("websocket", [False, True], ids=["http", "websocket"])
async def test_a_cookie_header_split_in_several_is_read_whole(
        behind: Behind, websocket: bool) -> None:
    """HTTP/2 may send the Cookie header as several fields (RFC 9113 §8.2.3)."""
    headers = [(b"cookie", b"theme=dark"), (b"cookie", behind.cookie.encode()),
               (b"accept", b"*/*"), (b"cookie", b"lang=en")]
    await call(behind.middleware, None, True, headers, "websocket" if websocket else "http")
    assert behind.seen["user"].identity == "alice"
