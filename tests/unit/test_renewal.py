"""When to renew, the bounded caches, backoff, and single-flight refresh."""

from __future__ import annotations

import asyncio

import pytest

from renewal_middleware.renewal import (
    AsyncRefreshCoordinator,
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
from renewal_middleware.session import EXPIRY_UNKNOWN
from tests.unit.helpers import T0, FakeClock, make_session

NOW = int(T0)


# -- assess -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("remaining", "expected"), [
    (3600, Freshness.FRESH),
    (61, Freshness.FRESH),
    (60.5, Freshness.FRESH),
    (60, Freshness.RENEW),
    (1, Freshness.RENEW),
    (0.5, Freshness.RENEW),
    (0, Freshness.EXPIRED),
    (-1, Freshness.EXPIRED),
    (-86400, Freshness.EXPIRED),
])
def test_assess_with_a_long_lived_token(remaining: float, expected: Freshness) -> None:
    session = make_session(NOW, expires_in=3600)
    assert assess(session, session.expires_at - remaining, grace_seconds=60) is expected


@pytest.mark.parametrize(("lifetime", "remaining", "expected"), [
    # 60 s tokens with a 60 s grace: the window is capped at half the lifetime (30 s).
    (60, 31, Freshness.FRESH),
    (60, 30, Freshness.RENEW),
    (60, 1, Freshness.RENEW),
    (60, 0, Freshness.EXPIRED),
    # 10 s tokens: renew in the last 5 s only, not on every request.
    (10, 6, Freshness.FRESH),
    (10, 5, Freshness.RENEW),
    # The cap does not widen the window for long tokens.
    (7200, 61, Freshness.FRESH),
    (7200, 60, Freshness.RENEW),
])
def test_grace_window_is_at_most_half_the_lifetime(
        lifetime: int, remaining: int, expected: Freshness) -> None:
    session = make_session(NOW, expires_in=lifetime)
    assert assess(session, session.expires_at - remaining, grace_seconds=60) is expected


def test_grace_zero_renews_only_once_expired() -> None:
    session = make_session(NOW, expires_in=3600)
    assert assess(session, session.expires_at - 1, grace_seconds=0) is Freshness.FRESH
    assert assess(session, session.expires_at, grace_seconds=0) is Freshness.EXPIRED


@pytest.mark.parametrize("now", [0, T0, T0 + 10**9])
def test_unknown_expiry_is_always_fresh(now: float) -> None:
    session = make_session(NOW, expires_in=None)
    assert session.expires_at == EXPIRY_UNKNOWN
    assert assess(session, now, grace_seconds=60) is Freshness.FRESH


def test_unknown_lifetime_falls_back_to_the_full_grace() -> None:
    session = make_session(NOW, obtained_at=NOW + 3600)  # obtained_at at/after expiry
    assert assess(session, session.expires_at - 60, grace_seconds=60) is Freshness.RENEW
    assert assess(session, session.expires_at - 61, grace_seconds=60) is Freshness.FRESH


# -- TTLCache -----------------------------------------------------------------------------------


def test_ttl_cache_expires_entries() -> None:
    cache: TTLCache[str, int] = TTLCache(10)
    cache.put("a", 1, until=100)
    assert cache.get("a", 99.9) == 1
    assert cache.get("a", 100) is None
    assert len(cache) == 0  # an expired entry is dropped on read
    assert cache.get("missing", 0) is None


def test_ttl_cache_is_bounded_and_drops_the_oldest() -> None:
    cache: TTLCache[str, int] = TTLCache(3)
    for i, key in enumerate("abcd"):
        cache.put(key, i, until=1000)
    assert len(cache) == 3
    assert cache.get("a", 0) is None
    assert [cache.get(k, 0) for k in "bcd"] == [1, 2, 3]


def test_ttl_cache_put_again_makes_an_entry_newest() -> None:
    cache: TTLCache[str, int] = TTLCache(2)
    cache.put("a", 1, until=1000)
    cache.put("b", 2, until=1000)
    cache.put("a", 10, until=1000)
    cache.put("c", 3, until=1000)
    assert cache.get("a", 0) == 10
    assert cache.get("b", 0) is None


