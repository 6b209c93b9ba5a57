"""An :class:`~renewal_middleware.stores.base.AsyncStore` over a local sync store.

The memory and host stores answer in well under a millisecond, so their calls run
inline on the event loop; only a :meth:`ThreadedStore.lock` that may wait and
:meth:`ThreadedStore.wait_released`, which wait for another renewal, run in a thread
of their own.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from .base import Lineage, Lock, StoreUnavailable, SyncStore, Tombstone

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: Lock waits at once; more wait for a free thread (their ``wait`` still bounds them).
LOCK_THREADS = 32


class ThreadedStore:
    """``sync_store``'s methods as coroutines; lock waits run in ``LOCK_THREADS`` threads."""

    def __init__(self, sync_store: SyncStore) -> None:
        self.sync_store = sync_store
        self.local = sync_store.local
        self._executor = concurrent.futures.ThreadPoolExecutor(
            LOCK_THREADS, thread_name_prefix="renewal-store")
        self._closed = False

    async def read(self, session_id: str) -> Lineage | None:
        return self.sync_store.read(session_id)

    async def write(self, session_id: str, lineage: Lineage, ttl: float) -> None:
        self.sync_store.write(session_id, lineage, ttl)

    def _check_open(self) -> None:
        if self._closed:
            raise StoreUnavailable("the store is closed")

    def _submit(self, call: Callable[..., T], *args: Any) -> concurrent.futures.Future[T]:
        self._check_open()  # only close() shuts the executor down, on this same loop
        return self._executor.submit(call, *args)

    async def lock(self, session_id: str, ttl: float, wait: float) -> Lock | None:
        if wait <= 0:  # a try, answered at once: no thread (a renewal's first attempt)
            self._check_open()
            return self.sync_store.lock(session_id, ttl, 0)
        future = self._submit(self.sync_store.lock, session_id, ttl, wait)
        try:
            return await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            # The thread may still take the lock, with nobody left to release it.
            future.add_done_callback(self._release_abandoned)
            raise

    async def wait_released(self, session_id: str, wait: float) -> bool:
        """Wait in a thread, like :meth:`lock` (a cancelled wait still ends within ``wait``)."""
        return await asyncio.wrap_future(
            self._submit(self.sync_store.wait_released, session_id, wait))

    def _release_abandoned(self, future: concurrent.futures.Future[Lock | None]) -> None:
        if future.cancelled() or future.exception() is not None:
            return
        lock = future.result()
        if lock is None:
            return
        try:
            self.sync_store.release(lock)
        except StoreUnavailable:
            logger.warning("an abandoned renewal lock was left to expire", exc_info=True)

    async def release(self, lock: Lock) -> None:
        self.sync_store.release(lock)

    async def bury(self, tombstones: Sequence[Tombstone], ttl: float) -> None:
        self.sync_store.bury(tombstones, ttl)

    async def tombstones(self, since: float) -> list[Tombstone]:
        return self.sync_store.tombstones(since)

    async def claim(self, key: str, ttl: float) -> bool:
        return self.sync_store.claim(key, ttl)

    async def close(self) -> None:
        """Close the sync store; lock waits still running end within their ``wait``."""
        self._closed = True
        self._executor.shutdown(wait=False, cancel_futures=True)
        self.sync_store.close()
