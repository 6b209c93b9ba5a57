"""One renewal per session across processes: the shared protocol, driven by hand on a store.

A second :class:`Flows` on the same store plays another worker process.
"""

from __future__ import annotations

from typing import Any

import pytest

from renewal_middleware.context import Serve
from renewal_middleware.errors import TokenRequestRejected
from renewal_middleware.flows import Flows
from renewal_middleware.oidc import GetJSON, RevokeRequest, TokenRequest
from renewal_middleware.renewal import Ended, Freshness, Renewed, Unavailable
from renewal_middleware.session import Session
from renewal_middleware.stores.base import Lineage, StoreUnavailable, Tombstone
from renewal_middleware.stores.effects import (
    AwaitRelease,
    ReadLineage,
    ReleaseLock,
    TakeLock,
    WriteLineage,
)
from renewal_middleware.stores.memory import MemoryStore
from tests.unit.helpers import (
    DISCOVERY,
    FakeClock,
    answer_discovery,
    is_deletion,
    make_session,
    provider_effects,
    run_flow,
    session_cookie_header,
    set_cookie_pairs,
    with_store,
)


def token_answer(n: int) -> dict[str, Any]:
    return {"access_token": f"at-{n}", "token_type": "Bearer", "expires_in": 3600,
            "refresh_token": f"rt-{n}"}


class Provider:
    """Answers discovery and refresh grants, numbering the tokens it issues."""

    def __init__(self) -> None:
        self.grants: list[str] = []

    def __call__(self, effect: Any) -> Any:
        if isinstance(effect, GetJSON):
            return DISCOVERY
        assert isinstance(effect, TokenRequest)
        self.grants.append(effect.params["refresh_token"])
        return token_answer(len(self.grants) + 1)


@pytest.fixture
def store(clock: FakeClock) -> MemoryStore:
    return MemoryStore(clock=clock)


def renew(flows: Flows, session: Session, store: Any, provider: Provider) -> tuple[Any, list[Any]]:
    return run_flow(flows.lineages.renew(session, flows.clock()), with_store(provider, store))


def test_the_first_renewal_records_generation_one(flows: Flows, clock: FakeClock,
                                                  store: MemoryStore) -> None:
    session = make_session()
    clock.now = session.expires_at - 30
    provider = Provider()
    outcome, effects = renew(flows, session, store, provider)
    assert isinstance(outcome, Renewed) and outcome.session.generation == 1
    assert provider.grants == ["rt-1"]
    known = store.read(session.id)
    assert known is not None and known.generation == 1 and not known.ended
    assert flows.lineages.unseal(known.sealed) == outcome.session
    # The lock was taken before the grant and released after the write.
    kinds = [type(e).__name__ for e in effects]
    assert kinds.index("TakeLock") < kinds.index("TokenRequest") < kinds.index("WriteLineage")
    assert kinds[-1] == "ReleaseLock"
    assert store.lock(session.id, 5, 0) is not None


def test_another_process_with_the_old_cookie_gets_the_new_tokens_without_a_grant(
        flows: Flows, clock: FakeClock, store: MemoryStore) -> None:
    session = make_session()
    clock.now = session.expires_at - 30
    provider = Provider()
    first, _ = renew(flows, session, store, provider)
    other = Flows(flows.settings, clock)  # another worker, same store
    late, effects = renew(other, session, store, provider)
    assert provider.grants == ["rt-1"]
    assert isinstance(late, Renewed) and late.session == first.session
    assert not any(isinstance(e, TakeLock) for e in effects)


def test_a_waiter_reads_again_after_the_lock_and_does_not_replay(
        flows: Flows, clock: FakeClock, store: MemoryStore) -> None:
    """The lock was held by another process, which renewed while this one waited."""
    session = make_session()
    clock.now = session.expires_at - 30
    newer = Session.from_token_response(token_answer(7), {}, int(clock()), previous=session)
    provider = Provider()
    handler = with_store(provider, store)

    def racing(effect: Any) -> Any:
        if isinstance(effect, TakeLock):
            store.write(session.id, Lineage(1, flows.lineages.seal(newer)), 3600)
        return handler(effect)

    outcome, effects = run_flow(flows.lineages.renew(session, clock()), racing)
    assert provider.grants == []
    assert isinstance(outcome, Renewed) and outcome.session == newer
    assert [type(e) for e in effects].count(ReadLineage) == 2


def test_a_newer_generation_that_needs_renewal_is_renewed_with_its_own_refresh_token(
        flows: Flows, clock: FakeClock, store: MemoryStore) -> None:
    session = make_session()
    clock.now = session.expires_at - 30
    newer = Session.from_token_response({**token_answer(5), "expires_in": 60}, {},
                                        int(clock()), previous=session)
    store.write(session.id, Lineage(1, flows.lineages.seal(newer)), 3600)
    clock.now += 40  # newer is now inside its grace window too
    provider = Provider()
    outcome, _ = renew(flows, session, store, provider)
    assert provider.grants == ["rt-5"]  # never the rotated rt-1
    assert isinstance(outcome, Renewed) and outcome.session.generation == 2
    known = store.read(session.id)
    assert known is not None and known.generation == 2


