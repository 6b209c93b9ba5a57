"""The store calls a flow of the core asks for, and how each driver performs them.

Like the provider calls of :mod:`renewal_middleware.oidc`, the core yields these
and the driver runs them on its store (sync or async); a failure comes back into
the flow as :class:`~renewal_middleware.stores.base.StoreUnavailable`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from .base import AsyncStore, Lineage, Lock, SyncStore, Tombstone


@dataclasses.dataclass(frozen=True)
class ReadLineage:
    session_id: str


@dataclasses.dataclass(frozen=True)
class WriteLineage:
    session_id: str
    lineage: Lineage
    ttl: float


@dataclasses.dataclass(frozen=True)
class TakeLock:
    """Answered with a :class:`~renewal_middleware.stores.base.Lock`, or ``None`` on timeout."""

    session_id: str
    ttl: float
    wait: float


@dataclasses.dataclass(frozen=True)
class ReleaseLock:
    lock: Lock


@dataclasses.dataclass(frozen=True)
class AwaitRelease:
    """Answered with ``True`` once the session's lock is free (without taking it), or
    ``False`` when ``wait`` seconds passed first."""

    session_id: str
    wait: float


@dataclasses.dataclass(frozen=True)
class Bury:
    tombstones: Sequence[Tombstone]
    ttl: float


@dataclasses.dataclass(frozen=True)
class Claim:
    """Answered with ``True`` the first time ``key`` is claimed (replay checks)."""

    key: str
    ttl: float


StoreEffect = (ReadLineage | WriteLineage | TakeLock | ReleaseLock | AwaitRelease | Bury
               | Claim)


def perform(store: SyncStore, effect: StoreEffect) -> Any:
    """Run ``effect`` on a sync store."""
    if isinstance(effect, ReadLineage):
        return store.read(effect.session_id)
    if isinstance(effect, WriteLineage):
        return store.write(effect.session_id, effect.lineage, effect.ttl)
    if isinstance(effect, TakeLock):
        return store.lock(effect.session_id, effect.ttl, effect.wait)
    if isinstance(effect, ReleaseLock):
        return store.release(effect.lock)
    if isinstance(effect, AwaitRelease):
        return store.wait_released(effect.session_id, effect.wait)
    if isinstance(effect, Bury):
        return store.bury(effect.tombstones, effect.ttl)
    return store.claim(effect.key, effect.ttl)


async def perform_async(store: AsyncStore, effect: StoreEffect) -> Any:
    """Run ``effect`` on an async store."""
    if isinstance(effect, ReadLineage):
        return await store.read(effect.session_id)
    if isinstance(effect, WriteLineage):
        return await store.write(effect.session_id, effect.lineage, effect.ttl)
    if isinstance(effect, TakeLock):
        return await store.lock(effect.session_id, effect.ttl, effect.wait)
    if isinstance(effect, ReleaseLock):
        return await store.release(effect.lock)
    if isinstance(effect, AwaitRelease):
        return await store.wait_released(effect.session_id, effect.wait)
    if isinstance(effect, Bury):
        return await store.bury(effect.tombstones, effect.ttl)
    return await store.claim(effect.key, effect.ttl)
