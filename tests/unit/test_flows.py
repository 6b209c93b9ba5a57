"""The core's decisions, driven by hand: decide, refresh, after_refresh."""

from __future__ import annotations

import json
from typing import Any

import pytest
from joserfc.jwk import RSAKey

from renewal_middleware.context import Loaded, Serve, SessionView
from renewal_middleware.decisions import NeedsRefresh, NeedsSilentLogin
from renewal_middleware.errors import (
    ProviderUnavailable,
    TokenRequestRejected,
)
from renewal_middleware.flows import Flows
from renewal_middleware.oidc import GetJSON, TokenRequest
from renewal_middleware.renewal import (
    AsyncRefreshCoordinator,
    Ended,
    Freshness,
    Renewed,
    Unavailable,
)
from renewal_middleware.replies import Reply
from renewal_middleware.session import Session
from tests.unit.drive import (
    api,
    header,
    nav,
    set_cookies,
)
from tests.unit.helpers import (
    DISCOVERY,
    DISCOVERY_URL,
    T0,
    FakeClock,
    cookie_header,
    id_claims,
    is_deletion,
    jwks,
    make_session,
    make_settings,
    mint,
    run_flow,
    session_cookie_header,
    set_cookie_pairs,
)


def decide(flows: Flows, session: Session | None, navigation: Any = api,
           now: float | None = None) -> Any:
    now = flows.clock() if now is None else now
    header_ = session_cookie_header(flows, session) if session else None
    return flows.decide(flows.sessions.load(header_, now), now, navigation, lambda: "/page?x=1")


# -- decide ------------------------------------------------------------------------------------


def test_no_cookie_is_anonymous(flows: Flows) -> None:
    decision = decide(flows, None)
    assert decision == Serve(None)
    assert not decision.user.is_authenticated
    assert decision.auth.scopes == []


def test_fresh_session_is_served_without_set_cookie(flows: Flows) -> None:
    decision = decide(flows, make_session())
    assert isinstance(decision, Serve)
    assert decision.set_cookies == ()
    assert decision.user.identity == "alice"
    assert decision.auth.access_token == "at-1"


def test_invalid_cookie_is_cleared(flows: Flows) -> None:
    for cookies in ["__Host-renewal_session=forged",
                    "__Host-renewal_session.0=a; __Host-renewal_session.1=b"]:
        decision = flows.decide(flows.sessions.load(cookies, T0), T0, api, lambda: "/")
        assert isinstance(decision, Serve) and decision.view is None
        assert decision.set_cookies and all(is_deletion(c) for c in decision.set_cookies)


@pytest.mark.parametrize(("navigation", "remaining", "freshness"), [
    (api, 30, Freshness.RENEW), (nav, 30, Freshness.RENEW),
    (api, -5, Freshness.EXPIRED), (nav, -5, Freshness.EXPIRED),
])
def test_refresh_token_means_refresh(flows: Flows, clock: FakeClock, navigation: Any,
                                     remaining: int, freshness: Freshness) -> None:
    session = make_session()
    clock.now = session.expires_at - remaining
    assert decide(flows, session, navigation) == NeedsRefresh(session.refresh_key, freshness)


def test_no_refresh_token_and_navigation_means_silent_login(
        flows: Flows, clock: FakeClock) -> None:
    session = make_session(refresh_token=None)
    clock.now = session.expires_at - 30
    assert decide(flows, session, nav) == NeedsSilentLogin("/page?x=1", Freshness.RENEW)
    clock.now = session.expires_at + 30
    assert decide(flows, session, nav) == NeedsSilentLogin("/page?x=1", Freshness.EXPIRED)


def test_no_refresh_token_api_in_grace_is_served(flows: Flows, clock: FakeClock) -> None:
    session = make_session(refresh_token=None)
    clock.now = session.expires_at - 30
    decision = decide(flows, session, api)
    assert isinstance(decision, Serve) and decision.view.session == session


