"""Every decision of the middleware, without I/O.

The drivers (:mod:`renewal_middleware.asgi`, later WSGI) read the request, call
into :class:`Flows`, run the generator flows it returns against the provider,
and write what it decides. Time is always passed in.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import html
import json
import logging
import secrets
from collections.abc import Callable, Generator, Mapping, Sequence
from typing import Any, Protocol
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

from authlib.oauth2.rfc7636 import create_s256_code_challenge
from starlette.authentication import AuthCredentials, BaseUser, UnauthenticatedUser
from starlette.requests import cookie_parser

from .config import Settings
from .cookies import CookieWriter, SessionCookie, SignedCodec
from .errors import (
    AuthenticationError,
    ProviderUnavailable,
    RenewalError,
    TokenRequestRejected,
)
from .oidc import Effect, Flow, Provider
from .renewal import (
    Backoff,
    Ended,
    Freshness,
    Outcome,
    RefreshResults,
    Renewed,
    TTLCache,
    Unavailable,
    assess,
)
from .session import OIDCUser, Session, TokenCredentials

logger = logging.getLogger("renewal_middleware")

#: Errors of a prompt=none request that mean "the user must log in again".
SILENT_LOGIN_ERRORS = frozenset({
    "login_required", "interaction_required", "consent_required", "account_selection_required",
})
ANONYMOUS_USER: BaseUser = UnauthenticatedUser()
ANONYMOUS_AUTH = AuthCredentials()
#: Cookie headers are found by their last bytes (where the session's signature usually
#: is), then compared whole: hashing a short key is what makes the lookup cheap.
_HEADER_KEY_LENGTH = 64
#: Past this many pending login transactions, finishing one clears the others.
MAX_PENDING_LOGINS = 8

Headers = list[tuple[str, str]]


@dataclasses.dataclass(frozen=True)
class Reply:
    """A complete response the middleware sends itself."""

    status: int
    headers: Headers
    body: bytes = b""


class SessionView:
    """A verified session with what the app sees of it, built once per cookie value."""

    __slots__ = ("auth", "serve", "session", "signed_at", "user")

    def __init__(self, session: Session, signed_at: int) -> None:
        self.session = session
        self.signed_at = signed_at
        self.user = OIDCUser(session.claims)
        self.auth = TokenCredentials(session)
        #: The pass-through decision for this session, built once.
        self.serve = Serve(self)

    @classmethod
    def of(cls, session: Session, signed_at: int) -> SessionView:
        return cls(session, signed_at)

    def __repr__(self) -> str:
        return f"SessionView(session={self.session!r}, signed_at={self.signed_at})"


@dataclasses.dataclass(frozen=True)
class Loaded:
    """What the request's cookies hold: a session, or nothing, or something to clear."""

    view: SessionView | None
    present: tuple[str, ...]
    invalid: bool = False


class Serve:
    """Call the app with this session (or anonymously) and add these Set-Cookie values."""

    __slots__ = ("auth", "set_cookies", "user", "view")

    def __init__(self, view: SessionView | None, set_cookies: tuple[str, ...] = ()) -> None:
        self.view = view
        self.set_cookies = set_cookies
        # Plain attributes: the drivers read them on every request.
        self.user: BaseUser = view.user if view else ANONYMOUS_USER
        self.auth: AuthCredentials = view.auth if view else ANONYMOUS_AUTH

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Serve) and other.view is self.view
                and other.set_cookies == self.set_cookies)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Serve(user={self.user!r}, set_cookies={len(self.set_cookies)})"


@dataclasses.dataclass(frozen=True)
class NeedsRefresh:
    """Run :meth:`Flows.refresh` (single-flight on ``key``), then :meth:`Flows.after_refresh`."""

    key: str
    freshness: Freshness


@dataclasses.dataclass(frozen=True)
class NeedsSilentLogin:
    """Answer with :meth:`Flows.silent_redirect`: a prompt=none round trip through the OP."""

    return_to: str
    freshness: Freshness


Decision = Serve | NeedsRefresh | NeedsSilentLogin | Reply
#: A Cookie header as a driver has it: bytes from an ASGI scope, str from a WSGI environ.
RawCookie = str | bytes
_ANONYMOUS = Serve(None)
_NOTHING = Loaded(None, ())


