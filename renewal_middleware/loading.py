"""Sessions from cookies, verified once per cookie value and remembered.

Verifying a signature, decrypting and parsing JSON on every request would cost
more than the app itself (~230 µs). So a verified value is remembered twice:

- by a digest of the session cookie's value (:meth:`SessionLoader.load`), safe
  because the value is exactly what was verified;
- by the whole Cookie header (:attr:`SessionLoader.headers`), so that a browser
  repeating its header is answered with a dict lookup and one comparison, without
  even parsing the header (:meth:`~renewal_middleware.flows.Flows.pass_through`).
  Its key is the header's last bytes (where the session's signature usually is):
  hashing a short key is what makes the lookup cheap.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable, Mapping

from starlette.requests import cookie_parser

from .config import Settings
from .context import NOTHING, Handle, Loaded, Serve, SessionView
from .cookies import SessionCookie
from .lifetimes import Lifetimes
from .renewal import TTLCache
from .requests import RawCookie
from .session import EXPIRY_UNKNOWN, Session

logger = logging.getLogger("renewal_middleware")

HEADER_KEY_LENGTH = 64


def parse_cookies(cookie_header: str | None) -> dict[str, str]:
    """The request's cookies by name (Starlette's parser, as browsers send them)."""
    return cookie_parser(cookie_header) if cookie_header else {}


def _digest(value: str) -> bytes:
    return hashlib.blake2b(value.encode("latin-1", "replace"), digest_size=16).digest()


class SessionLoader:
    """Reads, verifies and encodes sessions, remembering what it verified."""

    def __init__(self, settings: Settings, cookie: SessionCookie) -> None:
        self.cookie = cookie
        #: Server-side storage: cookies carry a signed session id, the store the tokens.
        self.server = settings.session_storage == "server"
        self.lifetimes = Lifetimes(settings)
        self._max_age = settings.session_lifetime_seconds
        # A token with more than this left is fresh whatever its lifetime (see assess()).
        self._grace = settings.grace_seconds
        self._maxsize = settings.session_cache_size
        self._decoded: TTLCache[bytes, SessionView] = TTLCache(settings.session_cache_size)
        #: Last bytes of a Cookie header -> (the whole header, its answer, until when the
        #: answer holds). A plain dict, evicted oldest first: a hit costs no bookkeeping.
        self.headers: dict[RawCookie, tuple[RawCookie, Serve, float]] = {}
        self._lock = threading.Lock()

    def remember_header(self, cookie: RawCookie, view: SessionView) -> None:
        """Let the pass-through answer ``cookie`` while ``view``'s token is far from renewal."""
        session = view.session
        until = min(view.signed_at + self._max_age, self.lifetimes.passes_until(view))
        if session.expires_at != EXPIRY_UNKNOWN:
            until = min(until, max(session.expires_at - self._grace, session.renew_from))
        with self._lock:
            headers = self.headers
            # A float: the pass-through compares it with the clock's float, and a float
            # compared with an int takes a slower path.
            headers[cookie[-HEADER_KEY_LENGTH:]] = (cookie, view.serve, float(until))
            while len(headers) > self._maxsize:
                del headers[next(iter(headers))]

    def forget(self, ended: Callable[[Session], bool]) -> None:
        """Stop answering the headers of ``ended`` sessions from the pass-through."""
        with self._lock:
            for key, (_, serve, _) in list(self.headers.items()):
                if serve.view is not None and ended(serve.view.session):
                    del self.headers[key]

    def load(self, cookie_header: str | None, now: float) -> Loaded:
        """The session the request's cookies hold, verified once per distinct value."""
        if not cookie_header or self.cookie.name not in cookie_header:
            return NOTHING
        return self.load_cookies(parse_cookies(cookie_header), now)

    def load_cookies(self, cookies: Mapping[str, str], now: float) -> Loaded:
        """:meth:`load` for cookies already parsed."""
        raw, present = self.cookie.read(cookies)
        if raw is None:
            return Loaded(None, present, invalid=bool(present))
        view = self._decoded.get(_digest(raw), now)
        if view is not None:
            return Loaded(view, present)
        decoded = self.cookie.decode(raw)
        handle = _handle(decoded[0]) if decoded else None
        if handle is not None and self.server:
            assert decoded is not None
            return Loaded(None, present, handle=Handle(handle, raw, decoded[1]))
        session = Session.from_payload(decoded[0]) if decoded else None
        if decoded is None or session is None:
            if decoded is not None:
                logger.info("refused a session cookie of the wrong shape")
            return Loaded(None, present, invalid=True)
        return Loaded(self._remember(raw, SessionView(session, decoded[1])), present)

    def encode(self, session: Session, now: float) -> str:
        """The cookie value of ``session`` (its id alone with server-side storage),
        remembered as verified."""
        value = self.cookie.encode({"h": session.id} if self.server else session.to_payload())
        self._remember(value, SessionView(session, int(now)))
        return value

    def remember_stored(self, handle: Handle, session: Session) -> SessionView:
        """The view of a session read from the store for ``handle``'s cookie."""
        return self._remember(handle.raw, SessionView(session, handle.signed_at))

    def view_of(self, value: str, session: Session, now: float) -> SessionView:
        """The view of a value :meth:`encode` made (built again if it was forgotten)."""
        view = self._decoded.get(_digest(value), now)
        return view if view is not None else SessionView(session, int(now))

    def _remember(self, raw: str, view: SessionView) -> SessionView:
        # Cached until the signature itself would be too old to accept.
        self._decoded.put(_digest(raw), view, view.signed_at + self._max_age)
        return view


def _handle(payload: object) -> str | None:
    """The session id of a server-side session's cookie payload (``{"h": id}``)."""
    if isinstance(payload, dict) and len(payload) == 1 and isinstance(payload.get("h"), str):
        return str(payload["h"])
    return None
