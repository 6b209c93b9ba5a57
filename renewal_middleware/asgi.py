"""The ASGI middleware: reads requests, runs the flows, writes responses. No decisions here."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl, quote

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .config import Settings
from .errors import RenewalError
from .flows import (
    Flows,
    Loaded,
    NeedsRefresh,
    NeedsSilentLogin,
    Reply,
    Serve,
    error_reply,
    is_navigation,
    wants_json,
)
from .oidc import Flow
from .renewal import AsyncRefreshCoordinator
from .session import Session
from .transport import AsyncTransport

logger = logging.getLogger("renewal_middleware")

Route = Callable[[Scope, Receive, Send], Awaitable[None]]


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


def _query(scope: Scope) -> dict[str, str]:
    return dict(parse_qsl(scope.get("query_string", b"").decode("latin-1"),
                          keep_blank_values=True))


class RenewalMiddleware:
    """Logs users in with OpenID Connect and keeps their access token fresh.

    ``scope["user"]`` and ``scope["auth"]`` are set on every request
    (Starlette's ``request.user``/``request.auth``); own routes are
    ``/login``, ``/callback``, ``/silent`` and ``/logout`` (configurable).
    Settings are keyword arguments or ``RENEWAL_*`` variables, see
    :class:`~renewal_middleware.config.Settings`.
    """

    def __init__(self, app: ASGIApp, *, clock: Callable[[], float] = time.time,
                 settings: Settings | None = None, **options: Any) -> None:
        self.app = app
        self.settings = settings if settings is not None else Settings.load(**options)
        self.clock = clock
        self.flows = Flows(self.settings, clock)
        self.transport = AsyncTransport(self.settings)
        self.coordinator = AsyncRefreshCoordinator(self.flows.results, clock)
        s = self.settings
        self._routes: dict[str, tuple[frozenset[str], Route]] = {
            s.login_path: (frozenset({"GET", "HEAD"}), self._login),
            s.callback_path: (frozenset({"GET"}), self._callback),
            s.silent_path: (frozenset({"GET"}), self._silent),
            s.logout_path: (frozenset({"GET", "POST"}), self._logout),
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                await self.app(scope, receive, self._lifespan_send(send))
            elif scope["type"] == "websocket":
                await self._websocket(scope, receive, send)
            else:
                await self.app(scope, receive, send)
            return
        route = self._routes.get(scope["path"])
        if route is not None:
            methods, handler = route
            if scope["method"] not in methods:
                allow = ", ".join(sorted(methods))
                await _send_reply(send, Reply(405, [("allow", allow)], b"Method Not Allowed"))
                return
            await handler(scope, receive, send)
            return

        now = self.clock()
        loaded = self.flows.load(_header(scope, b"cookie"), now)
        navigation = lambda: is_navigation(  # noqa: E731
            scope["method"], _header(scope, b"sec-fetch-mode"), _header(scope, b"accept"),
            _header(scope, b"x-requested-with"))
        decision = self.flows.decide(loaded, now, navigation, lambda: _original_url(scope))
        if isinstance(decision, NeedsRefresh):
            outcome = await self.coordinator.refresh(
                decision.key, lambda: self.transport.run(self.flows.refresh(_session(loaded), now)))
            decision = self.flows.after_refresh(loaded, outcome, decision.freshness, navigation)
        elif isinstance(decision, NeedsSilentLogin):
            decision = await self._reply(self.flows.silent_redirect(decision.return_to, now),
                                         scope)
        if isinstance(decision, Reply):
            await _send_reply(send, decision)
            return
        assert isinstance(decision, Serve)
        scope["user"], scope["auth"] = decision.user, decision.auth
        if decision.set_cookies:
            send = _adding_cookies(send, decision.set_cookies)
        await self.app(scope, receive, send)

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        # A handshake cannot carry Set-Cookie: attach a valid session, never renew here.
        loaded = self.flows.load(_header(scope, b"cookie"), self.clock())
        view = loaded.view
        if view is not None and view.session.expires_at and view.session.expires_at <= self.clock():
            view = None
        serve = Serve(view)
        scope["user"], scope["auth"] = serve.user, serve.auth
        await self.app(scope, receive, send)

    async def _reply(self, flow: Flow[Reply], scope: Scope) -> Reply:
        try:
            return await self.transport.run(flow)
        except RenewalError as exc:
            logger.warning("%s %s failed: %s", scope["method"], scope["path"], exc.message)
            return error_reply(exc, wants_json(_header(scope, b"accept")))

    async def _login(self, scope: Scope, receive: Receive, send: Send) -> None:
        await _send_reply(send, await self._reply(self.flows.login(_query(scope), self.clock()),
                                                  scope))

    async def _callback(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._finish(scope, send, "login")

    async def _silent(self, scope: Scope, receive: Receive, send: Send) -> None:
        query = _query(scope)
        if {"state", "code", "error"}.isdisjoint(query):
            reply = await self._reply(self.flows.silent_start(query, self.clock()), scope)
            await _send_reply(send, reply)
        else:
            await self._finish(scope, send, "silent")

    async def _finish(self, scope: Scope, send: Send, kind: str) -> None:
        flow = self.flows.callback(kind, _query(scope), _header(scope, b"cookie"),
                                   _header(scope, b"accept"), self.clock())
        await _send_reply(send, await self._reply(flow, scope))

    async def _logout(self, scope: Scope, receive: Receive, send: Send) -> None:
        flow = self.flows.logout(_header(scope, b"cookie"), self.clock())
        await _send_reply(send, await self._reply(flow, scope))

    def _lifespan_send(self, send: Send) -> Send:
        async def lifespan_send(message: Message) -> None:
            if message["type"] == "lifespan.shutdown.complete":
                await self.aclose()
            await send(message)

        return lifespan_send

    async def aclose(self) -> None:
        """Close the pooled HTTP client (done at lifespan shutdown)."""
        await self.transport.aclose()


def _session(loaded: Loaded) -> Session:
    assert loaded.view is not None
    return loaded.view.session


def _original_url(scope: Scope) -> str:
    raw = scope.get("raw_path")
    path = raw.decode("latin-1") if raw else quote(scope["path"])
    query = scope.get("query_string", b"")
    return path + ("?" + query.decode("latin-1") if query else "")


def _adding_cookies(send: Send, cookies: tuple[str, ...]) -> Send:
    encoded = [(b"set-cookie", c.encode("latin-1")) for c in cookies]

    async def send_with_cookies(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", []), *encoded]}
        await send(message)

    return send_with_cookies


async def _send_reply(send: Send, reply: Reply) -> None:
    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in reply.headers]
    headers.append((b"content-length", str(len(reply.body)).encode()))
    await send({"type": "http.response.start", "status": reply.status, "headers": headers})
    await send({"type": "http.response.body", "body": reply.body})