class Request(Protocol):
    """What the core reads of a request; each driver adapts its own (scope, environ)."""

    method: str
    path: str
    query_string: str

    def header(self, name: str) -> str | None:
        """The value of header ``name`` (lower case), or ``None``."""

    def target(self) -> str:
        """The path and query as the client sent them, to come back to after a redirect."""


@dataclasses.dataclass(frozen=True)
class RefreshNeeded:
    """Yielded by :meth:`Flows.handle`: the driver runs :meth:`Flows.refresh` for ``session``
    through its single-flight coordinator (on ``key``) and sends the outcome back."""

    key: str
    session: Session
    now: float


#: The flow of a whole request: provider effects, plus at most one coordinated refresh.
RequestFlow = Generator["Effect | RefreshNeeded", Any, "Serve | Reply"]


def parse_query(query_string: str) -> dict[str, str]:
    return dict(parse_qsl(query_string, keep_blank_values=True))


def is_navigation(method: str, sec_fetch_mode: str | None, accept: str | None,
                  requested_with: str | None) -> bool:
    """Whether a request is a top-level page load a redirect can be answered to."""
    if method != "GET" or requested_with:
        return False
    if sec_fetch_mode is not None:
        return sec_fetch_mode == "navigate"
    return accept is not None and "text/html" in accept


def _digest(value: str) -> bytes:
    return hashlib.blake2b(value.encode("latin-1", "replace"), digest_size=16).digest()


def _is_navigation(request: Request) -> bool:
    return is_navigation(request.method, request.header("sec-fetch-mode"),
                         request.header("accept"), request.header("x-requested-with"))


def wants_json(accept: str | None) -> bool:
    return accept is not None and "application/json" in accept and "text/html" not in accept


def safe_return_to(value: str | None) -> str:
    """``value`` when it is a relative path on this origin, else ``/``."""
    if not value or not value.startswith("/") or value.startswith("//"):
        return "/"
    if "\\" in value or any(ord(c) < 0x21 or ord(c) == 0x7F for c in value):
        return "/"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return "/"
    if not value.isascii():
        # A Location header carries ASCII: percent-encode the rest, as a browser would.
        value = quote(value, safe="/?#&=%:@!$'()*+,;~-._")
    return value


def redirect(location: str, set_cookies: Sequence[str] = ()) -> Reply:
    headers = [("location", location), ("cache-control", "no-store")]
    headers += [("set-cookie", c) for c in set_cookies]
    return Reply(302, headers)


def error_reply(error: RenewalError, as_json: bool, set_cookies: Sequence[str] = (),
                status: int | None = None) -> Reply:
    """The one place an error becomes an HTTP answer."""
    code = status or error.status
    headers = [("cache-control", "no-store")] + [("set-cookie", c) for c in set_cookies]
    if isinstance(error, ProviderUnavailable) and error.retry_after:
        headers.append(("retry-after", str(int(error.retry_after))))
    if as_json:
        body = json.dumps({"error": error.code, "error_description": error.message}).encode()
        headers.append(("content-type", "application/json"))
    else:
        body = (
            "<!doctype html><meta charset=utf-8><title>Sign-in problem</title>"
            f"<h1>Sign-in problem</h1><p>{html.escape(error.message)}</p>"
            '<p><a href="/">Back to the start page</a></p>'
        ).encode()
        headers.append(("content-type", "text/html; charset=utf-8"))
    return Reply(code, headers, body)


def unauthorized_reply(description: str) -> Reply:
    body = json.dumps({"error": "invalid_token", "error_description": description}).encode()
    return Reply(401, [
        ("www-authenticate", f'Bearer error="invalid_token", error_description="{description}"'),
        ("content-type", "application/json"),
        ("cache-control", "no-store"),
    ], body)


