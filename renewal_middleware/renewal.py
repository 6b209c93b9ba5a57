"""When to renew, and the bookkeeping that keeps renewals to one per session.

The policy is a pure function; :class:`RefreshResults` and :class:`Backoff` are
plain bounded maps with time passed in, shared by the async and the threaded
coordinators, which only add the waiting.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import random
import threading
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from .session import EXPIRY_UNKNOWN, Session

K = TypeVar("K")
V = TypeVar("V")


class Freshness(enum.Enum):
    FRESH = "fresh"      # serve as is
    RENEW = "renew"      # still valid, but inside the grace window
    EXPIRED = "expired"  # past its expiry


def assess(session: Session, now: float, grace_seconds: int) -> Freshness:
    """Where the session's access token stands at ``now`` (see :func:`renewal_starts`)."""
    if session.expires_at == EXPIRY_UNKNOWN:
        return Freshness.FRESH
    if session.expires_at <= now:
        return Freshness.EXPIRED
    return Freshness.RENEW if now >= renewal_starts(session, grace_seconds) else Freshness.FRESH


def renewal_starts(session: Session, grace_seconds: int) -> float:
    """When the session's grace window opens (Unix time; its token has a known expiry).

    The grace window is at most half the token's lifetime, so that a provider
    issuing tokens shorter than ``grace_seconds`` does not cause a renewal on
    every request; it never opens before ``renew_from``.
    """
    lifetime = session.expires_at - session.obtained_at
    window = min(grace_seconds, lifetime / 2) if lifetime > 0 else grace_seconds
    return max(session.expires_at - window, session.renew_from)


@dataclasses.dataclass(frozen=True)
class Renewed:
    session: Session
    #: The signed cookie value of ``session``, encoded once for every waiter.
    cookie_value: str


@dataclasses.dataclass(frozen=True)
class Ended:
    """The provider said the grant is over (``invalid_grant``): the session must go."""

    reason: str


@dataclasses.dataclass(frozen=True)
class Unavailable:
    """The provider could not renew now; try again after ``retry_at``."""

    reason: str
    retry_at: float


Outcome = Renewed | Ended | Unavailable


class TTLCache(Generic[K, V]):
    """A bounded map whose entries expire; the oldest entry goes when it is full.

    Safe to share between threads (the WSGI driver's): every compound update
    holds a lock; a read of a live entry takes none.
    """

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self._items: OrderedDict[K, tuple[float, V]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K, now: float) -> V | None:
        """The live value of ``key``; a hit counts as a use (least recently used goes first)."""
        item = self._items.get(key)
        if item is not None and item[0] > now:
            try:  # noqa: SIM105 - contextlib.suppress costs more on this hot path
                self._items.move_to_end(key)
            except KeyError:  # another thread evicted it meanwhile
                pass
            return item[1]
        if item is not None:
            self._items.pop(key, None)
        return None

    def put(self, key: K, value: V, until: float) -> None:
        with self._lock:
            self._items[key] = (until, value)
            self._items.move_to_end(key)
            while len(self._items) > self.maxsize:
                self._items.popitem(last=False)

    def pop(self, key: K) -> None:
        with self._lock:
            self._items.pop(key, None)

    def __len__(self) -> int:
        return len(self._items)


class RefreshResults:
    """Recent refresh outcomes by hash of the refresh token they used.

    A request that still carries the pre-rotation cookie finds the new tokens
    here instead of replaying the rotated refresh token.
    """

    def __init__(self, ttl: float, maxsize: int = 10_000) -> None:
        self.ttl = ttl
        self._cache: TTLCache[str, Renewed | Ended] = TTLCache(maxsize)

    def get(self, key: str, now: float) -> Renewed | Ended | None:
        return self._cache.get(key, now)

    def put(self, key: str, outcome: Renewed | Ended, now: float) -> None:
        self._cache.put(key, outcome, now + self.ttl)


class Backoff:
    """Per-session exponential backoff with jitter after the provider failed."""

    def __init__(self, base: float = 2.0, cap: float = 120.0, maxsize: int = 10_000,
                 rng: Callable[[], float] = random.random) -> None:
        self.base, self.cap = base, cap
        self._rng = rng
        self._state: TTLCache[str, tuple[int, float]] = TTLCache(maxsize)

    def retry_at(self, key: str, now: float) -> float | None:
        """When the next attempt may run, or ``None`` when it may run now."""
        state = self._state.get(key, now)
        if state is None or state[1] <= now:
            return None
        return state[1]

    def failed(self, key: str, now: float, retry_after: float | None = None) -> float:
        previous = self._state.get(key, now)
        attempts = (previous[0] if previous else 0) + 1
        delay = min(self.cap, self.base * 2.0 ** min(attempts - 1, 32))
        delay = delay / 2 + self._rng() * delay / 2  # "equal jitter"
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.cap))
        until = now + delay
        # Remember the attempt count well past the delay so the next failure backs off further.
        self._state.put(key, (attempts, until), until + self.cap * 4)
        return until

    def succeeded(self, key: str) -> None:
        self._state.pop(key)


class AsyncRefreshCoordinator:
    """At most one refresh in flight per refresh token; every waiter shares its outcome."""

    def __init__(self, results: RefreshResults, clock: Callable[[], float]) -> None:
        self.results = results
        self._clock = clock
        self._inflight: dict[str, asyncio.Future[Outcome]] = {}

    async def single_flight(self, key: str, run: Callable[[], Awaitable[Outcome]]) -> Outcome:
        """``run()``'s outcome, run once for all concurrent callers with ``key``."""
        cached = self.results.get(key, self._clock())
        if cached is not None:
            return cached
        future = self._inflight.get(key)
        if future is None:
            # A task, so that a waiter that goes away does not cancel the others' refresh.
            future = asyncio.ensure_future(self._run(key, run))
            self._inflight[key] = future
        return await asyncio.shield(future)

    async def _run(self, key: str, run: Callable[[], Awaitable[Outcome]]) -> Outcome:
        try:
            outcome = await run()
            if isinstance(outcome, (Renewed, Ended)):
                self.results.put(key, outcome, self._clock())
            return outcome
        finally:
            del self._inflight[key]


class _Flight:
    __slots__ = ("done", "error", "outcome")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.outcome: Outcome | None = None
        self.error: BaseException | None = None


class ThreadRefreshCoordinator:
    """The threaded twin of :class:`AsyncRefreshCoordinator`, for WSGI servers with threads.

    The first thread to ask for a key runs the refresh; the others wait on its
    event (a lock per refresh token) and get the same outcome.
    """

    def __init__(self, results: RefreshResults, clock: Callable[[], float]) -> None:
        self.results = results
        self._clock = clock
        self._lock = threading.Lock()
        self._inflight: dict[str, _Flight] = {}

    def single_flight(self, key: str, run: Callable[[], Outcome]) -> Outcome:
        """``run()``'s outcome, run once for all concurrent callers with ``key``."""
        with self._lock:
            cached = self.results.get(key, self._clock())
            if cached is not None:
                return cached
            flight = self._inflight.get(key)
            leader = flight is None
            if flight is None:
                flight = self._inflight[key] = _Flight()
        if not leader:
            flight.done.wait()
            if flight.error is not None:
                raise flight.error
            assert flight.outcome is not None
            return flight.outcome
        try:
            flight.outcome = run()
            if isinstance(flight.outcome, (Renewed, Ended)):
                self.results.put(key, flight.outcome, self._clock())
            return flight.outcome
        except BaseException as exc:
            flight.error = exc
            raise
        finally:
            with self._lock:
                del self._inflight[key]
            flight.done.set()
