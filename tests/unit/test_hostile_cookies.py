"""Hostile session cookies at the middleware: anonymous pass-through, a log line, no 5xx, no login.

Driven in-process with a raw ASGI call, so headers can be anything a socket could carry.
"""

from __future__ import annotations

import base64
import logging
import os
import time
from typing import Any

import pytest
from starlette.types import Message, Receive, Scope, Send

from renewal_middleware import RenewalMiddleware, Session

BASE = dict(issuer="http://127.0.0.1:9", client_id="client", client_secret="secret",
            base_url="http://127.0.0.1:8000")
KEY, OLD_KEY = "k" * 40, "o" * 40
LONG_AGO = 15 * 24 * 3600  # past the default 14-day session lifetime


async def echo_user(scope: Scope, receive: Receive, send: Send) -> None:
    body = scope["user"].display_name.encode() if scope["user"].is_authenticated else b"anon"
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


def middleware(keys: list[str] | None = None, clock: Any = time.time) -> RenewalMiddleware:
    return RenewalMiddleware(echo_user, secret_keys=keys or [KEY], clock=clock, **BASE)


async def call(app: RenewalMiddleware, headers: list[tuple[bytes, bytes]]
               ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    messages: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        messages.append(message)

    scope = {"type": "http", "method": "GET", "path": "/", "raw_path": b"/", "query_string": b"",
             "headers": headers, "scheme": "http", "server": ("127.0.0.1", 8000),
             "http_version": "1.1", "asgi": {"version": "3.0"}}
    await app(scope, receive, send)
    start = messages[0]
    return start["status"], start.get("headers", []), b"".join(
        m.get("body", b"") for m in messages[1:])


def a_session(now: float) -> Session:
    return Session(id="sid", access_token="AT-secret-value", expires_at=int(now) + 3600,
                   obtained_at=int(now), refresh_token="RT-secret-value", id_token=None,
                   claims={"sub": "alice", "name": "Alice"})


def cookie_for(app: RenewalMiddleware, now: float | None = None) -> str:
    now = time.time() if now is None else now
    return app.flows.sessions.encode(a_session(now), now)


async def test_a_valid_cookie_logs_in() -> None:
    app = middleware()
    status, headers, body = await call(app, [(b"cookie", f"renewal_session={cookie_for(app)}"
                                                         .encode())])
    assert (status, body) == (200, b"Alice")
    assert not [h for h in headers if h[0] == b"set-cookie"]


def tampered(value: str) -> str:
    middle = len(value) // 2
    return value[:middle] + ("A" if value[middle] != "A" else "B") + value[middle + 1:]


CASES = {
    "tampered": lambda app: tampered(cookie_for(app)),
    "garbage": lambda app: "not-a-cookie-at-all",
    "truncated": lambda app: cookie_for(app)[:-10],
    "non-ascii": lambda app: "caf\u00e9\u00ff" + cookie_for(app)[6:],
    "retired-key": lambda app: cookie_for(middleware([OLD_KEY])),
    "expired": lambda app: cookie_for(middleware(clock=lambda: time.time() - LONG_AGO),
                                      time.time() - LONG_AGO),
    "unencrypted-json": lambda app: cookie_for(
        RenewalMiddleware(echo_user, secret_keys=[KEY], encrypt_cookies=False, **BASE)),
}


@pytest.mark.parametrize("make", CASES.values(), ids=CASES.keys())
async def test_bad_cookie_is_anonymous_cleared_and_logged(
        make: Any, caplog: pytest.LogCaptureFixture) -> None:
    app = middleware()
    value = make(app)
    with caplog.at_level(logging.INFO, logger="renewal_middleware"):
        status, headers, body = await call(
            app, [(b"cookie", b"renewal_session=" + value.encode("utf-8"))])
    assert (status, body) == (200, b"anon")
    cleared = [v for k, v in headers if k == b"set-cookie"]
    assert cleared and all(b"Max-Age=0" in c for c in cleared)
    assert caplog.records, "a refused cookie leaves a log line"
    for record in caplog.records:
        assert value not in record.getMessage()
        assert "secret-value" not in record.getMessage()


async def test_payload_of_the_wrong_shape_is_refused() -> None:
    app = middleware()
    wrong = app.flows.sessions.cookie.encode({"v": 1, "id": "x", "at": 5})
    status, _, body = await call(app, [(b"cookie", f"renewal_session={wrong}".encode())])
    assert (status, body) == (200, b"anon")


async def test_huge_cookie_header_and_many_cookies() -> None:
    app = middleware()
    good = cookie_for(app)
    many = "; ".join(f"c{i}={'x' * 20}" for i in range(200))
    huge = "pad=" + "y" * 100_000
    for header in (f"{many}; renewal_session={good}", f"{huge}; renewal_session={good}"):
        status, _, body = await call(app, [(b"cookie", header.encode())])
        assert (status, body) == (200, b"Alice")
    status, _, body = await call(app, [(b"cookie", f"renewal_session={'z' * 100_000}".encode())])
    assert (status, body) == (200, b"anon")


async def test_chunks_missing_out_of_order_or_mixed_are_refused() -> None:
    app = middleware()
    size = app.flows.sessions.cookie.chunk_size

    def chunks(name: str) -> list[str]:
        big = Session(id=name, access_token=base64.urlsafe_b64encode(os.urandom(7000)).decode(),
                      expires_at=int(time.time()) + 3600, obtained_at=int(time.time()),
                      refresh_token=None, id_token=None, claims={"sub": name, "name": name})
        value = app.flows.sessions.encode(big, time.time())
        return [value[i:i + size] for i in range(0, len(value), size)]

    alice, bob = chunks("alice"), chunks("bob")
    assert len(alice) >= 3 and len(bob) >= 3

    def header(parts: list[tuple[int, str]]) -> bytes:
        return "; ".join(f"renewal_session.{i}={v}" for i, v in parts).encode()

    whole = [(i, v) for i, v in enumerate(alice)]
    status, _, body = await call(app, [(b"cookie", header(whole))])
    assert body == b"alice"
    for bad in (
        whole[:1] + whole[2:],                                   # a chunk missing
        [(0, alice[1]), (1, alice[0]), *whole[2:]],              # out of order
        [(0, alice[0]), (1, bob[1]), *[(i, bob[i]) for i in range(2, len(bob))]],  # mixed
    ):
        status, headers, body = await call(app, [(b"cookie", header(bad))])
        assert (status, body) == (200, b"anon")
        assert any(k == b"set-cookie" and b"Max-Age=0" in v for k, v in headers)