class Flows:
    """The middleware's logic: sessions, routes and renewal decisions."""

    def __init__(self, settings: Settings, clock: Callable[[], float]) -> None:
        self.settings = settings
        self.clock = clock
        self.provider = Provider(settings)
        self.session_cookie = SessionCookie(
            settings, CookieWriter(settings), SignedCodec(settings, "renewal.session", clock))
        self._tx_codec = SignedCodec(settings, "renewal.transaction", clock)
        tx_samesite = "none" if settings.cookie_samesite == "none" else "lax"
        self._tx_writers = {
            "login": CookieWriter(settings, path=settings.callback_path,
                                  max_age=settings.login_timeout_seconds, samesite=tx_samesite),
            "silent": CookieWriter(settings, path=settings.silent_path,
                                   max_age=settings.login_timeout_seconds, samesite=tx_samesite),
        }
        self.tx_prefix = settings.cookie_name + "_tx_"
        self.results = RefreshResults(settings.refresh_result_seconds)
        self.backoff = Backoff()
        # Verified sessions by a digest of their cookie value: each is decoded once.
        self._decoded: TTLCache[bytes, SessionView] = TTLCache(settings.session_cache_size)
        # The same for whole Cookie headers, so a repeated header is not even parsed.
        self._by_header: TTLCache[RawCookie, tuple[RawCookie, SessionView]] = TTLCache(
            settings.session_cache_size)
        self._max_age = settings.session_lifetime_seconds
        # A token with more than this left is fresh whatever its lifetime (see assess()).
        self._always_fresh = settings.grace_seconds
        self._routes: dict[str, tuple[frozenset[str], Callable[[Request, float], Flow[Reply]]]]
        self._routes = {
            settings.login_path: (frozenset({"GET", "HEAD"}), self._login_route),
            settings.callback_path: (frozenset({"GET"}), self._callback_route),
            settings.silent_path: (frozenset({"GET"}), self._silent_route),
            settings.logout_path: (frozenset({"GET", "POST"}), self._logout_route),
        }

    # -- requests ------------------------------------------------------------------

    def pass_through(self, path: str, cookie: RawCookie | None, now: float) -> Serve | None:
        """The answer for the common case, or ``None`` when :meth:`handle` must decide.

        ``cookie`` is the raw Cookie header as the driver has it (bytes or str, never
        decoded here). Costs a dict lookup: no route, and either no cookie or a Cookie
        header seen before whose session is far from any renewal window.
        """
        if path in self._routes:
            return None
        if cookie is None:
            return _ANONYMOUS
        known = self._by_header.get(cookie[-_HEADER_KEY_LENGTH:], now)
        if (known is not None and known[0] == cookie
                and known[1].session.expires_at > now + self._always_fresh):
            return known[1].serve
        return None

    def handle(self, request: Request, now: float, raw_cookie: RawCookie | None = None
               ) -> Serve | Reply | RequestFlow:
        """What to do with ``request``: an answer, or a flow for the driver to run.

        The common case (no session, or a fresh one) is answered at once, without
        a generator; routes and renewals come back as a :data:`RequestFlow`.
        ``raw_cookie`` is what the driver gives :meth:`pass_through`, to remember.
        """
        route = self._routes.get(request.path)
        if route is not None:
            return self._route(request, now, *route)
        cookie = request.header("cookie")
        if cookie is None:
            return _ANONYMOUS
        loaded = self.load(cookie, now)
        if loaded.view is not None:
            raw = cookie if raw_cookie is None else raw_cookie
            self._by_header.put(raw[-_HEADER_KEY_LENGTH:], (raw, loaded.view),
                                loaded.view.signed_at + self._max_age)
            if loaded.view.session.expires_at > now + self._always_fresh:
                return loaded.view.serve
        decision = self.decide(loaded, now, lambda: _is_navigation(request), request.target)
        if isinstance(decision, (Serve, Reply)):
            return decision
        return self._renew(request, loaded, decision, now)

    def _route(self, request: Request, now: float, methods: frozenset[str],
               handler: Callable[[Request, float], Flow[Reply]]) -> Reply | RequestFlow:
        if request.method not in methods:
            return Reply(405, [("allow", ", ".join(sorted(methods)))], b"Method Not Allowed")
        return self._answer(request, handler(request, now))

    def _answer(self, request: Request, flow: Flow[Reply]) -> RequestFlow:
        try:
            return (yield from flow)
        except RenewalError as exc:
            logger.warning("%s %s failed: %s", request.method, request.path, exc.message)
            return error_reply(exc, wants_json(request.header("accept")))

    def _renew(self, request: Request, loaded: Loaded, decision: Decision,
               now: float) -> RequestFlow:
        if isinstance(decision, NeedsRefresh):
            assert loaded.view is not None
            outcome = yield RefreshNeeded(decision.key, loaded.view.session, now)
            return self.after_refresh(loaded, outcome, decision.freshness,
                                      lambda: _is_navigation(request))
        assert isinstance(decision, NeedsSilentLogin) and loaded.view is not None
        try:
            return (yield from self.silent_redirect(decision.return_to, now))
        except ProviderUnavailable as exc:
            # Like a failed refresh: serve what is still valid, and don't retry at once.
            until = self.backoff.failed(loaded.view.session.id, self.clock(), exc.retry_after)
            logger.warning("silent renewal not started, retrying after %.1fs: %s",
                           until - self.clock(), exc.message)
            return self._unavailable(loaded, decision.freshness, True)

    def _login_route(self, request: Request, now: float) -> Flow[Reply]:
        return self.login(parse_query(request.query_string), now)

    def _callback_route(self, request: Request, now: float) -> Flow[Reply]:
        return self.callback("login", parse_query(request.query_string), request.header("cookie"),
                             request.header("accept"), now)

    def _silent_route(self, request: Request, now: float) -> Flow[Reply]:
        query = parse_query(request.query_string)
        if {"state", "code", "error"}.isdisjoint(query):
            return self.silent_start(query, now)
        return self.callback("silent", query, request.header("cookie"), request.header("accept"),
                             now)

    def _logout_route(self, request: Request, now: float) -> Flow[Reply]:
        return self.logout(request.header("cookie"), now)

    # -- sessions ------------------------------------------------------------------

    def load(self, cookie_header: str | None, now: float) -> Loaded:
        """The session the request's cookies hold, verified once per distinct value."""
        if not cookie_header or self.session_cookie.name not in cookie_header:
            return _NOTHING
        raw, present = self.session_cookie.read(cookie_parser(cookie_header))
        if raw is None:
            return Loaded(None, present, invalid=bool(present))
        view = self._decoded.get(_digest(raw), now)
        if view is not None:
            return Loaded(view, present)
        decoded = self.session_cookie.decode(raw)
        session = Session.from_payload(decoded[0]) if decoded else None
        if decoded is None or session is None:
            if decoded is not None:
                logger.info("refused a session cookie of the wrong shape")
            return Loaded(None, present, invalid=True)
        view = SessionView.of(session, decoded[1])
        self._remember(raw, view)
        return Loaded(view, present)

    def _remember(self, raw: str, view: SessionView) -> None:
        # Cached until the signature itself would be too old to accept.
        self._decoded.put(_digest(raw), view, view.signed_at + self._max_age)

    def encode(self, session: Session, now: float) -> str:
        value = self.session_cookie.encode(session.to_payload())
        self._remember(value, SessionView.of(session, int(now)))
        return value

    def decide(self, loaded: Loaded, now: float,
               navigation: Callable[[], bool], return_to: Callable[[], str]) -> Decision:
        """What to do with an ordinary request of the app."""
        view = loaded.view
        if view is None:
            if not loaded.invalid:
                return _ANONYMOUS
            return Serve(None, tuple(self.session_cookie.clear_headers(loaded.present)))
        freshness = assess(view.session, now, self.settings.grace_seconds)
        if freshness is Freshness.FRESH:
            return Serve(view)
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

    def _unavailable(self, loaded: Loaded, freshness: Freshness, navigation: bool
                     ) -> Serve | Reply:
        if freshness is Freshness.RENEW:
            return Serve(loaded.view)  # still valid: serve it and try again later
        if navigation:
            return Serve(None)  # keep the cookie: renewal may work once the provider is back
        return unauthorized_reply("the access token has expired")

    # -- renewal ---------------------------------------------------------------------

    def refresh(self, session: Session, now: float) -> Flow[Outcome]:
        """The refresh_token grant for ``session``, as one outcome."""
        assert session.refresh_token is not None
        try:
            token = yield from self.provider.refresh(now, session.refresh_token)
            claims: Mapping[str, Any] = session.claims
            if isinstance(token.get("id_token"), str):
                claims = yield from self.provider.validate_id_token(
                    now, token["id_token"], nonce=None, access_token=token["access_token"],
                    expected_sub=session.sub)
        except TokenRequestRejected as exc:
            if exc.error == "invalid_grant":
                logger.info("refresh refused (invalid_grant): session %s ended", session.id)
                self.backoff.succeeded(session.id)
                return Ended(exc.error)
            # invalid_client and the like: our configuration, not the user's session.
            logger.error("refresh refused (%s): check the client settings", exc.error)
            return Unavailable(exc.error, self.backoff.failed(session.id, self.clock()))
        except ProviderUnavailable as exc:
            # Back off from when the attempt failed, which may be a timeout after ``now``.
            failed_at = self.clock()
            until = self.backoff.failed(session.id, failed_at, exc.retry_after)
            logger.warning("refresh failed, retrying after %.1fs: %s", until - failed_at,
                           exc.message)
            return Unavailable(exc.message, until)
        except AuthenticationError as exc:
            logger.warning("refresh returned a bad ID token (%s): session ended", exc.code)
            return Ended(exc.code)
        renewed = Session.from_token_response(token, claims, int(now), previous=session)
        self.backoff.succeeded(session.id)
        try:
            value = self.encode(renewed, now)
        except AuthenticationError as exc:
            logger.error("renewed session %s cannot be stored: %s", session.id, exc.message)
            return Ended(exc.code)
        logger.info("renewed session %s (expires in %ss)", session.id,
                    renewed.expires_at - int(now) if renewed.expires_at else "?")
        return Renewed(renewed, value)

    def after_refresh(self, loaded: Loaded, outcome: Outcome, freshness: Freshness,
                      navigation: Callable[[], bool]) -> Serve | Reply:
        if isinstance(outcome, Renewed):
            view = self._decoded.get(_digest(outcome.cookie_value), self.clock())
            if view is None:
                view = SessionView.of(outcome.session, int(self.clock()))
            headers = self.session_cookie.set_headers(outcome.cookie_value, loaded.present)
            return Serve(view, tuple(headers))
        if isinstance(outcome, Ended):
            return Serve(None, tuple(self.session_cookie.clear_headers(loaded.present)))
        return self._unavailable(loaded, freshness, navigation())

    # -- routes ----------------------------------------------------------------------

    def login(self, query: Mapping[str, str], now: float) -> Flow[Reply]:
        """``GET /login``: start the code flow with PKCE; state, nonce in a transaction cookie."""
        return_to = safe_return_to(query.get("return_to"))
        return (yield from self._authorize("login", return_to, now, prompt=None))

    def silent_redirect(self, return_to: str, now: float, mode: str = "redirect") -> Flow[Reply]:
        """Send a page load through a prompt=none authorization and back to ``/silent``.

        In ``iframe`` mode (a hidden iframe loading ``/silent?mode=iframe``, as in
        the classic ``silent.html`` pattern) ``/silent`` ends with a page that posts
        ``{ok, expires_at}`` or ``{ok, error}`` to the parent, targeted at the app's
        own origin only; the tokens stay in the HttpOnly cookie.
        """
        return (yield from self._authorize("silent", safe_return_to(return_to), now,
                                           prompt="none", mode=mode))

    def silent_start(self, query: Mapping[str, str], now: float) -> Flow[Reply]:
        """``GET /silent`` without a response: start a silent renewal."""
        mode = "iframe" if query.get("mode") == "iframe" else "redirect"
        return (yield from self.silent_redirect(query.get("return_to", "/"), now, mode))

    def _authorize(self, kind: str, return_to: str, now: float, prompt: str | None,
                   mode: str = "redirect") -> Flow[Reply]:
        settings = self.settings
        meta = yield from self.provider.metadata(now)
        state, nonce = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        verifier = secrets.token_urlsafe(48)
        params = {
            "response_type": "code",
            "client_id": settings.client_id,
            "redirect_uri": self._redirect_uri(kind),
            "scope": settings.scope,
            "state": state,
            "nonce": nonce,
            "code_challenge": create_s256_code_challenge(verifier),
            "code_challenge_method": "S256",
        }
        if prompt is None:
            prompt = settings.effective_login_prompt
        elif "offline_access" in settings.scopes:
            # prompt=none never yields a refresh token; do not ask for one.
            params["scope"] = " ".join(s for s in settings.scopes if s != "offline_access")
        if prompt:
            params["prompt"] = prompt
        if settings.audience:
            params["audience"] = settings.audience
        tx = self._tx_codec.dumps(
            {"s": state, "n": nonce, "v": verifier, "r": return_to, "k": kind, "m": mode})
        cookie = self._tx_writers[kind].set(self.tx_prefix + state, tx)
        separator = "&" if "?" in meta.authorization_endpoint else "?"
        return redirect(meta.authorization_endpoint + separator + urlencode(params), [cookie])

    def callback(self, kind: str, query: Mapping[str, str], cookie_header: str | None,
                 accept: str | None, now: float) -> Flow[Reply]:
        """``GET /callback`` (kind ``login``) and ``GET /silent`` (kind ``silent``)."""
        as_json = wants_json(accept)
        cookies = cookie_parser(cookie_header) if cookie_header else {}
        state = query.get("state", "")
        tx = self._load_transaction(kind, state, cookies)
        if tx is None:
            logger.info("%s callback refused: unknown or expired state", kind)
            return error_reply(AuthenticationError(
                "This sign-in link is unknown or has expired. Please sign in again.",
                code="unknown_state"), as_json)
        done = [self._tx_writers[kind].delete(self.tx_prefix + state)]
        others = [name for name in cookies
                  if name.startswith(self.tx_prefix) and name != self.tx_prefix + state]
        if len(others) >= MAX_PENDING_LOGINS:
            # Abandoned logins pile up (each is a cookie sent to this path): drop them.
            done += [self._tx_writers[kind].delete(n) for n in others]
        return_to = safe_return_to(tx["r"])
        iframe = kind == "silent" and tx.get("m") == "iframe"
        loaded = self.load(cookie_header, now)
        present = loaded.present
        previous = loaded.view.session if loaded.view else None
        try:
            meta = yield from self.provider.metadata(now)
            iss = query.get("iss")
            if (iss is not None and iss != meta.issuer) or (
                    iss is None and meta.iss_parameter_supported):
                # RFC 9207: a response from another provider (mix-up) or one that lost its iss.
                raise AuthenticationError("The response names another issuer.",
                                          code="issuer_mismatch")
            if "error" in query:
                error = query["error"]
                detail = query.get("error_description")
                raise AuthenticationError(
                    f"The provider answered: {error}" + (f" ({detail})" if detail else ""),
                    code=error if error in SILENT_LOGIN_ERRORS else "authorization_error")
            code = query.get("code")
            if not code:
                raise AuthenticationError("The response carries no code.", code="missing_code")
            token = yield from self.provider.exchange_code(
                now, code, self._redirect_uri(kind), tx["v"])
            expected = previous.sub if (kind == "silent" and previous) else None
            claims = yield from self._id_token_claims(token, tx["n"], now, expected)
            session = Session.from_token_response(
                token, claims, int(now), previous=previous if kind == "silent" else None)
            value = self.encode(session, now)
        except TokenRequestRejected as exc:
            if exc.error in ("invalid_client", "unauthorized_client"):
                logger.error("%s callback: %s: check the client settings", kind, exc.error)
            else:
                logger.info("%s callback: code refused (%s)", kind, exc.error)
            refused = AuthenticationError(
                "The provider refused the sign-in code. Please sign in again.",
                code="code_rejected")
            return self._callback_failed(kind, refused, return_to, done, as_json, loaded, iframe)
        except RenewalError as exc:
            logger.info("%s callback refused: %s", kind, exc.code)
            return self._callback_failed(kind, exc, return_to, done, as_json, loaded, iframe)
        logger.info("%s for %s: session %s", "login" if kind == "login" else "silent renewal",
                    session.sub, session.id)
        set_cookies = [*self.session_cookie.set_headers(value, present), *done]
        if iframe:
            return self._silent_page({"ok": True, "expires_at": session.expires_at}, set_cookies)
        return redirect(return_to, set_cookies)

    def _silent_page(self, message: Mapping[str, Any], set_cookies: Sequence[str]) -> Reply:
        """A page for a hidden iframe: post ``message`` to the parent, at our origin only."""
        data = {"type": "renewal_middleware:silent", **message}
        # JSON in a script: escape "<" so no value can close the script element.
        script = "parent.postMessage({},{});".format(
            json.dumps(data).replace("<", "\\u003c"),
            json.dumps(self.settings.base_url).replace("<", "\\u003c"))
        digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
        body = f"<!doctype html><meta charset=utf-8><title>renewal</title><script>{script}</script>"
        headers = [
            ("content-type", "text/html; charset=utf-8"),
            ("cache-control", "no-store"),
            ("content-security-policy",
             f"default-src 'none'; script-src 'sha256-{digest}'; frame-ancestors 'self'"),
        ] + [("set-cookie", c) for c in set_cookies]
        return Reply(200, headers, body.encode())

    def _id_token_claims(self, token: Mapping[str, Any], nonce: str, now: float,
                         expected_sub: str | None) -> Flow[dict[str, Any]]:
        id_token = token.get("id_token")
        if not isinstance(id_token, str):
            raise AuthenticationError("The provider sent no ID token.", code="invalid_id_token")
        claims = yield from self.provider.validate_id_token(
            now, id_token, nonce=nonce, access_token=str(token["access_token"]),
            expected_sub=expected_sub)
        if expected_sub is None:  # a new login: fetch the profile once
            extra = yield from self.provider.userinfo(now, str(token["access_token"]),
                                                      claims["sub"])
            claims = {**extra, **claims}
        return claims

    def _redirect_uri(self, kind: str) -> str:
        if kind == "login":
            return self.settings.redirect_uri
        return self.settings.silent_redirect_uri

    def _callback_failed(self, kind: str, error: RenewalError, return_to: str,
                         done: list[str], as_json: bool, loaded: Loaded, iframe: bool) -> Reply:
        if kind == "login":
            return error_reply(error, as_json, done)
        if isinstance(error, ProviderUnavailable):
            # Keep the session; don't bounce through the provider again for a while.
            if loaded.view is not None:
                self.backoff.failed(loaded.view.session.id, self.clock(), error.retry_after)
            headers = done
        else:
            # Silent renewal refused: the session is over, continue as anonymous.
            headers = [*self.session_cookie.clear_headers(loaded.present), *done]
        if iframe:
            return self._silent_page({"ok": False, "error": error.code}, headers)
        return redirect(return_to, headers)

    def _load_transaction(self, kind: str, state: str, cookies: Mapping[str, str]
                          ) -> dict[str, str] | None:
        if not state or len(state) > 128:
            return None
        raw = cookies.get(self.tx_prefix + state)
        if raw is None:
            return None
        loaded = self._tx_codec.loads(raw, self.settings.login_timeout_seconds)
        if loaded is None:
            return None
        tx = loaded[0]
        if not (isinstance(tx, dict) and tx.get("k") == kind and tx.get("s") == state
                and all(isinstance(tx.get(k), str) for k in ("n", "v", "r"))):
            return None
        return tx

    def logout(self, cookie_header: str | None, now: float) -> Flow[Reply]:
        """``GET|POST /logout``: revoke, clear every chunk, and log out at the provider."""
        loaded = self.load(cookie_header, now)
        clear = self.session_cookie.clear_headers(loaded.present)
        local = redirect(self.settings.post_logout_path, clear)
        try:
            meta = yield from self.provider.metadata(now)
        except ProviderUnavailable:
            logger.warning("logout while the provider is unreachable: local logout only")
            return local
        session = loaded.view.session if loaded.view else None
        if session is not None and session.refresh_token and meta.revocation_endpoint:
            try:
                yield from self.provider.revoke(meta, session.refresh_token)
            except (ProviderUnavailable, TokenRequestRejected) as exc:
                logger.warning("could not revoke the refresh token: %s", exc.message)
        if session is not None:
            logger.info("logout of session %s", session.id)
        if not meta.end_session_endpoint:
            return local
        params = {"post_logout_redirect_uri": self.settings.post_logout_redirect_uri,
                  "client_id": self.settings.client_id}
        if session is not None and session.id_token:
            params["id_token_hint"] = session.id_token
        separator = "&" if "?" in meta.end_session_endpoint else "?"
        return redirect(meta.end_session_endpoint + separator + urlencode(params), clear)