def test_an_ended_lineage_is_never_renewed(flows: Flows, clock: FakeClock,
                                           store: MemoryStore) -> None:
    session = make_session()
    clock.now = session.expires_at - 30
    store.bury([Tombstone("s:" + session.id, clock())], 3600)
    provider = Provider()
    outcome, _ = renew(flows, session, store, provider)
    assert isinstance(outcome, Ended) and provider.grants == []


def test_invalid_grant_ends_the_lineage_for_every_process(
        flows: Flows, clock: FakeClock, store: MemoryStore) -> None:
    session = make_session()
    clock.now = session.expires_at - 30

    def refused(effect: Any) -> Any:
        if isinstance(effect, GetJSON):
            return DISCOVERY
        raise TokenRequestRejected("invalid_grant")

    outcome, _ = run_flow(flows.lineages.renew(session, clock()), with_store(refused, store))
    assert isinstance(outcome, Ended)
    known = store.read(session.id)
    assert known is not None and known.ended


def test_without_the_store_the_renewal_happens_in_this_process(
        flows: Flows, clock: FakeClock, caplog: pytest.LogCaptureFixture) -> None:
    session = make_session()
    clock.now = session.expires_at - 30
    provider = Provider()

    def down(effect: Any) -> Any:
        if isinstance(effect, (GetJSON, TokenRequest)):
            return provider(effect)
        raise StoreUnavailable("connection refused")

    outcome, _ = run_flow(flows.lineages.renew(session, clock()), down)
    assert isinstance(outcome, Renewed) and provider.grants == ["rt-1"]
    assert "store unavailable" in caplog.text


def test_a_lock_never_freed_is_a_clean_unavailable(flows: Flows, clock: FakeClock,
                                                   store: MemoryStore) -> None:
    session = make_session()
    clock.now = session.expires_at - 30
    provider = Provider()
    handler = with_store(provider, store)
    outcome, _ = run_flow(flows.lineages.renew(session, clock()),
                          lambda e: None if isinstance(e, TakeLock) else handler(e))
    assert isinstance(outcome, Unavailable) and provider.grants == []


def test_waiters_read_the_winners_result_without_taking_the_lock(
        flows: Flows, clock: FakeClock, store: MemoryStore) -> None:
    """Another process holds the lock and renews; this one wakes when it releases."""
    session = make_session()
    clock.now = session.expires_at - 30
    newer = Session.from_token_response(token_answer(7), {}, int(clock()), previous=session)
    provider = Provider()
    held = store.lock(session.id, 30, 0)
    assert held is not None
    handler = with_store(provider, store)

    def winner_finishes(effect: Any) -> Any:
        if isinstance(effect, AwaitRelease):
            store.write(session.id, Lineage(1, flows.lineages.seal(newer)), 3600)
            store.release(held)
        return handler(effect)

    outcome, effects = run_flow(flows.lineages.renew(session, clock()), winner_finishes)
    assert provider.grants == []
    assert isinstance(outcome, Renewed) and outcome.session == newer
    assert [e.wait for e in effects if isinstance(e, TakeLock)] == [0]  # tried once, no wait
    assert not any(isinstance(e, ReleaseLock) for e in effects)


# -- the cookie a renewal's response sets, decided when it starts ------------------------------

def renewed_serve(flows: Flows, session: Session, store: MemoryStore) -> Serve:
    loaded = flows.sessions.load(session_cookie_header(flows, session), flows.clock())
    outcome, _ = renew(flows, session, store, Provider())
    served = flows.after_refresh(loaded, outcome, Freshness.RENEW, lambda: False, flows.clock())
    assert isinstance(served, Serve) and served.renewal is not None
    return served


def test_a_late_response_never_sets_an_older_generation(flows: Flows, clock: FakeClock,
                                                        store: MemoryStore) -> None:
    session = make_session()
    clock.now = session.expires_at - 30
    served = renewed_serve(flows, session, store)  # generation 1, decided before the app ran
    gen1 = served.renewal.session if served.renewal else session
    clock.now = gen1.expires_at - 30
    gen2, _ = renew(flows, gen1, store, Provider())  # meanwhile, generation 2
    assert isinstance(gen2, Renewed)
    cookies = flows.response_cookies.final(served, store.read(session.id), clock())
    value = set_cookie_pairs(cookies)["__Host-renewal_session"]
    view = flows.sessions.load("__Host-renewal_session=" + value, clock()).view
    assert view is not None and view.session.generation == 2