def test_ttl_cache_pop() -> None:
    cache: TTLCache[str, int] = TTLCache(2)
    cache.put("a", 1, until=1000)
    cache.pop("a")
    cache.pop("never-there")
    assert cache.get("a", 0) is None


def test_refresh_results_live_for_their_ttl() -> None:
    results = RefreshResults(ttl=60)
    ended = Ended("invalid_grant")
    results.put("k", ended, now=T0)
    assert results.get("k", T0 + 59) is ended
    assert results.get("k", T0 + 60) is None


# -- Backoff ------------------------------------------------------------------------------------


def failures(backoff: Backoff, count: int, start: float = T0) -> list[float]:
    """Delays of ``count`` consecutive failures, each retried as soon as allowed."""
    delays, now = [], start
    for _ in range(count):
        until = backoff.failed("s", now)
        delays.append(until - now)
        now = until
    return delays


def test_backoff_grows_and_is_capped() -> None:
    backoff = Backoff(base=1.0, cap=60.0, rng=lambda: 1.0)
    assert failures(backoff, 9) == [1, 2, 4, 8, 16, 32, 60, 60, 60]


def test_backoff_jitter_keeps_at_least_half_the_delay() -> None:
    backoff = Backoff(base=1.0, cap=60.0, rng=lambda: 0.0)
    assert failures(backoff, 8) == [0.5, 1, 2, 4, 8, 16, 30, 30]
    halfway = Backoff(base=2.0, cap=60.0, rng=lambda: 0.5)
    assert failures(halfway, 2) == [1.5, 3.0]


def test_backoff_retry_at() -> None:
    backoff = Backoff(base=10.0, cap=60.0, rng=lambda: 1.0)
    assert backoff.retry_at("s", T0) is None
    until = backoff.failed("s", T0)
    assert until == T0 + 10
    assert backoff.retry_at("s", T0 + 9.9) == until
    assert backoff.retry_at("s", T0 + 10) is None
    assert backoff.retry_at("other", T0 + 1) is None


def test_backoff_honours_retry_after() -> None:
    backoff = Backoff(base=1.0, cap=60.0, rng=lambda: 1.0)
    assert backoff.failed("s", T0, retry_after=30) == T0 + 30
    # A Retry-After shorter than the backoff does not shorten it.
    assert backoff.failed("t", T0, retry_after=0.1) == T0 + 1
    # A Retry-After beyond the cap is capped.
    assert backoff.failed("u", T0, retry_after=3600) == T0 + 60


def test_backoff_resets_on_success() -> None:
    backoff = Backoff(base=1.0, cap=60.0, rng=lambda: 1.0)
    failures(backoff, 5)
    backoff.succeeded("s")
    assert backoff.retry_at("s", T0) is None
    assert failures(backoff, 2, start=T0 + 1000) == [1, 2]


def test_backoff_forgets_failures_long_past() -> None:
    backoff = Backoff(base=1.0, cap=60.0, rng=lambda: 1.0)
    until = backoff.failed("s", T0)
    assert backoff.failed("s", until + 1) - (until + 1) == 2
    assert failures(backoff, 1, start=T0 + 10_000) == [1]


def test_backoff_survives_a_long_outage() -> None:
    """A provider down for hours: ~1000 failures of one session must stay capped, not crash."""
    backoff = Backoff(base=1.0, cap=60.0, rng=lambda: 1.0)
    delays = failures(backoff, 1100)
    assert max(delays) == 60


def test_backoff_is_bounded() -> None:
    backoff = Backoff(maxsize=2, rng=lambda: 1.0)
    for key in "abc":
        backoff.failed(key, T0)
    assert backoff.retry_at("a", T0) is None
    assert backoff.retry_at("c", T0) is not None


# -- AsyncRefreshCoordinator --------------------------------------------------------------------


def renewed(token: str = "at-2") -> Renewed:
    return Renewed(make_session(access_token=token), "cookie-" + token)


