"""The WSGI driver: the same core as the ASGI middleware, on a sync client, for threads.

    app.wsgi_app = WSGIRenewalMiddleware(app.wsgi_app, issuer=..., ...)   # Flask
    application = WSGIRenewalMiddleware(get_wsgi_application(), ...)     # Django

The app reads the user and the access token with :func:`renewal_middleware.current_user`
and :func:`renewal_middleware.access_token` (from ``environ["renewal_middleware"]``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Iterable
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote

from .access import CONTEXT_KEY
from .config import Options, Settings
from .context import Serve
from .errors import RenewalError
from .flows import Flows, RunRefresh, Step
from .renewal import Outcome, ThreadRefreshCoordinator
from .replies import Reply
from .transport import SyncTransport

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment
    from typing_extensions import Unpack

T = TypeVar("T")


class _WSGIRequest:
    """A :class:`~renewal_middleware.requests.Request` over a WSGI environ."""

    __slots__ = ("_environ", "method", "path", "query_string")

    def __init__(self, environ: WSGIEnvironment) -> None:
        self._environ = environ
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
                 settings: Settings | None = None, **options: Unpack[Options]) -> None:
        self.app = app
        self.settings = settings if settings is not None else Settings.load(**options)
        self.clock = clock
        self.flows = Flows(self.settings, clock)
        self.transport = SyncTransport(self.settings)
        self.coordinator = ThreadRefreshCoordinator(self.flows.results, clock)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse
                 ) -> Iterable[bytes]:
        now = self.clock()
        serve = self.flows.pass_through(environ.get("PATH_INFO") or "/",
                                        environ.get("HTTP_COOKIE"), now)
        if serve is None:
            answer = self._answer(environ, now)
            if isinstance(answer, Reply):
                headers = [*answer.headers, ("content-length", str(len(answer.body)))]
                start_response(f"{answer.status} {HTTPStatus(answer.status).phrase}", headers)
                return [answer.body]
            serve = answer
        environ[CONTEXT_KEY] = serve
        if serve.set_cookies:
            start_response = _adding_cookies(start_response, serve.set_cookies)
        return self.app(environ, start_response)

    def _answer(self, environ: WSGIEnvironment, now: float) -> Serve | Reply:
        handled = self.flows.handle(_WSGIRequest(environ), now)
        if isinstance(handled, (Serve, Reply)):
            return handled
        return self._run(handled)

    def _run(self, flow: Generator[Step, Any, T]) -> T:
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
                    value = self.coordinator.single_flight(step.key, self._refresher(step))
                else:
                    value = self.transport.perform(step)
                error = None
            except RenewalError as exc:
                value, error = None, exc

    def _refresher(self, step: RunRefresh) -> Callable[[], Outcome]:
        return lambda: self._run(self.flows.refresh_session(step.session, step.now))

    def close(self) -> None:
        """Close the pooled HTTP client."""
        self.transport.close()


def _adding_cookies(start_response: StartResponse, cookies: tuple[str, ...]) -> StartResponse:
    extra = [("set-cookie", c) for c in cookies]

    def start_with_cookies(status: str, headers: list[tuple[str, str]],
                           exc_info: Any = None) -> Callable[[bytes], object]:
        return start_response(status, [*headers, *extra], exc_info)

    return start_with_cookies