def test_a_response_after_logout_clears_the_cookie(flows: Flows, clock: FakeClock,
                                                   store: MemoryStore) -> None:
    session = make_session()
    clock.now = session.expires_at - 30
    served = renewed_serve(flows, session, store)
    unchanged = flows.response_cookies.final(served, store.read(session.id), clock())
    assert unchanged == served.set_cookies
    store.bury([Tombstone("s:" + session.id, clock())], 3600)
    cookies = flows.response_cookies.final(served, store.read(session.id), clock())
    assert cookies and all(is_deletion(c) for c in cookies)


def test_a_tombstone_learnt_from_the_store_ends_the_cached_session(
        flows: Flows, clock: FakeClock) -> None:
    session = make_session(claims={"sub": "alice", "sid": "op-1"})
    header_ = session_cookie_header(flows, session)
    served = flows.handle(_Get(header_), clock())
    assert isinstance(served, Serve) and served.view is not None
    assert flows.pass_through("/", header_, clock()) is not None  # remembered
    flows.learn([Tombstone("sid:op-1", clock())])
    assert flows.pass_through("/", header_, clock()) is None
    store = MemoryStore()
    provider = with_store(lambda e: None if isinstance(e, RevokeRequest)
                          else answer_discovery(e), store)
    ended, effects = run_flow(flows.handle(_Get(header_), clock()),  # type: ignore[arg-type]
                              provider)
    assert isinstance(ended, Serve) and ended.view is None
    assert all(is_deletion(c) for c in ended.set_cookies)
    # Met here for the first time: its stored tokens go, and its refresh token is revoked.
    known = store.read(session.id)
    assert known is not None and known.ended and known.sealed == ""
    assert RevokeRequest(DISCOVERY["revocation_endpoint"], "rt-1", "refresh_token") in effects


def test_a_subject_tombstone_ends_only_the_sessions_that_began_before_it(flows: Flows) -> None:
    before = make_session(login_at=100)
    after = make_session(login_at=300)
    flows.learn([Tombstone("sub:alice", 200)])
    assert flows.tombstones.ends(before) and not flows.tombstones.ends(after)


def test_tombstones_older_than_a_session_lifetime_are_forgotten(flows: Flows) -> None:
    lifetime = flows.settings.session_lifetime_seconds
    flows.learn([Tombstone("s:old", 1_000.0), Tombstone("sub:bob", 1_000.0)])
    flows.learn([Tombstone("s:recent", 1_000.0 + lifetime - 10)])
    assert set(flows.tombstones.ended) == {"s:old", "sub:bob", "s:recent"}
    flows.learn([Tombstone("s:new", 1_000.0 + lifetime + 100)])
    assert set(flows.tombstones.ended) == {"s:recent", "s:new"}
    assert flows.tombstones.ends(make_session(id="recent"))
    assert not flows.tombstones.ends(make_session(id="old"))  # its cookies are all too old


class _Get:
    method, path, query_string, body = "GET", "/", "", b""

    def __init__(self, cookie: str) -> None:
        self._cookie = cookie

    def header(self, name: str) -> str | None:
        return self._cookie if name == "cookie" else None

    def target(self) -> str:
        return "/"


def test_provider_effects_of_a_renewal_are_discovery_and_one_grant(
        flows: Flows, clock: FakeClock, store: MemoryStore) -> None:
    session = make_session()
    clock.now = session.expires_at - 30
    _, effects = renew(flows, session, store, Provider())
    assert [type(e) for e in provider_effects(effects)] == [GetJSON, TokenRequest]
    assert any(isinstance(e, WriteLineage) for e in effects)


def test_a_token_that_lives_no_longer_is_not_renewed_again_by_another_process(
        flows: Flows, clock: FakeClock, store: MemoryStore) -> None:
    """The provider answered with a token ending when the old one does: the other workers
    adopt it instead of asking again, until it has expired."""
    session = make_session(expires_in=120)
    clock.now = session.expires_at - 50
    grants: list[str] = []

    def provider(effect: Any) -> Any:
        if isinstance(effect, GetJSON):
            return DISCOVERY
        grants.append(effect.params["refresh_token"])
        return {"access_token": f"at-{len(grants) + 1}", "token_type": "Bearer",
                "refresh_token": "rt-1", "expires_in": int(session.expires_at - clock())}

    first, _ = run_flow(flows.lineages.renew(session, clock()), with_store(provider, store))
    assert isinstance(first, Renewed) and first.session.renew_from == session.expires_at
    other = Flows(flows.settings, clock)
    clock.advance(30)  # the new token is well inside any window now
    late, _ = run_flow(other.lineages.renew(session, clock()), with_store(provider, store))
    assert isinstance(late, Renewed) and late.session == first.session
    assert len(grants) == 1
