"""The store calls a flow of the core asks for, and how each driver performs them.

Like the provider calls of :mod:`renewal_middleware.oidc`, the core yields these
and the driver runs them on its store (sync or async); a failure comes back into
the flow as :class:`~renewal_middleware.stores.base.StoreUnavailable`.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from .base import AsyncStore, Lineage, Lock, StoreUnavailable, SyncStore, Tombstone

logger = logging.getLogger("renewal_middleware")


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


@contextmanager
def _as_unavailable() -> Iterator[None]:
    """Whatever a store raises reaches the flow as StoreUnavailable, never as a 500."""
    try:
        yield
    except StoreUnavailable:
        raise
    except Exception as exc:
        logger.exception("the store failed")
        raise StoreUnavailable(f"the store failed ({type(exc).__name__})") from exc


class HeldLocks:
    """The locks a flow took and has not released, for its driver to release at its end."""

    def __init__(self) -> None:
        self.locks: list[Lock] = []

    def note(self, effect: object, answer: object) -> None:
        if isinstance(effect, TakeLock) and answer is not None:
            self.locks.append(answer)  # type: ignore[arg-type]
        elif isinstance(effect, ReleaseLock) and effect.lock in self.locks:
            self.locks.remove(effect.lock)


def perform(store: SyncStore, effect: StoreEffect) -> Any:
    """Run ``effect`` on a sync store."""
    with _as_unavailable():
        return _perform(store, effect)


async def perform_async(store: AsyncStore, effect: StoreEffect) -> Any:
    """Run ``effect`` on an async store."""
    with _as_unavailable():
        return await _perform_async(store, effect)


def _perform(store: SyncStore, effect: StoreEffect) -> Any:
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


async def _perform_async(store: AsyncStore, effect: StoreEffect) -> Any:
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
