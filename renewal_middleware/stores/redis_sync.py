"""The store shared through Redis by every process of every host, for the WSGI driver.

Lineages, tombstones and claims are Redis keys (see :mod:`.redis_keys`), changed by
Lua scripts where a change must be atomic. A lock waiter subscribes to the lock's
release channel and sleeps on it, so a release wakes it at once; it also wakes when
the holder's TTL runs out (a holder that died frees the lock then). Waiting for the
release without taking the lock sleeps on the same channel: one release wakes every
such waiter together.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.client import PubSub
from redis.exceptions import RedisError
from redis.retry import Retry

from ..errors import ConfigurationError
from . import redis_keys as rk
from .base import Lineage, Lock, StoreUnavailable, Tombstone
from .redis_keys import RedisLock


@contextmanager
def _guarded() -> Iterator[None]:
    """Turn every Redis or socket failure into :class:`StoreUnavailable`."""
    try:
        yield
    except (RedisError, OSError) as exc:
        raise rk.unavailable(exc) from exc


def _client(url: str, timeout: float) -> redis.Redis:
    try:
        # No retries: a failure must surface within ``timeout`` (the callers carry on).
        return redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout,
                                    retry=Retry(NoBackoff(), 0))
    except ValueError:
        # The message could quote the URL, and with it a password.
        raise ConfigurationError(
            "setting 'store' (RENEWAL_STORE) is not a valid Redis URL") from None


class RedisStore:
    """A :class:`~renewal_middleware.stores.base.SyncStore` in Redis at ``url``.

    ``namespace`` sets the app's keys apart from other apps' in the same Redis;
    ``clock`` gives :attr:`~RedisLock.acquired_at` (expiries follow Redis's clock);
    every call fails with :class:`StoreUnavailable` within about ``timeout`` seconds
    when Redis does not answer.
    """

    local = False

    def __init__(self, url: str, namespace: str, *, clock: Callable[[], float] = time.time,
                 timeout: float = 2.0) -> None:
        self._clock = clock
        self._timeout = timeout
        self._keys = rk.Keys(namespace)
        self._client = _client(url, timeout)
        self._write = self._client.register_script(rk.WRITE)
        self._acquire = self._client.register_script(rk.ACQUIRE)
        self._release = self._client.register_script(rk.RELEASE)
        self._bury = self._client.register_script(rk.BURY)
        self._tombstones = self._client.register_script(rk.TOMBSTONES)

    def read(self, session_id: str) -> Lineage | None:
        with _guarded():
            raw = self._client.get(self._keys.lineage(session_id))
        return rk.decode_lineage(raw)

    def write(self, session_id: str, lineage: Lineage, ttl: float) -> None:
        with _guarded():
            self._write(keys=[self._keys.lineage(session_id)],
                        args=[lineage.generation, rk.encode_lineage(lineage),
                              rk.milliseconds(ttl)])

    def lock(self, session_id: str, ttl: float, wait: float) -> RedisLock | None:
        deadline = time.monotonic() + max(wait, 0.0)
        key = self._keys.lock(session_id)
        token = secrets.token_hex(16)
        with _guarded():
            if self._take(key, token, ttl) == 0:
                return RedisLock(session_id, token, self._clock())
            if wait <= 0:
                return None
            if self._wait(session_id, token, ttl, deadline):
                return RedisLock(session_id, token, self._clock())
        return None

    def _take(self, key: str, token: str, ttl: float) -> int:
        """0 when the lock is now ours, else the holder's milliseconds left."""
        left: Any = self._acquire(keys=[key], args=[token, rk.milliseconds(ttl)])
        if not isinstance(left, int) or left < 0:
            raise StoreUnavailable("Redis answered a malformed lock reply")
        return left

    def _wait(self, session_id: str, token: str, ttl: float, deadline: float) -> bool:
        """Take the lock once it is released or expires, before ``deadline``."""
        key = self._keys.lock(session_id)
        return self._sleep_until(session_id, lambda: self._take(key, token, ttl), deadline)

    def wait_released(self, session_id: str, wait: float) -> bool:
        deadline = time.monotonic() + max(wait, 0.0)
        key = self._keys.lock(session_id)
        with _guarded():
            if wait <= 0:
                return rk.held_for(self._client.pttl(key)) == 0
            return self._sleep_until(session_id, lambda: rk.held_for(self._client.pttl(key)),
                                     deadline, released=True)

    def _sleep_until(self, session_id: str, check: Callable[[], int], deadline: float,
                     released: bool = False) -> bool:
        """Call ``check`` (0 when done, else the holder's milliseconds left) until it
        answers 0, asleep on the release channel in between; ``False`` at ``deadline``.
        With ``released``, a release message is enough (no second look at the lock): the
        waiters only need the result the winner stored before releasing."""
        pubsub = self._client.pubsub()  # type: ignore[no-untyped-call,unused-ignore]
        try:
            pubsub.subscribe(self._keys.done(session_id))
            # Subscribed before checking: a release in between still wakes us.
            self._confirm(pubsub)
            while True:
                left = check()
                if left == 0:
                    return True
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                # Any message is a release; the holder's TTL running out frees it too.
                message = pubsub.get_message(timeout=min(remaining, left / 1000))
                if released and isinstance(message, dict) and message.get("type") == "message":
                    return True
        finally:
            pubsub.close()

    def _confirm(self, pubsub: PubSub) -> None:
        message = pubsub.get_message(timeout=self._timeout)
        if not isinstance(message, dict) or message.get("type") != "subscribe":
            raise StoreUnavailable("Redis did not confirm a subscription")

    def release(self, lock: Lock) -> None:
        if not isinstance(lock, RedisLock):
            raise TypeError(f"not a lock of this store: {lock!r}")
        with _guarded():
            self._release(keys=[self._keys.lock(lock.session_id)],
                          args=[lock.token, self._keys.done(lock.session_id)])

    def bury(self, tombstones: Sequence[Tombstone], ttl: float) -> None:
        if not tombstones:
            return
        keys, args = self._keys.bury(tombstones, ttl)
        with _guarded():
            self._bury(keys=keys, args=args)

    def tombstones(self, since: float) -> list[Tombstone]:
        with _guarded():
            raw = self._tombstones(keys=[self._keys.tombstones, self._keys.expiries],
                                   args=[rk.score(since)])
        return rk.decode_tombstones(raw)

    def claim(self, key: str, ttl: float) -> bool:
        with _guarded():
            claimed = self._client.set(self._keys.claim(key), b"1", nx=True,
                                       px=rk.milliseconds(ttl))
        return bool(claimed)

    def close(self) -> None:
        with _guarded():
            self._client.close()