def test_no_refresh_token_api_expired_is_401(flows: Flows, clock: FakeClock) -> None:
    session = make_session(refresh_token=None)
    clock.now = session.expires_at + 1
    decision = decide(flows, session, api)
    assert isinstance(decision, Reply)
    assert decision.status == 401
    assert header(decision, "www-authenticate").startswith('Bearer error="invalid_token"')
    assert json.loads(decision.body)["error"] == "invalid_token"
    assert not set_cookies(decision)  # the cookie stays: a page load may still renew it


def test_unknown_expiry_never_renews(flows: Flows, clock: FakeClock) -> None:
    clock.advance(10**7)
    decision = decide(flows, make_session(expires_in=None, refresh_token=None))
    assert isinstance(decision, Serve) and decision.set_cookies == ()


# -- refresh -----------------------------------------------------------------------------------


def refresh_answer(**changes: Any) -> dict[str, Any]:
    token = {"access_token": "at-2", "token_type": "Bearer", "expires_in": 3600,
             "refresh_token": "rt-2"}
    token.update(changes)
    return {k: v for k, v in token.items() if v is not None}


def loaded_for(flows: Flows, session: Session, extra: str = "") -> Loaded:
    header_ = session_cookie_header(flows, session) + extra
    return flows.sessions.load(header_, flows.clock())


def test_refresh_renews_and_after_refresh_sets_the_cookie(
        flows: Flows, clock: FakeClock) -> None:
    session = make_session()
    clock.now = session.expires_at - 30
    loaded = loaded_for(flows, session, "; __Host-renewal_session.0=stale")
    decision = flows.decide(loaded, clock(), api, lambda: "/")
    assert isinstance(decision, NeedsRefresh)

    flow = flows.refresh_session(session, clock())
    assert next(flow) == GetJSON(DISCOVERY_URL)
    assert flow.send(DISCOVERY) == TokenRequest(
        DISCOVERY["token_endpoint"], {"grant_type": "refresh_token", "refresh_token": "rt-1"})
    with pytest.raises(StopIteration) as stop:
        flow.send(refresh_answer())
    outcome = stop.value.value
    assert isinstance(outcome, Renewed)
    assert outcome.session.access_token == "at-2"
    assert outcome.session.refresh_token == "rt-2"
    assert outcome.session.id == session.id
    assert outcome.session.claims == session.claims
    assert outcome.session.expires_at == int(clock()) + 3600

    served = flows.after_refresh(loaded, outcome, decision.freshness, api, clock())
    assert isinstance(served, Serve)
    assert served.auth.access_token == "at-2"
    written = [c for c in served.set_cookies if not is_deletion(c)]
    deleted = [c.split("=", 1)[0] for c in served.set_cookies if is_deletion(c)]
    assert deleted == ["__Host-renewal_session.0"]
    assert set_cookie_pairs(written)["__Host-renewal_session"] == outcome.cookie_value
    # Another instance with the same keys reads the new cookie.
    other = Flows(flows.settings, clock)
    view = other.sessions.load(cookie_header(set_cookie_pairs(written)), clock()).view
    assert view is not None and view.session == outcome.session


def test_refresh_validates_a_new_id_token(flows: Flows, clock: FakeClock,
                                          rsa_key: RSAKey) -> None:
    session = make_session()
    clock.now = session.expires_at - 30
    now = int(clock())
    good = mint(rsa_key, id_claims(now, nonce=None, name="Alice New"))
    answers = {DISCOVERY_URL: DISCOVERY, DISCOVERY["jwks_uri"]: jwks(rsa_key)}

    def op(token: dict[str, Any]) -> Any:
        return lambda e: answers[e.url] if isinstance(e, GetJSON) else token

    outcome, _ = run_flow(flows.refresh_session(session, now), op(refresh_answer(id_token=good)))
    assert isinstance(outcome, Renewed)
    assert outcome.session.id_token == good
    assert outcome.session.claims["name"] == "Alice New"

    other_user = mint(rsa_key, id_claims(now, nonce=None, sub="mallory"))
    outcome, _ = run_flow(flows.refresh_session(session, now),
                          op(refresh_answer(id_token=other_user)))
    assert outcome == Ended("subject_changed")


