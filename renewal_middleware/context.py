"""What a request of the app is served with: the verified session and what the app sees of it.

:class:`Serve` is what both drivers attach to the request (under ``"renewal_middleware"``);
:mod:`renewal_middleware.access` reads it back for the app.
"""

from __future__ import annotations

import dataclasses

from starlette.authentication import AuthCredentials, BaseUser, UnauthenticatedUser

from .session import OIDCUser, Session, TokenCredentials

ANONYMOUS_USER: BaseUser = UnauthenticatedUser()
ANONYMOUS_AUTH = AuthCredentials()


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

    def __repr__(self) -> str:
        return f"SessionView(session={self.session!r}, signed_at={self.signed_at})"


@dataclasses.dataclass(frozen=True)
class Renewal:
    """The session cookie a renewal sets, checked again when the response starts: by then
    the store may know a newer generation, or the end of the session."""

    session: Session
    #: The names of the session cookies (or chunks) the request carried.
    present: tuple[str, ...]


class Serve:
    """Call the app with this session (or anonymously) and add these Set-Cookie values."""

    __slots__ = ("auth", "renewal", "set_cookies", "user", "view")

    def __init__(self, view: SessionView | None, set_cookies: tuple[str, ...] = (),
                 renewal: Renewal | None = None) -> None:
        self.view = view
        self.set_cookies = set_cookies
        self.renewal = renewal
        # Plain attributes: the drivers read them on every request.
        self.user: BaseUser = view.user if view else ANONYMOUS_USER
        self.auth: AuthCredentials = view.auth if view else ANONYMOUS_AUTH

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Serve) and other.view is self.view
                and other.set_cookies == self.set_cookies)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Serve(user={self.user!r}, set_cookies={len(self.set_cookies)})"


#: Serve anonymously, changing no cookie.
ANONYMOUS = Serve(None)


@dataclasses.dataclass(frozen=True)
class Handle:
    """A verified cookie that names a session kept in the store (server-side storage)."""

    session_id: str
    #: The cookie's value, and when it was signed (the session's last recorded activity).
    raw: str
    signed_at: int


@dataclasses.dataclass(frozen=True)
class Loaded:
    """What the request's cookies hold: a session, or nothing, or something to clear."""

    view: SessionView | None
    #: The names of every session cookie (or chunk) the request carries.
    present: tuple[str, ...]
    invalid: bool = False
    #: The session is in the store: read it (see :mod:`renewal_middleware.stored`).
    handle: Handle | None = None
    #: A valid session that ended elsewhere (a tombstone names it): end it here too.
    ended: Session | None = None


#: A request without any session cookie.
NOTHING = Loaded(None, ())
