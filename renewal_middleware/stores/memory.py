"""The store of a single process: dictionaries behind one mutex (WSGI servers use threads)."""

from __future__ import annotations

import dataclasses
import secrets
import threading
import time
from collections.abc import Callable, Sequence

from .base import Lineage, Lock, Tombstone

#: Expired entries are dropped at most this often (seconds of the store's clock).
PURGE_INTERVAL = 60.0


@dataclasses.dataclass(eq=False)
class MemoryLock:
    """A renewal lock held in a :class:`MemoryStore`."""

    session_id: str
    #: Tells this holder apart from a later one that took the lock after it expired.
    token: str
    acquired_at: float


@dataclasses.dataclass
class _Held:
    token: str
    expires: float


@dataclasses.dataclass
class _Waiters:
    condition: threading.Condition
    count: int = 0


class MemoryStore:
    """A :class:`~renewal_middleware.stores.base.SyncStore` for one process.

    Entries expire by ``clock`` (Unix time); a lock waiter (or one waiting for its
    release) sleeps on a condition variable until the lock is released or its
    holder's TTL runs out.
    """

    local = True

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._mutex = threading.Lock()
        self._lineages: dict[str, tuple[Lineage, float]] = {}
        self._tombstones: dict[str, tuple[float, float]] = {}  # key: (at, expires)
        self._claims: dict[str, float] = {}
        self._locks: dict[str, _Held] = {}
        self._waiters: dict[str, _Waiters] = {}
        self._purged = clock()

    def read(self, session_id: str) -> Lineage | None:
        with self._mutex:
            entry = self._lineages.get(session_id)
            if entry is None or entry[1] <= self._clock():
                return None
            return entry[0]

    def write(self, session_id: str, lineage: Lineage, ttl: float) -> None:
        with self._mutex:
            now = self._clock()
            self._purge(now)
            entry = self._lineages.get(session_id)
            if entry is not None and entry[1] > now:
                stored = entry[0]
                if stored.ended or stored.generation > lineage.generation:
                    return
            self._lineages[session_id] = (lineage, now + ttl)

    def lock(self, session_id: str, ttl: float, wait: float) -> MemoryLock | None:
        deadline = time.monotonic() + max(wait, 0.0)
        with self._mutex:
            while True:
                now = self._clock()
                held = self._locks.get(session_id)
                if held is None or held.expires <= now:
                    token = secrets.token_hex(16)
                    self._locks[session_id] = _Held(token, now + ttl)
                    return MemoryLock(session_id, token, now)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                # Also wake when the holder's TTL runs out: the lock is free then.
                self._wait(session_id, min(remaining, held.expires - now))

    def wait_released(self, session_id: str, wait: float) -> bool:
        deadline = time.monotonic() + max(wait, 0.0)
        with self._mutex:
            while True:
                now = self._clock()
                held = self._locks.get(session_id)
                if held is None or held.expires <= now:
                    return True
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._wait(session_id, min(remaining, held.expires - now))

    def _wait(self, session_id: str, timeout: float) -> None:
        """Sleep until the session's lock is released or ``timeout`` (mutex held)."""
        waiters = self._waiters.get(session_id)
        if waiters is None:
            waiters = self._waiters[session_id] = _Waiters(threading.Condition(self._mutex))
        waiters.count += 1
        try:
            waiters.condition.wait(timeout)
        finally:
            waiters.count -= 1
            if waiters.count == 0:
                del self._waiters[session_id]

    def release(self, lock: Lock) -> None:
        if not isinstance(lock, MemoryLock):
            raise TypeError(f"not a lock of this store: {lock!r}")
        with self._mutex:
            held = self._locks.get(lock.session_id)
            if held is None or held.token != lock.token:
                return  # expired, and maybe taken by someone else since
            del self._locks[lock.session_id]
            waiters = self._waiters.get(lock.session_id)
            if waiters is not None:
                waiters.condition.notify_all()

    def bury(self, tombstones: Sequence[Tombstone], ttl: float) -> None:
        with self._mutex:
            now = self._clock()
            self._purge(now)
            expires = now + ttl
            for tombstone in tombstones:
                old = self._tombstones.get(tombstone.key)
                if old is not None and old[1] > now:
                    # The later time ends more sessions of a subject.
                    self._tombstones[tombstone.key] = (max(old[0], tombstone.at),
                                                       max(old[1], expires))
                else:
                    self._tombstones[tombstone.key] = (tombstone.at, expires)
                if tombstone.key.startswith("s:"):
                    self._end(tombstone.key[2:], now, expires)

    def _end(self, session_id: str, now: float, expires: float) -> None:
        """Mark the lineage of ``session_id`` ended (mutex held)."""
        entry = self._lineages.get(session_id)
        if entry is not None and entry[1] > now:
            generation, expires = entry[0].generation, max(entry[1], expires)
        else:
            generation = 0
        self._lineages[session_id] = (Lineage(generation, "", ended=True), expires)

    def tombstones(self, since: float) -> list[Tombstone]:
        with self._mutex:
            now = self._clock()
            found = [Tombstone(key, at) for key, (at, expires) in self._tombstones.items()
                     if at >= since and expires > now]
        return sorted(found, key=lambda tombstone: tombstone.at)

    def claim(self, key: str, ttl: float) -> bool:
        with self._mutex:
            now = self._clock()
            self._purge(now)
            expires = self._claims.get(key)
            if expires is not None and expires > now:
                return False
            self._claims[key] = now + ttl
            return True

    def close(self) -> None:
        """Nothing to free: the dictionaries go with the store."""

    def _purge(self, now: float) -> None:
        """Drop expired entries, at most once per :data:`PURGE_INTERVAL` (mutex held)."""
        if now - self._purged < PURGE_INTERVAL:
            return
        self._purged = now
        self._lineages = {k: v for k, v in self._lineages.items() if v[1] > now}
        self._tombstones = {k: v for k, v in self._tombstones.items() if v[1] > now}
        self._claims = {k: v for k, v in self._claims.items() if v > now}
        self._locks = {k: v for k, v in self._locks.items() if v.expires > now}
