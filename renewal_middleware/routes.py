"""The middleware's own routes: ``/login``, ``/callback``, ``/silent``, and the logouts.

Each route is a flow (a generator of provider effects, see :mod:`renewal_middleware.oidc`)
that ends in a :class:`~renewal_middleware.replies.Reply`. Time is passed in; the clock
is read only to start a backoff after a provider call failed, since a timeout ends
after ``now``.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping
from typing import Any

from .authorization import SILENT_LOGIN_ERRORS, authorization_code, authorization_url, redirect_uri
from .config import Settings
from .context import Loaded
from .errors import AuthenticationError, ProviderUnavailable, RenewalError, TokenRequestRejected
from .hooks import RenewalEvent, RenewalFailureEvent, admit, notify
from .lineage import SharedFlow
from .loading import SessionLoader, parse_cookies
from .login_parameters import LoginParameters
from .logout import Logouts
from .oidc import Flow, Provider
from .pending import PendingLogins
from .renewal import Backoff
from .replies import Reply, error_reply, method_not_allowed, redirect, silent_page, wants_json
from .requests import Request, parse_query, safe_return_to
from .session import Session
from .stores.base import StoreUnavailable
from .transaction import Kind, LoginTransaction, Mode, Transactions

logger = logging.getLogger("renewal_middleware")

Handler = Callable[[Request, float], SharedFlow[Reply]]


@dataclasses.dataclass(frozen=True)
class _Callback:
    """A callback whose transaction checked out: what its answer needs, success or not."""

    tx: LoginTransaction
    loaded: Loaded
    #: Set-Cookie values that end the transaction (and abandoned ones).
    done: tuple[str, ...]
    as_json: bool

    @property
    def iframe(self) -> bool:
        return self.tx.kind == "silent" and self.tx.mode == "iframe"


class Routes:
    """Answers the middleware's own paths."""

    def __init__(self, settings: Settings, provider: Provider, sessions: SessionLoader,
                 transactions: Transactions, backoff: Backoff, logouts: Logouts,
                 clock: Callable[[], float]) -> None:
        self.settings = settings
        self.hooks = logouts.hooks
        self.stored = logouts.stored
        self.provider = provider
        self.sessions = sessions
        self.transactions = transactions
        self.pending = PendingLogins(settings, transactions)
        self.backoff = backoff
        self.logouts = logouts
        self.clock = clock
        self._table: dict[str, tuple[frozenset[str], Handler]] = {
            settings.login_path: (frozenset({"GET", "HEAD"}), self._login_route),
            settings.callback_path: (frozenset({"GET"}), self._callback_route),
            settings.silent_path: (frozenset({"GET"}), self._silent_route),
            settings.logout_path: (frozenset({"GET", "POST"}), self._logout_route),
            settings.backchannel_logout_path: (frozenset({"POST"}), self._backchannel_route),
        }
        #: Every path answered here (and never passed to the app).
        self.paths = frozenset(self._table)

    def answer(self, request: Request, now: float) -> Reply | SharedFlow[Reply]:
        """The answer (or the flow that makes it) for a request to one of :attr:`paths`."""
        methods, handler = self._table[request.path]
        if request.method not in methods:
            return method_not_allowed(methods, wants_json(request.header("accept")),
                                      self.settings.home)
        return self._guarded(request, handler(request, now))

    def _guarded(self, request: Request, flow: SharedFlow[Reply]) -> SharedFlow[Reply]:
        try:
            return (yield from flow)
        except RenewalError as exc:
            logger.warning("%s %s failed: %s", request.method, request.path, exc.message)
            return error_reply(exc, wants_json(request.header("accept")), home=self.settings.home)

    def _login_route(self, request: Request, now: float) -> Flow[Reply]:
        return self.login(parse_query(request.query_string), now,
                          parse_cookies(request.header("cookie")))

    def _callback_route(self, request: Request, now: float) -> SharedFlow[Reply]:
        return self.callback("login", parse_query(request.query_string), request.header("cookie"),
                             request.header("accept"), now)

    def _silent_route(self, request: Request, now: float) -> SharedFlow[Reply]:
        query = parse_query(request.query_string)
        if {"state", "code", "error"}.isdisjoint(query):
            return self.silent_start(query, now, parse_cookies(request.header("cookie")))
        return self.callback("silent", query, request.header("cookie"), request.header("accept"),
                             now)

    def _logout_route(self, request: Request, now: float) -> SharedFlow[Reply]:
        return self.logouts.logout(request, now)

    def _backchannel_route(self, request: Request, now: float) -> SharedFlow[Reply]:
        return self.logouts.backchannel(request.body, now)

    # -- starting an authorization --------------------------------------------------------

    def login(self, query: Mapping[str, str], now: float,
              cookies: Mapping[str, str] | None = None) -> Flow[Reply]:
        """``GET /login``: start the code flow with PKCE; state, nonce in a transaction cookie.

        The allowed per-login parameters (``prompt``, ``login_hint``, ``ui_locales``,
        ``max_age``, ``acr_values``) go on to the provider; see
        :mod:`renewal_middleware.login_parameters`.
        """
        tx = LoginTransaction.start("login", safe_return_to(query.get("return_to")),
                                    params=LoginParameters.from_query(query))
        return (yield from self._authorize(tx, now, cookies))

    def silent_start(self, query: Mapping[str, str], now: float,
                     cookies: Mapping[str, str] | None = None) -> Flow[Reply]:
        """``GET /silent`` without a response: start a silent renewal."""
        mode: Mode = "iframe" if query.get("mode") == "iframe" else "redirect"
        return (yield from self.silent_redirect(query.get("return_to", "/"), now, mode, cookies))

    def silent_redirect(self, return_to: str, now: float, mode: Mode = "redirect",
                        cookies: Mapping[str, str] | None = None) -> Flow[Reply]:
        """Send a page load through a prompt=none authorization and back to ``/silent``.

        In ``iframe`` mode (a hidden iframe loading ``/silent?mode=iframe``, as in
        the classic ``silent.html`` pattern) ``/silent`` ends with a page that posts
        ``{ok, expires_at}`` or ``{ok, error}`` to the parent, targeted at the app's
        own origin only; the tokens stay in the HttpOnly cookie.
        """
        return (yield from self._authorize(
            LoginTransaction.start("silent", safe_return_to(return_to), mode), now, cookies))

    def _authorize(self, tx: LoginTransaction, now: float,
                   cookies: Mapping[str, str] | None) -> Flow[Reply]:
        meta = yield from self.provider.metadata(now)
        location = authorization_url(self.settings, meta.authorization_endpoint, tx)
        return redirect(location, [self.transactions.set_cookie(tx),
                                   *self.pending.started(tx, cookies or {})])

    # -- the authorization response -------------------------------------------------------

    def callback(self, kind: Kind, query: Mapping[str, str], cookie_header: str | None,
                 accept: str | None, now: float) -> SharedFlow[Reply]:
        """``GET /callback`` (kind ``login``) and ``GET /silent`` with a response (``silent``)."""
        as_json = wants_json(accept)
        cookies = parse_cookies(cookie_header)
        tx = self.transactions.read(kind, query.get("state", ""), cookies)
        if tx is None:
            logger.info("%s callback refused: unknown or expired state", kind)
            return error_reply(AuthenticationError(
                "This sign-in link is unknown or has expired. Please sign in again.",
                code="unknown_state"), as_json, home=self.settings.home)
        done = (*self.transactions.end(tx, cookies), *self.pending.ended(tx, cookies))
        loaded = self.sessions.load_cookies(cookies, now)
        call = _Callback(tx, (yield from self._resolved(loaded)), done, as_json)
        try:
            meta = yield from self.provider.metadata(now)
            code = authorization_code(query, meta)
            session = yield from self._redeem(call, code, now)
            if kind == "login":
                session = yield from admit(self.hooks, session)
            value = self.sessions.encode(session, now)
            yield from self.stored.keep(session)
        except TokenRequestRejected as exc:
            return (yield from self._failed(call, _code_refused(kind, exc)))
        except RenewalError as exc:
            logger.info("%s callback refused: %s", kind, exc.code)
            return (yield from self._failed(call, exc))
        logger.info("%s for %s: session %s", "login" if kind == "login" else "silent renewal",
                    session.sub, session.id)
        previous = call.loaded.view
        if kind == "silent" and previous is not None:
            yield from notify(self.hooks, "after_renewal", RenewalEvent(
                session.id, session.sub, previous.session.expires_at, session.expires_at,
                "silent"))
        set_cookies = [*self.sessions.cookie.set_headers(value, call.loaded.present), *done]
        if call.iframe:
            return silent_page({"ok": True, "expires_at": session.expires_at},
                               self.settings.origin, set_cookies)
        return redirect(safe_return_to(tx.return_to), set_cookies)

    def _redeem(self, call: _Callback, code: str, now: float) -> Flow[Session]:
        """Exchange ``code`` and check its ID token: the new session (a renewed one if silent)."""
        tx, view = call.tx, call.loaded.view
        previous = view.session if tx.kind == "silent" and view is not None else None
        token = yield from self.provider.exchange_code(
            now, code, redirect_uri(self.settings, tx.kind), tx.verifier)
        claims = yield from self._id_token_claims(
            token, tx, now, previous.sub if previous else None)
        return Session.from_token_response(token, claims, int(now), previous=previous)

    def _id_token_claims(self, token: Mapping[str, Any], tx: LoginTransaction, now: float,
                         expected_sub: str | None) -> Flow[dict[str, Any]]:
        id_token = token.get("id_token")
        if not isinstance(id_token, str):
            raise AuthenticationError("The provider sent no ID token.", code="invalid_id_token")
        claims = yield from self.provider.validate_id_token(
            now, id_token, nonce=tx.nonce, access_token=str(token["access_token"]),
            expected_sub=expected_sub, max_age=tx.params.max_age)
        if expected_sub is None:  # a new login: fetch the profile once
            extra = yield from self.provider.userinfo(now, str(token["access_token"]),
                                                      claims["sub"])
            claims = {**extra, **claims}
        return claims

    def _resolved(self, loaded: Loaded) -> SharedFlow[Loaded]:
        """The session a silent renewal renews, read from the store if it is kept there."""
        try:
            return (yield from self.stored.resolve(loaded))
        except StoreUnavailable as exc:
            logger.warning("the renewed session was not read: %s", exc.message)
            return Loaded(None, loaded.present)

    def _failed(self, call: _Callback, error: RenewalError) -> SharedFlow[Reply]:
        view = call.loaded.view
        if call.tx.kind == "silent" and view is not None:
            unavailable = isinstance(error, ProviderUnavailable)
            yield from notify(self.hooks, "on_renewal_failure", RenewalFailureEvent(
                view.session.id, view.session.sub,
                "provider_unavailable" if unavailable else "login_required", not unavailable))
        return self._failed_reply(call, error)

    def _failed_reply(self, call: _Callback, error: RenewalError) -> Reply:
        if call.tx.kind == "login":
            if call.tx.params.prompt == "none" and error.code in SILENT_LOGIN_ERRORS:
                # /login?prompt=none: "sign in if the provider still knows the user";
                # it does not, so back to the page, as it was (anonymous or not).
                logger.info("login with prompt=none: %s, back to the page", error.code)
                return redirect(safe_return_to(call.tx.return_to), list(call.done))
            return error_reply(error, call.as_json, call.done, home=self.settings.home)
        if isinstance(error, ProviderUnavailable):
            # Keep the session; don't bounce through the provider again for a while.
            if call.loaded.view is not None:
                self.backoff.failed(call.loaded.view.session.id, self.clock(), error.retry_after)
            headers = list(call.done)
        else:
            # Silent renewal refused: the session is over, continue as anonymous.
            headers = [*self.sessions.cookie.clear_headers(call.loaded.present), *call.done]
        if call.iframe:
            return silent_page({"ok": False, "error": error.code}, self.settings.origin,
                               headers)
        return redirect(safe_return_to(call.tx.return_to), headers)


def _code_refused(kind: Kind, exc: TokenRequestRejected) -> AuthenticationError:
    if exc.error in ("invalid_client", "unauthorized_client"):
        logger.error("%s callback: %s: check the client settings", kind, exc.error)
    else:
        logger.info("%s callback: code refused (%s)", kind, exc.error)
    return AuthenticationError("The provider refused the sign-in code. Please sign in again.",
                               code="code_rejected")
