"""Stores shared by every process serving the app (see :mod:`.base`), chosen by ``store``."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable

from ..config import Settings
from ..errors import ConfigurationError
from .base import AsyncStore, SyncStore


def namespace(settings: Settings) -> str:
    """A short name of the app's client, so that several apps can share one store."""
    return hashlib.sha256(f"{settings.issuer}\0{settings.client_id}".encode()).hexdigest()[:16]


Clock = Callable[[], float]


def _host_store(settings: Settings, clock: Clock) -> SyncStore:
    from .host import HostStore, default_directory

    directory = settings.store_directory or default_directory(settings.issuer,
                                                              settings.client_id)
    return HostStore(directory, clock=clock)


def _require_redis() -> None:
    try:
        import redis  # noqa: F401
    except ImportError:
        raise ConfigurationError(
            "setting 'store' (RENEWAL_STORE) names Redis: install renewal-middleware[redis]"
        ) from None


def open_sync_store(settings: Settings, clock: Clock = time.time) -> SyncStore:
    """The store ``settings.store`` names, for the WSGI driver."""
    if settings.store == "memory":
        from .memory import MemoryStore

        return MemoryStore(clock=clock)
    if settings.store == "host":
        return _host_store(settings, clock)
    _require_redis()
    from .redis_sync import RedisStore

    return RedisStore(settings.store, namespace(settings), clock=clock)


def open_async_store(settings: Settings, clock: Clock = time.time) -> AsyncStore:
    """The store ``settings.store`` names, for the ASGI driver."""
    if settings.store in ("memory", "host"):
        from .threaded import ThreadedStore

        return ThreadedStore(open_sync_store(settings, clock))
    _require_redis()
    from .redis_async import AsyncRedisStore

    return AsyncRedisStore(settings.store, namespace(settings), clock=clock)
