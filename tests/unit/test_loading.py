"""Sessions from cookies, verified once: the header cache of the pass-through path."""

from __future__ import annotations

from renewal_middleware.context import ANONYMOUS, Serve
from renewal_middleware.flows import Flows
from tests.unit.helpers import (
    T0,
    FakeClock,
    make_session,
    make_settings,
    run_flow,
    session_cookie_header,
)


class GetRequest:
    """A plain GET of the app carrying ``cookie``."""

    method = "GET"
    query_string = ""

    def __init__(self, cookie: str | None, path: str = "/page") -> None:
        self.path = path
        self._cookie = cookie

    def header(self, name: str) -> str | None:
        return self._cookie if name == "cookie" else None

    def target(self) -> str:
        return self.path


def websocket(flows: Flows, cookie: str | None, now: float) -> Serve:
    """:meth:`Flows.websocket` for a session in the cookie (a flow with no effect)."""
    served, effects = run_flow(flows.websocket(cookie, now), lambda effect: None)
    assert effects == []
    return served  # type: ignore[no-any-return]


def seen(flows: Flows, cookie: str) -> None:
    """One request through :meth:`Flows.handle`, as a driver makes on a cache miss."""
    flows.handle(GetRequest(cookie), flows.clock())


def test_a_header_seen_once_is_answered_without_decoding(flows: Flows) -> None:
    cookie = session_cookie_header(flows, make_session())
    assert flows.pass_through("/page", cookie, T0) is None  # never seen: handle() decides
    seen(flows, cookie)
    served = flows.pass_through("/page", cookie, T0)
    assert served is not None and served.auth.access_token == "at-1"
    assert served.set_cookies == ()
    # The same header as bytes (how an ASGI server has it) is remembered apart.
    assert flows.pass_through("/page", cookie.encode(), T0) is None


def test_no_cookie_is_anonymous_and_routes_are_never_passed_through(flows: Flows) -> None:
    cookie = session_cookie_header(flows, make_session())
    seen(flows, cookie)
    assert flows.pass_through("/page", None, T0) is ANONYMOUS
    for path in ("/login", "/callback", "/silent", "/logout"):
        assert flows.pass_through(path, cookie, T0) is None


def test_a_header_stops_being_answered_at_the_grace_window(clock: FakeClock) -> None:
    flows = Flows(make_settings(idle_timeout_seconds=0), clock)  # no activity to record
    session = make_session()
    cookie = session_cookie_header(flows, session)
    seen(flows, cookie)
    grace = flows.settings.grace_seconds
    assert flows.pass_through("/page", cookie, session.expires_at - grace - 1) is not None
    assert flows.pass_through("/page", cookie, session.expires_at - grace) is None


def test_a_header_stops_being_answered_when_its_signature_is_too_old(clock: FakeClock) -> None:
    flows = Flows(make_settings(session_lifetime_seconds=3600, idle_timeout_seconds=0), clock)
    session = make_session(expires_in=None)  # an expiry the provider did not tell
    cookie = session_cookie_header(flows, session)
    seen(flows, cookie)
    assert flows.pass_through("/page", cookie, T0 + 3599) is not None
    assert flows.pass_through("/page", cookie, T0 + 3600) is None


def test_only_the_whole_header_is_answered(flows: Flows) -> None:
    cookie = session_cookie_header(flows, make_session())
    seen(flows, cookie)
    # The same last bytes (the lookup key) behind another beginning.
    assert flows.pass_through("/page", "other=1; " + cookie, T0) is None
    assert flows.pass_through("/page", cookie[1:], T0) is None


def test_the_header_cache_is_bounded_oldest_first(clock: FakeClock) -> None:
    flows = Flows(make_settings(session_cache_size=2), clock)
    cookies = [session_cookie_header(flows, make_session(id=f"sid-{i}")) for i in range(3)]
    for cookie in cookies:
        seen(flows, cookie)
    assert flows.pass_through("/page", cookies[0], T0) is None
    assert all(flows.pass_through("/page", c, T0) is not None for c in cookies[1:])


def test_a_websocket_gets_a_valid_session_and_never_an_expired_one(
        flows: Flows, clock: FakeClock) -> None:
    session = make_session(expires_in=60)
    cookie = session_cookie_header(flows, session)
    served = websocket(flows, cookie, T0 + 59)
    assert served.auth.access_token == "at-1" and served.set_cookies == ()
    assert websocket(flows, cookie, T0 + 60) is ANONYMOUS
    assert websocket(flows, None, T0) is ANONYMOUS
    unknown = session_cookie_header(flows, make_session(expires_in=None))
    assert websocket(flows, unknown, T0 + 86399).user.is_authenticated
    assert websocket(flows, unknown, T0 + 86400) is ANONYMOUS  # idle for a day


def test_a_header_is_answered_until_activity_is_due_or_the_absolute_limit(
        clock: FakeClock) -> None:
    flows = Flows(make_settings(idle_timeout_seconds=300), clock)  # record every 30 s
    cookie = session_cookie_header(flows, make_session())
    seen(flows, cookie)
    assert flows.pass_through("/page", cookie, T0 + 29) is not None
    assert flows.pass_through("/page", cookie, T0 + 30) is None
    flows = Flows(make_settings(absolute_lifetime_seconds=20), clock)
    cookie = session_cookie_header(flows, make_session(login_at=int(T0) - 10))
    seen(flows, cookie)
    assert flows.pass_through("/page", cookie, T0 + 9) is not None
    assert flows.pass_through("/page", cookie, T0 + 10) is None
