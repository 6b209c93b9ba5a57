"""The ASGI middleware: reads requests, runs the core's flows, writes responses."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Generator
from typing import TYPE_CHECKING, Any, TypeVar

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .access import CONTEXT_KEY
from .asgi_messages import ASGIRequest, raw_cookie, read_body, send_reply
from .config import Settings
from .context import ANONYMOUS, Serve
from .decisions import RunRefresh, Step
from .errors import RenewalError
from .flows import Flows
from .hooks import CallHook, Hooks, call_async
from .loading import HEADER_KEY_LENGTH
from .oidc import GetJSON, RevokeRequest, TokenRequest, UserInfoRequest
from .options import Options
from .renewal import AsyncRefreshCoordinator, Outcome
from .replies import Reply
from .requests import app_path
from .stores import open_async_store
from .stores.base import Lock
from .stores.effects import HeldLocks, perform_async
from .transport import AsyncTransport

logger = logging.getLogger("renewal_middleware")
if TYPE_CHECKING:
    from typing_extensions import Unpack

T = TypeVar("T")


class RenewalMiddleware:
    """Logs users in with OpenID Connect and keeps their access token fresh.

    ``scope["user"]`` and ``scope["auth"]`` are set on every request
    (Starlette's ``request.user``/``request.auth``); own routes are
    ``/login``, ``/callback``, ``/silent`` and ``/logout`` (configurable).
    Settings are keyword arguments or ``RENEWAL_*`` variables, see
    :class:`~renewal_middleware.config.Settings`.
    """

    def __init__(self, app: ASGIApp, *, clock: Callable[[], float] = time.time,
                 settings: Settings | None = None, hooks: Hooks | None = None,
                 **options: Unpack[Options]) -> None:
        self.app = app
        self.settings = settings if settings is not None else Settings.load(**options)
        self.clock = clock
        self.flows = Flows(self.settings, clock, hooks)
        self.transport = AsyncTransport(self.settings)
        self.coordinator = AsyncRefreshCoordinator(self.flows.results, clock)
        self.store = open_async_store(self.settings, clock)
        self._tombstones = self.flows.tombstones
        self._route_paths = self.flows.route_paths
        self._header_answers = self.flows.header_answers
        self._csrf = self.flows.csrf_checks
        self._header_key = slice(-HEADER_KEY_LENGTH, None)
        self._sync_task: asyncio.Future[None] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._not_http(scope, receive, send)
            return
        # Runs on every request of the app: Flows.pass_through inlined for a GET (a call
        # costs as much as its checks), test_asgi_fast_path holds the two to one answer.
        # Everything else (other methods, a root_path, a renewal due) asks Flows itself.
        clock = self.clock  # a local: calling an attribute directly is not specialised
        now = clock()
        if now >= self._tombstones.sync_at:
            self._start_sync(now)
        # Browsers send the Cookie header last or nearly: look from the end. A request
        # with several Cookie headers is matched by its last, and answered only when that
        # alone is a header seen before; else the slow path joins them.
        cookie = None
        for key, value in reversed(scope["headers"]):
            if key == b"cookie":
                cookie = value
                break
        if cookie is not None:
            entry = self._header_answers.get(cookie[self._header_key])
            if entry is not None:
                header, serve, until = entry
                if (until > now and header == cookie and scope["path"] not in self._route_paths
                        and (scope["method"] == "GET" or not self._csrf)
                        and not scope.get("root_path")):
                    scope["user"] = serve.user
                    scope["auth"] = serve.auth
                    try:
                        scope["state"][CONTEXT_KEY] = serve
                    except (KeyError, TypeError):
                        scope[CONTEXT_KEY] = serve
                    app = self.app
                    await app(scope, receive, send)
                    return
        elif scope["path"] not in self._route_paths and not scope.get("root_path"):
            await self._serve(ANONYMOUS, scope, receive, send)
            return
        await self._handle_http(scope, receive, send, now)

    async def _handle_http(self, scope: Scope, receive: Receive, send: Send, now: float
                           ) -> None:
        cookie = raw_cookie(scope["headers"])
        path = app_path(scope) if scope.get("root_path") else scope["path"]
        serve = self.flows.pass_through(path, cookie, now, scope["method"])
        if serve is None:
            answer = await self._answer(scope, receive, cookie, now)
            if isinstance(answer, Reply):
                await send_reply(send, answer)
                return
            serve = answer
        await self._serve(serve, scope, receive, send)

    async def _serve(self, serve: Serve, scope: Scope, receive: Receive, send: Send) -> None:
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
            send = self._adding_cookies(send, serve)
        await self.app(scope, receive, send)

    async def _not_http(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "websocket":
            cookie = raw_cookie(scope["headers"])
            serve = await self._run(self.flows.websocket(
                None if cookie is None else cookie.decode("latin-1"), self.clock()))
            await self._serve(serve, scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _answer(self, scope: Scope, receive: Receive, cookie: bytes | None, now: float
                      ) -> Serve | Reply:
        body = b""
        if self.flows.reads_body(scope["path"], scope["method"]):
            body = await read_body(receive)
        handled = self.flows.handle(ASGIRequest(scope, body), now, cookie)
        if isinstance(handled, (Serve, Reply)):
            return handled
        return await self._run(handled)

    async def _run(self, flow: Generator[Step, Any, T]) -> T:
        """Drive a flow: provider calls on the pooled client, store calls on the store,
        refreshes through single-flight. A lock the flow did not release is released."""
        value: Any = None
        error: RenewalError | None = None
        held = HeldLocks()
        try:
            while True:
                try:
                    step = flow.throw(error) if error is not None else flow.send(value)
                except StopIteration as stop:
                    result: T = stop.value
                    return result
                try:
                    value, error = await self._perform(step), None
                except RenewalError as exc:
                    value, error = None, exc
                held.note(step, value)
        finally:
            for lock in held.locks:
                await self._release(lock)

    async def _perform(self, step: Step) -> Any:
        if isinstance(step, CallHook):
            return await call_async(step)
        if isinstance(step, RunRefresh):
            return await self.coordinator.single_flight(step.key, self._refresher(step))
        if isinstance(step, (GetJSON, TokenRequest, RevokeRequest, UserInfoRequest)):
            return await self.transport.perform(step)
        return await perform_async(self.store, step)

    async def _release(self, lock: Lock) -> None:
        try:
            await self.store.release(lock)
        except Exception:  # it frees itself after its TTL
            logger.warning("a renewal lock was left to expire", exc_info=True)

    def _refresher(self, step: RunRefresh) -> Callable[[], Awaitable[Outcome]]:
        return lambda: self._run(self.flows.lineages.renew(step.session, step.now))

    def _start_sync(self, now: float) -> None:
        """Learn the sessions other processes ended (at most once a second), in the
        background: no request waits for the store."""
        since = self._tombstones.due(now)

        async def sync() -> None:
            try:
                self.flows.learn(await self.store.tombstones(since), now)
            except Exception as exc:
                self._tombstones.sync_failed(exc)

        self._sync_task = asyncio.ensure_future(sync())

    def _adding_cookies(self, send: Send, serve: Serve) -> Send:
        """``send`` with the serve's Set-Cookie added, decided when the response starts."""

        async def send_with_cookies(message: Message) -> None:
            if message["type"] == "http.response.start":
                cookies = serve.set_cookies
                if serve.renewal is not None:
                    cookies = await self._run(self.flows.response_cookies.of(serve, self.clock()))
                encoded = [(b"set-cookie", c.encode("latin-1")) for c in cookies]
                message = {**message, "headers": [*message.get("headers", []), *encoded]}
            await send(message)

        return send_with_cookies

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
        """Close the pooled HTTP client and the store (done at lifespan shutdown)."""
        await self.transport.aclose()
        await self.store.close()
