"""The middleware's core, without I/O: what to do with each request, and renewals.

The drivers (:mod:`renewal_middleware.asgi`, :mod:`renewal_middleware.wsgi`) read
the request, ask :meth:`Flows.pass_through` (the common case, a dict lookup) or
:meth:`Flows.handle`, run the flow it may return against the provider, and write
what it decides. The own routes live in :mod:`renewal_middleware.routes`.

Time is passed in. The clock is read in one case only: to start a backoff after
a provider call failed, because a timeout ends after ``now``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from .config import Settings
from .context import ANONYMOUS, Loaded, Renewal, Serve, SessionView
from .cookies import CookieWriter, SessionCookie, SignedCodec
from .csrf import SAFE_METHODS, CsrfPolicy, warn_relaxations
from .decisions import (
    Decision,
    NeedsEnd,
    NeedsRefresh,
    NeedsSilentLogin,
    RequestFlow,
    RunRefresh,
)
from .errors import ProviderUnavailable
from .grant import RefreshGrant
from .hooks import Hooks
from .lineage import Lineages, SharedFlow
from .loading import HEADER_KEY_LENGTH, SessionLoader, parse_cookies
from .logout import Logouts
from .oidc import Provider
from .renewal import (
    Backoff,
    Ended,
    Freshness,
    Outcome,
    RefreshResults,
    Renewed,
    assess,
)
from .replies import Reply, error_reply, method_not_allowed, unauthorized_reply, wants_json
from .requests import RawCookie, Request, request_is_navigation
from .response_cookies import ResponseCookies
from .routes import Routes
from .session import EXPIRY_UNKNOWN, Session
from .spa import RenewalScript, SessionEndpoint
from .stored import StoredSessions
from .stores.base import StoreUnavailable, Tombstone
from .tombstones import Tombstones
from .transaction import Transactions

logger = logging.getLogger("renewal_middleware")


class Flows:
    """Sessions, routes and renewal decisions, for both drivers."""

    def __init__(self, settings: Settings, clock: Callable[[], float],
                 hooks: Hooks | None = None) -> None:
        self.settings = settings
        self.hooks = hooks if hooks is not None else Hooks()
        self.clock = clock
        self.provider = Provider(settings)
        self.sessions = SessionLoader(settings, SessionCookie(
            settings, CookieWriter(settings), SignedCodec(settings, "renewal.session", clock)))
        self.transactions = Transactions(settings, clock)
        self.results = RefreshResults(settings.refresh_result_seconds)
        self.backoff = Backoff()
        self.tombstones = Tombstones(shared=settings.store != "memory",
                                     lifetime=settings.session_lifetime_seconds)
        self.refresh_session = RefreshGrant(self.provider, self.sessions, self.backoff, clock,
                                            self.hooks)
        self.lineages = Lineages(settings, self.sessions, self.refresh_session, clock)
        self.response_cookies = ResponseCookies(self.sessions, self.lineages, self.tombstones)
        self.csrf = CsrfPolicy(settings)
        self.stored = StoredSessions(self.sessions, self.lineages)
        self.logouts = Logouts(settings, self.provider, self.sessions, self.lineages,
                               self.learn, self.csrf, self.hooks, self.stored)
        self.routes = Routes(settings, self.provider, self.sessions, self.transactions,
                             self.backoff, self.logouts, clock)
        self.session_endpoint = SessionEndpoint(settings, self.csrf)
        self.script = RenewalScript(settings)
        self._own_paths = {settings.session_path: self._session_route,
                           settings.script_path: self._script_route}
        #: The paths the middleware answers itself (never passed through).
        self.route_paths = frozenset(settings.own_paths)
        #: What :meth:`pass_through` looks Cookie headers up in (see loading.py).
        self.header_answers = self.sessions.headers
        #: Unsafe methods skip the pass-through, to be checked for forgery.
        self.csrf_checks = settings.csrf_protection
        warn_relaxations(settings)

    def pass_through(self, path: str, cookie: RawCookie | None, now: float,
                     method: str = "GET") -> Serve | None:
        """The answer for the common case (no route, and no cookie or a Cookie header seen
        before, far from renewal), or ``None`` when :meth:`handle` must decide. ``cookie``
        is raw, as the driver has it. The ASGI driver inlines this for a GET (asgi.py).
        """
        if path in self.route_paths:
            return None
        if cookie is None:
            return ANONYMOUS
        if self.csrf_checks and method not in SAFE_METHODS:
            return None
        entry = self.header_answers.get(cookie[-HEADER_KEY_LENGTH:])
        if entry is not None and entry[2] > now and entry[0] == cookie:
            return entry[1]
        return None

    def handle(self, request: Request, now: float, raw_cookie: RawCookie | None = None
               ) -> Serve | Reply | RequestFlow:
        """What to do with ``request``: an answer, or a flow for the driver to run.

        The common case (no session, or a fresh one) is answered at once, without
        a generator; routes and renewals come back as a :data:`RequestFlow`.
        ``raw_cookie`` is what the driver gives :meth:`pass_through`, to remember.
        """
        if request.path in self.route_paths:
            own = self._own_paths.get(request.path)
            return own(request, now) if own else self.routes.answer(request, now)
        cookie = request.header("cookie")
        if cookie is None:
            return ANONYMOUS
        loaded = self._load(cookie, now)
        if loaded.handle is not None:
            return self._serve_stored(request, loaded, raw_cookie, now)
        return self._serve(request, loaded, raw_cookie, now)

    def _serve_stored(self, request: Request, loaded: Loaded, raw_cookie: RawCookie | None,
                      now: float) -> RequestFlow:
        """:meth:`_serve` for a session kept in the store, read first."""
        try:
            loaded = self._unless_ended((yield from self.stored.resolve(loaded)))
        except StoreUnavailable as exc:
            logger.warning("session %s not read: %s", loaded.handle and
                           loaded.handle.session_id, exc.message)
            return error_reply(exc, wants_json(request.header("accept")), home=self.settings.home)
        served = self._serve(request, loaded, raw_cookie, now)
        return served if isinstance(served, (Serve, Reply)) else (yield from served)

    def _serve(self, request: Request, loaded: Loaded, raw_cookie: RawCookie | None,
               now: float) -> Serve | Reply | RequestFlow:
        cookie = request.header("cookie")
        assert cookie is not None
        if loaded.view is not None:
            if self.csrf.refuses(request):
                return self.csrf.refusal(request)
            self.sessions.remember_header(cookie if raw_cookie is None else raw_cookie,
                                          loaded.view)
        decision = self.decide(loaded, now, lambda: request_is_navigation(request),
                               request.target)
        if isinstance(decision, (Serve, Reply)):
            return decision
        return self._renew(request, loaded, decision, now)

    def _session_route(self, request: Request, now: float) -> Reply | RequestFlow:
        """``GET /session``: what a page's script may know; renews like any request."""
        if request.method not in ("GET", "HEAD"):
            return method_not_allowed({"GET", "HEAD"}, True)
        return self._session_answer(request, now)

    def _session_answer(self, request: Request, now: float) -> RequestFlow:
        try:
            loaded = self._unless_ended((yield from self.stored.resolve(
                self._load(request.header("cookie"), now))))
        except StoreUnavailable as exc:
            return error_reply(exc, as_json=True)
        decision = self.decide(loaded, now, lambda: False, request.target)
        if isinstance(decision, (NeedsRefresh, NeedsSilentLogin, NeedsEnd)):
            decision = yield from self._renew(request, loaded, decision, now)
        if isinstance(decision, Reply):  # expired and not renewable now
            decision = Serve(None)
        cookies = yield from self.response_cookies.of(decision, now)
        expired = (loaded.view.session if loaded.view is not None and decision.view is None
                   and not cookies else None)
        return self.session_endpoint.reply(decision, cookies, expired, now)

    def _script_route(self, request: Request, now: float) -> Reply:
        if request.method not in ("GET", "HEAD"):
            return method_not_allowed({"GET", "HEAD"}, wants_json(request.header("accept")),
                                      self.settings.home)
        return self.script.reply(request.query_string, request.header("if-none-match"))

    def _load(self, cookie: str | None, now: float) -> Loaded:
        return self._unless_ended(self.sessions.load(cookie, now))

    def _unless_ended(self, loaded: Loaded) -> Loaded:
        if loaded.view is not None and self.tombstones.ends(loaded.view.session):
            # Ended elsewhere: clear it, and delete its tokens and grant (see decide()).
            return Loaded(None, loaded.present, invalid=True, ended=loaded.view.session)
        return loaded

    def learn(self, tombstones: list[Tombstone], synced_at: float | None = None) -> None:
        """Sessions that ended (here or, through the store, elsewhere): stop serving them."""
        if self.tombstones.learn(tombstones, synced_at):
            self.sessions.forget(self.tombstones.ends)

    def websocket(self, cookie_header: str | None, now: float) -> SharedFlow[Serve]:
        """A handshake cannot carry Set-Cookie: attach a valid session, never renew."""
        try:
            loaded = self._unless_ended((yield from self.stored.resolve(
                self._load(cookie_header, now))))
        except StoreUnavailable:
            return ANONYMOUS
        view = loaded.view
        if view is None or self.sessions.lifetimes.expired(view, now):
            return ANONYMOUS
        expires_at = view.session.expires_at
        return ANONYMOUS if expires_at != EXPIRY_UNKNOWN and expires_at <= now else view.serve

    def decide(self, loaded: Loaded, now: float,
               navigation: Callable[[], bool], return_to: Callable[[], str]) -> Decision:
        """What to do with an ordinary request of the app."""
        view = loaded.view
        if view is None:
            if loaded.ended is not None:
                return NeedsEnd(loaded.ended, "ended", loaded.present)
            if not loaded.invalid:
                return ANONYMOUS
            return Serve(None, tuple(self.sessions.cookie.clear_headers(loaded.present)))
        expired = self.sessions.lifetimes.expired(view, now)
        if expired is not None:
            return NeedsEnd(view.session, expired, loaded.present)
        freshness = assess(view.session, now, self.settings.grace_seconds)
        if freshness is Freshness.FRESH:
            if self.sessions.lifetimes.records_activity(view, now):
                return self._record_activity(view.session, loaded.present, now)
            return view.serve
        session = view.session
        key = session.refresh_key
        if key is not None:
            cached = self.results.get(key, now)
            if cached is None and self.backoff.retry_at(session.id, now) is not None:
                return self._unavailable(loaded, freshness, navigation())
            return NeedsRefresh(key, freshness)
        # No refresh token: only a page load can renew, through prompt=none.
        if navigation():
            if self.backoff.retry_at(session.id, now) is None:
                return NeedsSilentLogin(return_to(), freshness)
            return self._unavailable(loaded, freshness, True)
        return self._unavailable(loaded, freshness, False)

    def _record_activity(self, session: Session, present: tuple[str, ...], now: float
                         ) -> Serve:
        """The same session in a newly signed cookie: its idle time starts again. Set at
        response start like a renewal's, so never over a newer generation."""
        value = self.sessions.encode(session, now)
        view = self.sessions.view_of(value, session, now)
        return Serve(view, tuple(self.sessions.cookie.set_headers(value, present)),
                     Renewal(session, present))

    def _unavailable(self, loaded: Loaded, freshness: Freshness, navigation: bool
                     ) -> Serve | Reply:
        if freshness is Freshness.RENEW:
            return Serve(loaded.view)  # still valid: serve it and try again later
        if navigation:
            return ANONYMOUS  # keep the cookie: renewal may work once the provider is back
        return unauthorized_reply("the access token has expired")

    def _renew(self, request: Request, loaded: Loaded,
               decision: NeedsRefresh | NeedsSilentLogin | NeedsEnd, now: float) -> RequestFlow:
        if isinstance(decision, NeedsEnd):
            yield from self.logouts.expire(decision.session, decision.reason, now)
            return Serve(None, tuple(self.sessions.cookie.clear_headers(decision.present)))
        assert loaded.view is not None
        if isinstance(decision, NeedsRefresh):
            outcome = yield RunRefresh(decision.key, loaded.view.session, now)
            return self.after_refresh(loaded, outcome, decision.freshness,
                                      lambda: request_is_navigation(request), now)
        try:
            return (yield from self.routes.silent_redirect(
                decision.return_to, now, cookies=parse_cookies(request.header("cookie"))))
        except ProviderUnavailable as exc:
            # Like a failed refresh: serve what is still valid, and don't retry at once.
            failed_at = self.clock()
            until = self.backoff.failed(loaded.view.session.id, failed_at, exc.retry_after)
            logger.warning("silent renewal not started, retrying after %.1fs: %s",
                           until - failed_at, exc.message)
            return self._unavailable(loaded, decision.freshness, True)

    def after_refresh(self, loaded: Loaded, outcome: Outcome, freshness: Freshness,
                      navigation: Callable[[], bool], now: float) -> Serve | Reply:
        """What a request that waited for a refresh is served with."""
        if isinstance(outcome, Renewed):
            view: SessionView = self.sessions.view_of(outcome.cookie_value, outcome.session, now)
            headers = self.sessions.cookie.set_headers(outcome.cookie_value, loaded.present)
            return Serve(view, tuple(headers), Renewal(outcome.session, loaded.present))
        if isinstance(outcome, Ended):
            return Serve(None, tuple(self.sessions.cookie.clear_headers(loaded.present)))
        return self._unavailable(loaded, freshness, navigation())

    def reads_body(self, path: str, method: str) -> bool:
        """Whether a driver must read the request's body before :meth:`handle` (only the
        back-channel logout's form)."""
        return method == "POST" and path == self.settings.backchannel_logout_path
