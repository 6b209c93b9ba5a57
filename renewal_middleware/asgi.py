"""The ASGI middleware: reads requests, runs the core's flows, writes responses."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Generator
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .access import CONTEXT_KEY
from .config import Options, Settings
from .context import Serve
from .errors import RenewalError
from .flows import Flows, RunRefresh, Step
from .renewal import AsyncRefreshCoordinator, Outcome
from .replies import Reply
from .transport import AsyncTransport

if TYPE_CHECKING:
    from typing_extensions import Unpack

T = TypeVar("T")


def _raw_cookie(headers: list[tuple[bytes, bytes]]) -> bytes | None:
    """The Cookie header; HTTP/2 may split it in several, which are joined (RFC 9113)."""
    found: bytes | None = None
    for key, value in headers:
        if key == b"cookie":
            found = value if found is None else found + b"; " + value
    return found


class _ASGIRequest:
    """A :class:`~renewal_middleware.requests.Request` over an ASGI scope."""

    __slots__ = ("_scope", "method", "path", "query_string")

    def __init__(self, scope: Scope) -> None:
        self._scope = scope
        self.method: str = scope["method"]
        self.path: str = scope["path"]
        self.query_string: str = scope.get("query_string", b"").decode("latin-1")

    def header(self, name: str) -> str | None:
        if name == "cookie":
            raw = _raw_cookie(self._scope["headers"])
            return None if raw is None else raw.decode("latin-1")
        key = name.encode("latin-1")
        for header, value in self._scope["headers"]:
            if header == key:
                return str(value.decode("latin-1"))
        return None

    def target(self) -> str:
        raw = self._scope.get("raw_path")
        path = raw.decode("latin-1") if raw else quote(self.path)
        return path + ("?" + self.query_string if self.query_string else "")


class RenewalMiddleware:
    """Logs users in with OpenID Connect and keeps their access token fresh.

    ``scope["user"]`` and ``scope["auth"]`` are set on every request
    (Starlette's ``request.user``/``request.auth``); own routes are
    ``/login``, ``/callback``, ``/silent`` and ``/logout`` (configurable).
    Settings are keyword arguments or ``RENEWAL_*`` variables, see
    :class:`~renewal_middleware.config.Settings`.
    """

    def __init__(self, app: ASGIApp, *, clock: Callable[[], float] = time.time,
                 settings: Settings | None = None, **options: Unpack[Options]) -> None:
        self.app = app
        self.settings = settings if settings is not None else Settings.load(**options)
        self.clock = clock
        self.flows = Flows(self.settings, clock)
        self.transport = AsyncTransport(self.settings)
        self.coordinator = AsyncRefreshCoordinator(self.flows.results, clock)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            # Runs on every request of the app: one dict lookup in the core.
            now = self.clock()
            cookie = _raw_cookie(scope["headers"])
            serve = self.flows.pass_through(scope["path"], cookie, now)
            if serve is None:
                answer = await self._answer(scope, cookie, now)
                if isinstance(answer, Reply):
                    await _send_reply(send, answer)
                    return
                serve = answer
        elif kind == "websocket":
            cookie = _raw_cookie(scope["headers"])
            serve = self.flows.websocket(None if cookie is None else cookie.decode("latin-1"),
                                         self.clock())
        elif kind == "lifespan":
            await self._lifespan(scope, receive, send)
            return
        else:
            await self.app(scope, receive, send)
            return
        # Starlette's two keys; our context (see access.py) where an inner auth middleware
        # does not overwrite it, and without growing the scope Starlette then extends.
        scope["user"] = serve.user
        scope["auth"] = serve.auth
        state = scope.get("state")
        if type(state) is dict:
            state[CONTEXT_KEY] = serve
        else:
            scope[CONTEXT_KEY] = serve
        if serve.set_cookies:
            send = _adding_cookies(send, serve.set_cookies)
        await self.app(scope, receive, send)

    async def _answer(self, scope: Scope, cookie: bytes | None, now: float) -> Serve | Reply:
        handled = self.flows.handle(_ASGIRequest(scope), now, cookie)
        if isinstance(handled, (Serve, Reply)):
            return handled
        return await self._run(handled)

    async def _run(self, flow: Generator[Step, Any, T]) -> T:
        """Drive a flow: provider calls on the pooled client, refreshes through single-flight."""
        value: Any = None
        error: RenewalError | None = None
        while True:
            try:
                step = flow.throw(error) if error is not None else flow.send(value)
            except StopIteration as stop:
                result: T = stop.value
                return result
            try:
                if isinstance(step, RunRefresh):
                    value = await self.coordinator.single_flight(step.key, self._refresher(step))
                else:
                    value = await self.transport.perform(step)
                error = None
            except RenewalError as exc:
                value, error = None, exc

    def _refresher(self, step: RunRefresh) -> Callable[[], Awaitable[Outcome]]:
        return lambda: self._run(self.flows.refresh_session(step.session, step.now))

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass lifespan to the app, closing the client at shutdown; speak it alone for apps
        that refuse it (Django's ASGI handler raises), so the client is still closed."""
        sent = False
        startup_received = False

        async def lifespan_receive() -> Message:
            nonlocal startup_received
            message = await receive()
            startup_received = startup_received or message["type"] == "lifespan.startup"
            return message

        async def lifespan_send(message: Message) -> None:
            nonlocal sent
            sent = True
            if message["type"] == "lifespan.shutdown.complete":
                await self.aclose()
            await send(message)

        try:
            await self.app(scope, lifespan_receive, lifespan_send)
            return
        except Exception:
            if sent:
                raise
        # The app does not do lifespan: answer it for the middleware's own sake.
        while True:
            message = await receive() if not startup_received else {"type": "lifespan.startup"}
            startup_received = False
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def aclose(self) -> None:
        """Close the pooled HTTP client (done at lifespan shutdown)."""
        await self.transport.aclose()


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