def test_invalid_grant_ends_the_session_and_clears_every_chunk(
        flows: Flows, clock: FakeClock) -> None:
    session = make_session()
    clock.now = session.expires_at + 10
    loaded = loaded_for(flows, session, "; __Host-renewal_session.0=x; __Host-renewal_session.1=y")
    flow = flows.refresh_session(session, clock())
    next(flow)
    flow.send(DISCOVERY)
    with pytest.raises(StopIteration) as stop:
        flow.throw(TokenRequestRejected("invalid_grant", "revoked"))
    outcome = stop.value.value
    assert isinstance(outcome, Ended)
    decision = flows.after_refresh(loaded, outcome, Freshness.EXPIRED, nav, clock())
    assert isinstance(decision, Serve) and decision.view is None
    assert {c.split("=", 1)[0] for c in decision.set_cookies} == {
        "__Host-renewal_session", "__Host-renewal_session.0", "__Host-renewal_session.1"}
    assert all(is_deletion(c) for c in decision.set_cookies)
    assert flows.backoff.retry_at(session.id, clock()) is None


def test_provider_down_while_valid_serves_the_current_session_and_backs_off(
        flows: Flows, clock: FakeClock) -> None:
    session = make_session()
    clock.now = session.expires_at - 30
    now = clock()
    loaded = loaded_for(flows, session)

    def down(effect: Any) -> Any:
        if isinstance(effect, GetJSON):
            return DISCOVERY
        raise ProviderUnavailable("503", retry_after=20)

    outcome, _ = run_flow(flows.refresh_session(session, now), down)
    assert isinstance(outcome, Unavailable)
    assert outcome.retry_at >= now + 20
    assert flows.backoff.retry_at(session.id, now) == outcome.retry_at

    decision = flows.after_refresh(loaded, outcome, Freshness.RENEW, api, clock())
    assert isinstance(decision, Serve)
    assert decision.view is not None and decision.view.session == session
    assert decision.set_cookies == ()
    # While backing off, the next request does not try again.
    clock.advance(5)
    loaded_again = flows.sessions.load(session_cookie_header(flows, session), clock())
    again = flows.decide(loaded_again, clock(), api, lambda: "/")
    assert isinstance(again, Serve) and again.view.session == session
    clock.now = outcome.retry_at
    assert isinstance(flows.decide(loaded, clock(), api, lambda: "/"), NeedsRefresh)


def test_provider_down_after_expiry(flows: Flows, clock: FakeClock) -> None:
    session = make_session()
    clock.now = session.expires_at + 5
    loaded = loaded_for(flows, session)
    outcome = Unavailable("down", clock() + 10)
    api_reply = flows.after_refresh(loaded, outcome, Freshness.EXPIRED, api, clock())
    assert isinstance(api_reply, Reply) and api_reply.status == 401
    page = flows.after_refresh(loaded, outcome, Freshness.EXPIRED, nav, clock())
    assert page == Serve(None)  # anonymous for now, cookie kept for a later renewal


def test_other_token_errors_do_not_end_the_session(flows: Flows) -> None:
    session = make_session()

    def rejected(effect: Any) -> Any:
        if isinstance(effect, GetJSON):
            return DISCOVERY
        raise TokenRequestRejected("invalid_client")

    outcome, _ = run_flow(flows.refresh_session(session, T0), rejected)
    assert isinstance(outcome, Unavailable)


def test_a_request_with_the_pre_rotation_cookie_gets_the_stored_result(
        flows: Flows, clock: FakeClock) -> None:
    session = make_session()
    clock.now = session.expires_at - 30
    outcome, _ = run_flow(flows.refresh_session(session, clock()),
                          lambda e: DISCOVERY if isinstance(e, GetJSON) else refresh_answer())
    flows.results.put(session.refresh_key, outcome, clock())
    # Even while backing off, a stored result is used rather than served stale.
    flows.backoff.failed(session.id, clock())
    loaded = loaded_for(flows, session)
    decision = flows.decide(loaded, clock(), api, lambda: "/")
    assert decision == NeedsRefresh(session.refresh_key, Freshness.RENEW)


