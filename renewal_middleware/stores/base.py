"""What every process serving the app shares about a session: the store's interface.

A session's *lineage* is its id (in the cookie), a generation number that each
renewal increments, and the newest generation's tokens, sealed (signed and
encrypted with the cookie keys). A lineage may end: logout, a grant the provider
revoked. Tombstones record ended sessions by key (``s:<session id>``,
``sid:<provider session id>``, ``sub:<subject>``) for the per-process copies
that keep the pass-through free of store calls.

Two twins, :class:`SyncStore` (the WSGI driver) and :class:`AsyncStore` (the ASGI
driver), with the same methods. Every method may raise :class:`StoreUnavailable`;
the callers then carry on without the store (and log it).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Protocol

from ..errors import RenewalError


class StoreUnavailable(RenewalError):
    """The shared store could not be reached or answered garbage."""

    code = "store_unavailable"
    status = 503


@dataclasses.dataclass(frozen=True)
class Lineage:
    """The newest known state of one session."""

    generation: int
    #: The newest generation's session payload, sealed by the core ("" once ended).
    sealed: str
    #: The session is over (logout, revoked grant): no cookie may be set for it again.
    ended: bool = False


@dataclasses.dataclass(frozen=True)
class Tombstone:
    key: str
    #: When the session(s) it names ended (Unix time): a ``sub:`` tombstone ends the
    #: sessions of that subject that began before it.
    at: float


class Lock(Protocol):
    """A held lock; :meth:`release` (or its owner's death, or its TTL) frees it."""

    #: When the lock was acquired (Unix time), after any waiting.
    acquired_at: float


class SyncStore(Protocol):
    #: ``True`` when one process is all there is (nothing to sync).
    local: bool

    def read(self, session_id: str) -> Lineage | None:
        """The lineage of ``session_id``, or ``None`` when the store knows nothing of it."""

    def write(self, session_id: str, lineage: Lineage, ttl: float) -> None:
        """Keep ``lineage`` for ``ttl`` seconds, unless the stored one is newer or ended."""

    def lock(self, session_id: str, ttl: float, wait: float) -> Lock | None:
        """Take the session's renewal lock, waiting at most ``wait`` seconds (woken when
        it is released, never by polling); ``None`` on timeout. The lock frees itself
        after ``ttl`` seconds (or when its owner dies) if it is not released."""

    def release(self, lock: Lock) -> None:
        """Free ``lock`` and wake the waiters (harmless when it already expired)."""

    def wait_released(self, session_id: str, wait: float) -> bool:
        """Block until the session's renewal lock is free (released, expired, or its holder
        died), at most ``wait`` seconds, without taking it; ``True`` when it is free (at once
        when it is not held), ``False`` on timeout. Woken by the release, never by polling,
        so that every waiter wakes together."""

    def bury(self, tombstones: Sequence[Tombstone], ttl: float) -> None:
        """Record tombstones for ``ttl`` seconds (an ``s:`` one also ends that lineage)."""

    def tombstones(self, since: float) -> list[Tombstone]:
        """Tombstones recorded at or after ``since`` (Unix time)."""

    def claim(self, key: str, ttl: float) -> bool:
        """``True`` the first time ``key`` is claimed within ``ttl`` seconds (replay checks)."""

    def close(self) -> None: ...


class AsyncStore(Protocol):
    local: bool

    async def read(self, session_id: str) -> Lineage | None: ...

    async def write(self, session_id: str, lineage: Lineage, ttl: float) -> None: ...

    async def lock(self, session_id: str, ttl: float, wait: float) -> Lock | None: ...

    async def release(self, lock: Lock) -> None: ...

    async def wait_released(self, session_id: str, wait: float) -> bool: ...

    async def bury(self, tombstones: Sequence[Tombstone], ttl: float) -> None: ...

    async def tombstones(self, since: float) -> list[Tombstone]: ...

    async def claim(self, key: str, ttl: float) -> bool: ...

    async def close(self) -> None: ...
