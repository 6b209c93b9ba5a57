"""The WSGI driver: the same core as the ASGI middleware, on a sync client, for threads.

    app.wsgi_app = WSGIRenewalMiddleware(app.wsgi_app, issuer=..., ...)   # Flask
    application = WSGIRenewalMiddleware(get_wsgi_application(), ...)     # Django

The app reads the user and the access token with :func:`renewal_middleware.current_user`
and :func:`renewal_middleware.access_token` (from ``environ["renewal_middleware"]``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Generator, Iterable
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote

from .access import CONTEXT_KEY
from .config import Settings
from .context import Serve
from .decisions import RunRefresh, Step
from .errors import RenewalError
from .flows import Flows
from .hooks import CallHook, Hooks, call_sync
from .oidc import GetJSON, RevokeRequest, TokenRequest, UserInfoRequest
from .options import Options
from .renewal import Outcome, ThreadRefreshCoordinator
from .replies import Reply
from .requests import MAX_BODY
from .stores import open_sync_store
from .stores.base import Lock
from .stores.effects import HeldLocks, perform
from .transport import SyncTransport

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment
    from typing_extensions import Unpack

T = TypeVar("T")
logger = logging.getLogger("renewal_middleware")


class _WSGIRequest:
    """A :class:`~renewal_middleware.requests.Request` over a WSGI environ."""

    __slots__ = ("_environ", "body", "method", "path", "query_string")

    def __init__(self, environ: WSGIEnvironment, body: bytes = b"") -> None:
        self._environ = environ
        self.body = body
        self.method: str = environ.get("REQUEST_METHOD", "GET")
        self.path: str = environ.get("PATH_INFO") or "/"
        self.query_string: str = environ.get("QUERY_STRING", "")

    def header(self, name: str) -> str | None:
        value = self._environ.get("HTTP_" + name.upper().replace("-", "_"))
        return None if value is None else str(value)

    def target(self) -> str:
        # PEP 3333: PATH_INFO is the decoded path as latin-1; quote it back for a Location.
        raw = (self._environ.get("SCRIPT_NAME", "") + self.path).encode("latin-1")
        path = quote(raw, safe="/;=,:@!$&'()*+~-._")
        return path + ("?" + self.query_string if self.query_string else "")


class WSGIRenewalMiddleware:
    """:class:`~renewal_middleware.RenewalMiddleware` for WSGI apps (Flask, Django, ...).

    Safe under threaded servers (gunicorn ``--threads``, waitress): concurrent
    requests of one session make one refresh. Call :meth:`close` at shutdown.
    """

    def __init__(self, app: WSGIApplication, *, clock: Callable[[], float] = time.time,
                 settings: Settings | None = None, hooks: Hooks | None = None,
                 **options: Unpack[Options]) -> None:
        self.app = app
        self.settings = settings if settings is not None else Settings.load(**options)
        self.clock = clock
        self.flows = Flows(self.settings, clock, hooks)
        self.transport = SyncTransport(self.settings)
        self.coordinator = ThreadRefreshCoordinator(self.flows.results, clock)
        self.store = open_sync_store(self.settings, clock)
        self._tombstones = self.flows.tombstones

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse
                 ) -> Iterable[bytes]:
        now = self.clock()
        if now >= self._tombstones.sync_at:
            self._sync_tombstones(now)
        serve = self.flows.pass_through(environ.get("PATH_INFO") or "/",
                                        environ.get("HTTP_COOKIE"), now,
                                        environ.get("REQUEST_METHOD", "GET"))
        if serve is None:
            answer = self._answer(environ, now)
            if isinstance(answer, Reply):
                headers = [*answer.headers, ("content-length", str(len(answer.body)))]
                start_response(f"{answer.status} {HTTPStatus(answer.status).phrase}", headers)
                return [answer.body]
            serve = answer
        environ[CONTEXT_KEY] = serve
        if serve.set_cookies:
            start_response = self._adding_cookies(start_response, serve)
        return self.app(environ, start_response)

    def _answer(self, environ: WSGIEnvironment, now: float) -> Serve | Reply:
        body = b""
        if self.flows.reads_body(environ.get("PATH_INFO") or "/",
                                 environ.get("REQUEST_METHOD", "GET")):
            body = _read_body(environ)
        handled = self.flows.handle(_WSGIRequest(environ, body), now)
        if isinstance(handled, (Serve, Reply)):
            return handled
        return self._run(handled)

    def _run(self, flow: Generator[Step, Any, T]) -> T:
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
                    value, error = self._perform(step), None
                except RenewalError as exc:
                    value, error = None, exc
                held.note(step, value)
        finally:
            for lock in held.locks:
                self._release(lock)

    def _perform(self, step: Step) -> Any:
        if isinstance(step, CallHook):
            return call_sync(step)
        if isinstance(step, RunRefresh):
            return self.coordinator.single_flight(step.key, self._refresher(step))
        if isinstance(step, (GetJSON, TokenRequest, RevokeRequest, UserInfoRequest)):
            return self.transport.perform(step)
        return perform(self.store, step)

    def _release(self, lock: Lock) -> None:
        try:
            self.store.release(lock)
        except Exception:  # it frees itself after its TTL
            logger.warning("a renewal lock was left to expire", exc_info=True)

    def _refresher(self, step: RunRefresh) -> Callable[[], Outcome]:
        return lambda: self._run(self.flows.lineages.renew(step.session, step.now))

    def _sync_tombstones(self, now: float) -> None:
        """Learn the sessions other processes ended (at most once a second)."""
        since = self._tombstones.due(now)
        try:
            self.flows.learn(self.store.tombstones(since), now)
        except Exception as exc:
            self._tombstones.sync_failed(exc)

    def _adding_cookies(self, start_response: StartResponse, serve: Serve) -> StartResponse:
        """``start_response`` with the serve's Set-Cookie added, decided as it is called."""

        def start_with_cookies(status: str, headers: list[tuple[str, str]],
                               exc_info: Any = None) -> Callable[[bytes], object]:
            cookies = serve.set_cookies
            if serve.renewal is not None:
                cookies = self._run(self.flows.response_cookies.of(serve, self.clock()))
            extra = [("set-cookie", c) for c in cookies]
            return start_response(status, [*headers, *extra], exc_info)

        return start_with_cookies

    def close(self) -> None:
        """Close the pooled HTTP client and the store."""
        self.transport.close()
        self.store.close()


def _read_body(environ: WSGIEnvironment) -> bytes:
    """The request body, up to :data:`MAX_BODY` bytes."""
    try:
        length = min(int(environ.get("CONTENT_LENGTH") or 0), MAX_BODY)
    except ValueError:
        return b""
    stream = environ.get("wsgi.input")
    return bytes(stream.read(length)) if stream is not None and length > 0 else b""