async def test_a_stored_refresh_result_never_serves_an_expired_token(clock: FakeClock) -> None:
    """Tokens shorter than refresh_result_seconds, refresh token not rotated (as at Google).

    The result stored for requests with the pre-rotation cookie must not outlive the
    access token it holds: once that token has expired, a new refresh must run.
    """
    flows = Flows(make_settings(refresh_result_seconds=60), clock)
    coordinator = AsyncRefreshCoordinator(flows.results, clock)
    runs: list[float] = []

    def provider(effect: Any) -> Any:
        if isinstance(effect, GetJSON):
            return DISCOVERY
        runs.append(clock())
        return {"access_token": f"at-{len(runs) + 1}", "token_type": "Bearer",
                "expires_in": 30}  # no refresh_token: the old one stays valid

    async def request() -> Serve:
        now = clock()
        loaded = flows.sessions.load(cookies, now)
        decision = flows.decide(loaded, now, api, lambda: "/")
        if isinstance(decision, NeedsRefresh):
            assert loaded.view is not None
            session = loaded.view.session

            async def run() -> Any:
                return run_flow(flows.refresh_session(session, now), provider)[0]

            outcome = await coordinator.single_flight(decision.key, run)
            decision = flows.after_refresh(loaded, outcome, decision.freshness, api, clock())
        assert isinstance(decision, Serve)
        return decision

    session = make_session(expires_in=30)
    cookies = session_cookie_header(flows, session)
    clock.now = session.expires_at - 10  # inside the window (15 s, half of 30)
    served = await request()
    assert served.auth.access_token == "at-2"
    cookies = cookie_header(set_cookie_pairs(served.set_cookies))

    clock.advance(35)  # at-2 (30 s) has expired; the stored result is 35 s old
    served = await request()
    assert served.view is not None
    assert served.view.session.expires_at > clock(), "the app was handed an expired token"
    assert len(runs) == 2


async def test_a_provider_whose_new_token_lives_no_longer_is_not_asked_on_every_request(
        flows: Flows, clock: FakeClock) -> None:
    """Some providers answer a refresh with a token that lives no longer than the one held
    (Keycloak near its SSO session's maximum, Auth0 near a refresh token's absolute
    lifetime): the session stays inside its window, and must not cost a grant per request
    until that token expires."""
    coordinator = AsyncRefreshCoordinator(flows.results, clock)
    session = make_session(expires_in=120)
    grants: list[float] = []

    def provider(effect: Any) -> Any:
        if isinstance(effect, GetJSON):
            return DISCOVERY
        grants.append(clock())
        # A new access token that ends when the old one does.
        return {"access_token": f"at-{len(grants) + 1}", "token_type": "Bearer",
                "refresh_token": "rt-1", "expires_in": int(session.expires_at - clock())}

    cookies = session_cookie_header(flows, session)
    clock.now = session.expires_at - 50  # inside the 60 s window
    for _ in range(20):
        loaded = flows.sessions.load(cookies, clock())
        decision = flows.decide(loaded, clock(), api, lambda: "/")
        if isinstance(decision, NeedsRefresh):
            assert loaded.view is not None

            async def run(view: SessionView = loaded.view) -> Any:
                return run_flow(flows.refresh_session(view.session, clock()), provider)[0]

            outcome = await coordinator.single_flight(decision.key, run)
            decision = flows.after_refresh(loaded, outcome, decision.freshness, api, clock())
        assert isinstance(decision, Serve) and decision.view is not None
        if decision.set_cookies:
            cookies = cookie_header(set_cookie_pairs(decision.set_cookies))
        clock.advance(2)
    assert len(grants) == 1  # one grant for the whole window, not one per request
    clock.now = session.expires_at + 1  # expired: now a grant is worth trying again
    loaded = flows.sessions.load(cookies, clock())
    assert isinstance(flows.decide(loaded, clock(), api, lambda: "/"), NeedsRefresh)