class Refresher:
    """A refresh function that waits for ``release`` and counts its runs."""

    def __init__(self, outcome: Outcome) -> None:
        self.outcome = outcome
        self.runs = 0
        self.release = asyncio.Event()

    async def __call__(self) -> Outcome:
        self.runs += 1
        await self.release.wait()
        return self.outcome


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_concurrent_refreshes_run_once_and_share_the_outcome() -> None:
    clock = FakeClock()
    coordinator = AsyncRefreshCoordinator(RefreshResults(60), clock)
    refresher = Refresher(renewed())
    tasks = [asyncio.create_task(coordinator.single_flight("k", refresher)) for _ in range(200)]
    await settle()
    assert refresher.runs == 1
    refresher.release.set()
    outcomes = await asyncio.gather(*tasks)
    assert refresher.runs == 1
    assert all(o is refresher.outcome for o in outcomes)


async def test_a_later_call_within_the_ttl_gets_the_cached_outcome() -> None:
    clock = FakeClock()
    coordinator = AsyncRefreshCoordinator(RefreshResults(60), clock)
    refresher = Refresher(renewed())
    refresher.release.set()
    first = await coordinator.single_flight("k", refresher)
    clock.advance(59)
    second = await coordinator.single_flight("k", refresher)
    assert second is first
    assert refresher.runs == 1
    clock.advance(1)
    await coordinator.single_flight("k", refresher)
    assert refresher.runs == 2


async def test_ended_is_cached_too() -> None:
    coordinator = AsyncRefreshCoordinator(RefreshResults(60), FakeClock())
    refresher = Refresher(Ended("invalid_grant"))
    refresher.release.set()
    assert await coordinator.single_flight("k", refresher) == Ended("invalid_grant")
    assert await coordinator.single_flight("k", refresher) == Ended("invalid_grant")
    assert refresher.runs == 1


async def test_unavailable_is_not_cached() -> None:
    coordinator = AsyncRefreshCoordinator(RefreshResults(60), FakeClock())
    refresher = Refresher(Unavailable("down", T0 + 5))
    refresher.release.set()
    await coordinator.single_flight("k", refresher)
    await coordinator.single_flight("k", refresher)
    assert refresher.runs == 2


async def test_keys_are_independent() -> None:
    coordinator = AsyncRefreshCoordinator(RefreshResults(60), FakeClock())
    a, b = Refresher(renewed("a")), Refresher(renewed("b"))
    a.release.set()
    b.release.set()
    results = await asyncio.gather(coordinator.single_flight("ka", a),
                                   coordinator.single_flight("kb", b))
    assert results == [a.outcome, b.outcome]
    assert (a.runs, b.runs) == (1, 1)


async def test_a_cancelled_waiter_does_not_cancel_the_shared_refresh() -> None:
    coordinator = AsyncRefreshCoordinator(RefreshResults(60), FakeClock())
    refresher = Refresher(renewed())
    first = asyncio.create_task(coordinator.single_flight("k", refresher))
    second = asyncio.create_task(coordinator.single_flight("k", refresher))
    await settle()
    first.cancel()
    await settle()
    assert first.cancelled()
    refresher.release.set()
    assert await second is refresher.outcome
    assert refresher.runs == 1
    # Its outcome was stored for the requests still carrying the old cookie.
    assert await coordinator.single_flight("k", refresher) is refresher.outcome
    assert refresher.runs == 1


async def test_the_only_waiter_cancelled_still_completes_the_refresh() -> None:
    coordinator = AsyncRefreshCoordinator(RefreshResults(60), FakeClock())
    refresher = Refresher(renewed())
    waiter = asyncio.create_task(coordinator.single_flight("k", refresher))
    await settle()
    waiter.cancel()
    await settle()
    refresher.release.set()
    await settle()
    # The provider has rotated the refresh token: the result must not be lost.
    assert await coordinator.single_flight("k", refresher) is refresher.outcome
    assert refresher.runs == 1


async def test_a_failing_refresh_reaches_every_waiter_and_is_not_stuck() -> None:
    coordinator = AsyncRefreshCoordinator(RefreshResults(60), FakeClock())
    release = asyncio.Event()

    async def boom() -> Outcome:
        await release.wait()
        raise RuntimeError("bug")

    tasks = [asyncio.create_task(coordinator.single_flight("k", boom)) for _ in range(3)]
    await settle()
    release.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in results)
    refresher = Refresher(renewed())
    refresher.release.set()
    assert await coordinator.single_flight("k", refresher) is refresher.outcome
