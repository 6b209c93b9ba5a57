"""The Redis stores (both twins) against a real redis-server on 127.0.0.1.

Each test body is a coroutine run once per twin: the async store directly, the sync
one with each call in a thread (so that a blocked ``lock`` or ``wait_released`` can be
released meanwhile).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from renewal_middleware.errors import ConfigurationError
from renewal_middleware.stores.base import Lineage, StoreUnavailable, Tombstone
from renewal_middleware.stores.redis_async import AsyncRedisStore
from renewal_middleware.stores.redis_keys import Keys
from renewal_middleware.stores.redis_sync import RedisStore
from tests.redis_server import RedisServer

NAMESPACE = "0123456789abcdef"
#: The stores' socket timeout here.
TIMEOUT = 1.0
#: A generous bound on "at once" (slow CI machines).
PROMPTLY = 2.0
#: Waiters woken by one release wake within this of each other.
SPREAD = 0.5  # generous: CI runs several test environments at once on two cores
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.fixture
def admin(redis_server: RedisServer) -> Iterator[redis.Redis]:
    """A plain client of the (emptied) shared server."""
    redis_server.start()
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    yield client
    client.close()


class Threaded:
    """The sync store behind coroutines, each call in a thread."""

    def __init__(self, store: RedisStore) -> None:
        self.store = store
        self.local = store.local

    def __getattr__(self, name: str) -> Callable[..., Awaitable[Any]]:
        method = getattr(self.store, name)

        async def call(*args: Any) -> Any:
            return await asyncio.to_thread(method, *args)

        return call


def open_store(kind: str, url: str, namespace: str = NAMESPACE, **options: Any) -> Any:
    options.setdefault("timeout", TIMEOUT)
    if kind == "sync":
        return Threaded(RedisStore(url, namespace, **options))
    return AsyncRedisStore(url, namespace, **options)


@pytest.fixture(params=["sync", "async"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def make_store(kind: str, redis_server: RedisServer,
                     admin: redis.Redis) -> AsyncIterator[Callable[..., Any]]:
    stores: list[Any] = []

    def make(url: str = redis_server.url, **options: Any) -> Any:
        stores.append(open_store(kind, url, **options))
        return stores[-1]

    yield make
    for store in stores:
        await store.close()


@pytest.fixture
def store(make_store: Callable[..., Any]) -> Any:
    return make_store()


async def eventually(check: Callable[[], bool], within: float = PROMPTLY) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, "never happened"
        await asyncio.sleep(0.02)


def subscribers(admin: redis.Redis, session_id: str) -> int:
    [(_, count)] = admin.pubsub_numsub(Keys(NAMESPACE).done(session_id))
    return int(count)




# -- lineages, tombstones, claims ------------------------------------------------------------

async def test_it_is_shared(store: Any) -> None:
    assert store.local is False


async def test_a_lineage_reads_back_as_written(store: Any) -> None:
    assert await store.read("s1") is None
    await store.write("s1", Lineage(1, "sealed-1"), 60)
    assert await store.read("s1") == Lineage(1, "sealed-1")
    assert await store.read("s2") is None


async def test_a_write_never_replaces_a_newer_generation(store: Any) -> None:
    await store.write("s1", Lineage(2, "two"), 60)
    await store.write("s1", Lineage(1, "one"), 60)
    assert await store.read("s1") == Lineage(2, "two")
    await store.write("s1", Lineage(2, "two again"), 60)
    assert await store.read("s1") == Lineage(2, "two again")
    await store.write("s1", Lineage(3, "three"), 60)
    assert await store.read("s1") == Lineage(3, "three")


async def test_an_ended_lineage_is_never_overwritten(store: Any) -> None:
    await store.write("s1", Lineage(4, "", ended=True), 60)
    await store.write("s1", Lineage(9, "nine"), 60)
    assert await store.read("s1") == Lineage(4, "", ended=True)


async def test_burying_a_session_ends_its_lineage(store: Any) -> None:
    await store.write("s1", Lineage(3, "three"), 60)
    await store.bury([Tombstone("s:s1", 100.0), Tombstone("s:unknown", 100.0)], 60)
    assert await store.read("s1") == Lineage(3, "", ended=True)
    assert await store.read("unknown") == Lineage(0, "", ended=True)
    await store.write("s1", Lineage(4, "four"), 60)
    assert await store.read("s1") == Lineage(3, "", ended=True)


async def test_only_session_tombstones_end_a_lineage(store: Any) -> None:
    await store.write("s1", Lineage(1, "one"), 60)
    await store.bury([Tombstone("sub:s1", 100.0), Tombstone("sid:s1", 100.0)], 60)
    assert await store.read("s1") == Lineage(1, "one")


async def test_tombstones_since_a_time_in_time_order(store: Any) -> None:
    await store.bury([Tombstone("sub:c", 30.0), Tombstone("sid:a", 10.0)], 60)
    await store.bury([Tombstone("s:b", 20.0)], 60)
    await store.bury([], 60)
    assert await store.tombstones(0.0) == [
        Tombstone("sid:a", 10.0), Tombstone("s:b", 20.0), Tombstone("sub:c", 30.0)]
    assert await store.tombstones(20.0) == [Tombstone("s:b", 20.0), Tombstone("sub:c", 30.0)]
    assert await store.tombstones(30.5) == []


async def test_a_tombstone_keeps_its_latest_time(store: Any) -> None:
    await store.bury([Tombstone("sub:x", 50.0)], 60)
    await store.bury([Tombstone("sub:x", 40.0)], 60)
    assert await store.tombstones(0.0) == [Tombstone("sub:x", 50.0)]
    await store.bury([Tombstone("sub:x", 60.0)], 60)
    assert await store.tombstones(0.0) == [Tombstone("sub:x", 60.0)]


async def test_tombstone_times_keep_full_precision(store: Any) -> None:
    at = 1_700_000_000.123456
    await store.bury([Tombstone("sid:p", at)], 60)
    assert await store.tombstones(at) == [Tombstone("sid:p", at)]
    assert await store.tombstones(at + 1e-6) == []


async def test_a_key_is_claimed_once(store: Any) -> None:
    assert await store.claim("jti-1", 60) is True
    assert await store.claim("jti-1", 60) is False
    assert await store.claim("jti-2", 60) is True


async def test_entries_expire_after_their_ttl(store: Any) -> None:
    await store.write("s1", Lineage(5, "five"), 0.2)
    await store.write("s2", Lineage(1, "one"), 60)
    await store.bury([Tombstone("s:s2", 10.0), Tombstone("sub:x", 20.0)], 0.2)
    await store.bury([Tombstone("sid:y", 30.0)], 60)
    assert await store.claim("jti", 0.2) is True
    await asyncio.sleep(0.4)
    assert await store.read("s1") is None
    # The ended lineage lives as long as the lineage it ended (60 s).
    assert await store.read("s2") == Lineage(1, "", ended=True)
    assert await store.tombstones(0.0) == [Tombstone("sid:y", 30.0)]
    assert await store.claim("jti", 0.2) is True
    # An expired lineage is forgotten, generation and all.
    await store.write("s1", Lineage(1, "again"), 60)
    assert await store.read("s1") == Lineage(1, "again")


async def test_expired_tombstones_are_pruned(store: Any, admin: redis.Redis) -> None:
    await store.bury([Tombstone("sub:a", 1.0), Tombstone("sid:b", 2.0)], 0.2)
    await asyncio.sleep(0.3)
    await store.bury([Tombstone("sub:c", 3.0)], 60)
    assert await store.tombstones(0.0) == [Tombstone("sub:c", 3.0)]
    keys = Keys(NAMESPACE)
    assert admin.zcard(keys.tombstones) == admin.zcard(keys.expiries) == 1
    assert 0 < admin.pttl(keys.tombstones) <= 60_000


async def test_apps_sharing_a_redis_are_kept_apart(store: Any,
                                                   make_store: Callable[..., Any]) -> None:
    other = make_store(namespace="fedcba9876543210")
    await store.write("s1", Lineage(1, "mine"), 60)
    await store.bury([Tombstone("sub:x", 1.0)], 60)
    assert await store.claim("jti", 60) is True
    assert await store.lock("s1", 60, 0) is not None
    assert await other.read("s1") is None
    assert await other.tombstones(0.0) == []
    assert await other.claim("jti", 60) is True
    assert await other.lock("s1", 60, 0) is not None


async def test_garbage_in_redis_is_unavailable(store: Any, admin: redis.Redis) -> None:
    admin.set(Keys(NAMESPACE).lineage("s1"), b"not json")
    with pytest.raises(StoreUnavailable):
        await store.read("s1")


@pytest.mark.parametrize("url", ["http://user:hunter2@127.0.0.1/",
                                 "redis://user:hunter2@127.0.0.1:port/0"])
def test_a_url_that_is_not_redis_is_refused_without_quoting_it(url: str) -> None:
    for store_class in (RedisStore, AsyncRedisStore):
        with pytest.raises(ConfigurationError) as caught:
            store_class(url, NAMESPACE)
        assert "hunter2" not in str(caught.value)


# -- locks -----------------------------------------------------------------------------------

async def test_a_lock_excludes_a_second_locker(make_store: Callable[..., Any]) -> None:
    store = make_store(clock=lambda: 1234.5)
    held = await store.lock("s1", 60, 0)
    assert held is not None
    assert held.acquired_at == 1234.5
    assert await store.lock("s1", 60, 0) is None
    assert await make_store().lock("s1", 60, 0) is None
    assert await store.lock("s2", 60, 0) is not None
    await store.release(held)
    assert await store.lock("s1", 60, 0) is not None


async def test_a_waiter_is_woken_as_soon_as_the_lock_is_released(store: Any) -> None:
    held = await store.lock("s1", 60, 0)
    waiter = asyncio.ensure_future(store.lock("s1", 60, 30))
    await asyncio.sleep(0.3)
    assert not waiter.done()
    released = time.time()
    await store.release(held)
    # Long before its wait (30 s) or the holder's TTL (60 s) runs out.
    lock = await asyncio.wait_for(waiter, PROMPTLY)
    assert lock is not None
    assert lock.acquired_at >= released


async def test_a_waiter_gives_up_after_its_wait(store: Any, admin: redis.Redis) -> None:
    assert await store.lock("s1", 60, 0) is not None
    admin.config_resetstat()
    started = time.monotonic()
    assert await store.lock("s1", 60, 1.0) is None
    assert 0.95 <= time.monotonic() - started < 1.0 + PROMPTLY
    # It slept on the release channel instead of asking again and again.
    stats = admin.info("commandstats")
    attempts = sum(stats.get(f"cmdstat_{name}", {}).get("calls", 0)
                   for name in ("evalsha", "eval"))
    assert 1 <= attempts <= 4
    await eventually(lambda: subscribers(admin, "s1") == 0)


async def test_a_lock_never_released_frees_itself_after_its_ttl(store: Any) -> None:
    held = await store.lock("s1", 0.5, 0)
    started = time.monotonic()
    lock = await store.lock("s1", 60, 30)
    assert lock is not None
    assert 0.3 <= time.monotonic() - started < 0.5 + PROMPTLY
    # The first holder's late release must not free the second holder's lock.
    await store.release(held)
    assert await store.lock("s1", 60, 0) is None


async def test_waiters_take_the_lock_one_at_a_time(store: Any) -> None:
    inside: list[int] = []
    overlaps = 0

    async def work(worker: int) -> None:
        nonlocal overlaps
        lock = await store.lock("s1", 60, 30)
        assert lock is not None
        overlaps += bool(inside)
        inside.append(worker)
        await asyncio.sleep(0.05)
        inside.remove(worker)
        await store.release(lock)

    started = time.monotonic()
    await asyncio.gather(*(work(worker) for worker in range(5)))
    assert overlaps == 0
    assert time.monotonic() - started < 5 * 0.05 + PROMPTLY


async def test_a_lock_is_refused_by_a_store_of_another_kind(store: Any) -> None:
    with pytest.raises(TypeError):
        await store.release(object())


async def test_a_cancelled_waiter_unsubscribes(admin: redis.Redis,
                                               redis_server: RedisServer) -> None:
    store = AsyncRedisStore(redis_server.url, NAMESPACE, timeout=TIMEOUT)
    try:
        held = await store.lock("s1", 60, 0)
        waiter = asyncio.ensure_future(store.lock("s1", 60, 30))
        await eventually(lambda: subscribers(admin, "s1") == 1)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        await eventually(lambda: subscribers(admin, "s1") == 0)
        assert held is not None
        await store.release(held)
        assert await store.lock("s1", 60, 0) is not None
    finally:
        await store.close()


HOLDER = """
import sys, time
from renewal_middleware.stores.redis_sync import RedisStore
lock = RedisStore(sys.argv[1], sys.argv[2]).lock("s1", float(sys.argv[3]), 0)
print(repr(lock.acquired_at), flush=True)
time.sleep(60)
"""


async def test_a_killed_holder_frees_the_lock_after_its_ttl(
        store: Any, redis_server: RedisServer) -> None:
    ttl = 1.0
    with subprocess.Popen([sys.executable, "-c", HOLDER, redis_server.url, NAMESPACE, str(ttl)],
                          cwd=ROOT, stdout=subprocess.PIPE) as holder:
        try:
            assert holder.stdout is not None
            held_at = float(await asyncio.to_thread(holder.stdout.readline))
            waiter = asyncio.ensure_future(store.lock("s1", 60, 30))
            await asyncio.sleep(0.1)
            assert not waiter.done()
            os.kill(holder.pid, signal.SIGKILL)
            killed = time.monotonic()
            lock = await asyncio.wait_for(waiter, ttl + PROMPTLY)
            assert lock is not None
            # Freed by the TTL: neither earlier nor much later.
            assert lock.acquired_at >= held_at + ttl - 0.25
            assert time.monotonic() - killed < ttl + PROMPTLY
        finally:
            holder.kill()


# -- waiting for a release ------------------------------------------------------------------

async def test_wait_released_is_true_at_once_when_the_lock_is_free(store: Any,
                                                                   admin: redis.Redis) -> None:
    started = time.monotonic()
    assert await store.wait_released("s1", 30) is True
    assert await store.wait_released("s1", 0) is True
    assert time.monotonic() - started < PROMPTLY
    assert await store.lock("s1", 60, 0) is not None  # it did not take the lock
    await eventually(lambda: subscribers(admin, "s1") == 0)


async def test_wait_released_times_out_with_false(store: Any, admin: redis.Redis) -> None:
    assert await store.lock("s1", 60, 0) is not None
    assert await store.wait_released("s1", 0) is False
    admin.config_resetstat()
    started = time.monotonic()
    assert await store.wait_released("s1", 1.0) is False
    assert 0.95 <= time.monotonic() - started < 1.0 + PROMPTLY
    # It slept on the release channel instead of asking again and again.
    calls = admin.info("commandstats").get("cmdstat_pttl", {}).get("calls", 0)
    assert 1 <= calls <= 4
    await eventually(lambda: subscribers(admin, "s1") == 0)


async def test_wait_released_is_woken_by_the_release_and_leaves_the_lock_free(
        store: Any, admin: redis.Redis) -> None:
    held = await store.lock("s1", 60, 0)
    waiter = asyncio.ensure_future(store.wait_released("s1", 30))
    await eventually(lambda: subscribers(admin, "s1") == 1)
    await asyncio.sleep(0.1)
    assert not waiter.done()
    released = time.monotonic()
    await store.release(held)
    # Long before its wait (30 s) or the holder's TTL (60 s) runs out.
    assert await asyncio.wait_for(waiter, PROMPTLY) is True
    assert time.monotonic() - released < PROMPTLY
    assert await store.lock("s1", 60, 0) is not None
    await eventually(lambda: subscribers(admin, "s1") == 0)


async def test_wait_released_ends_when_the_lock_expires(store: Any) -> None:
    ttl = 1.0
    assert await store.lock("s1", ttl, 0) is not None  # never released
    started = time.monotonic()
    assert await store.wait_released("s1", 30) is True
    # Freed by the TTL: neither earlier nor much later.
    assert ttl - 0.25 <= time.monotonic() - started < ttl + PROMPTLY
    assert await store.lock("s1", 60, 0) is not None


async def test_one_release_wakes_every_waiter_together(store: Any, admin: redis.Redis) -> None:
    held = await store.lock("s1", 60, 0)

    async def wait_for_it() -> tuple[bool, float]:
        answer = await store.wait_released("s1", 30)
        return answer, time.monotonic()

    waiters = [asyncio.ensure_future(wait_for_it()) for _ in range(5)]
    await eventually(lambda: subscribers(admin, "s1") == 5)
    released = time.monotonic()
    await store.release(held)
    results = await asyncio.wait_for(asyncio.gather(*waiters), PROMPTLY)
    assert [answer for answer, _ in results] == [True] * 5
    times = [at for _, at in results]
    assert max(times) - released < PROMPTLY
    assert max(times) - min(times) < SPREAD


WAITER = """
import asyncio, sys, time
url, namespace, kind = sys.argv[1:4]
if kind == "sync":
    from renewal_middleware.stores.redis_sync import RedisStore
    answer, at = RedisStore(url, namespace).wait_released("s1", 30), time.time()
else:
    from renewal_middleware.stores.redis_async import AsyncRedisStore

    async def main():
        store = AsyncRedisStore(url, namespace)
        answer = await store.wait_released("s1", 30)
        at = time.time()
        await store.close()
        return answer, at

    answer, at = asyncio.run(main())
print(answer, repr(at), flush=True)
"""


async def test_one_release_wakes_waiter_processes_together(
        store: Any, kind: str, admin: redis.Redis, redis_server: RedisServer) -> None:
    held = await store.lock("s1", 60, 0)
    command = [sys.executable, "-c", WAITER, redis_server.url, NAMESPACE, kind]
    with contextlib.ExitStack() as processes:
        waiters = []
        for _ in range(4):
            waiters.append(processes.enter_context(
                subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)))
            processes.callback(waiters[-1].kill)  # before the context's wait
        await eventually(lambda: subscribers(admin, "s1") == 4, within=30)
        released = time.time()
        await store.release(held)
        outputs = await asyncio.gather(*(asyncio.to_thread(waiter.communicate, timeout=30)
                                         for waiter in waiters))
    answers = [out.split() for out, _ in outputs]
    assert [answer for answer, _ in answers] == ["True"] * 4
    times = [float(at) for _, at in answers]
    assert released - 0.01 <= min(times) and max(times) < released + PROMPTLY
    assert max(times) - min(times) < SPREAD


async def test_a_cancelled_wait_for_the_release_unsubscribes(admin: redis.Redis,
                                                              redis_server: RedisServer) -> None:
    store = AsyncRedisStore(redis_server.url, NAMESPACE, timeout=TIMEOUT)
    try:
        held = await store.lock("s1", 60, 0)
        waiter = asyncio.ensure_future(store.wait_released("s1", 30))
        await eventually(lambda: subscribers(admin, "s1") == 1)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        await eventually(lambda: subscribers(admin, "s1") == 0)
        assert held is not None
        await store.release(held)
        assert await store.wait_released("s1", 0) is True
    finally:
        await store.close()


# -- faults ----------------------------------------------------------------------------------

@pytest.fixture
def own_server() -> Iterator[RedisServer]:
    """A server of the test's own, which it may stop."""
    with RedisServer() as server:
        yield server


def every_call(store: Any, lock: Any) -> dict[str, Callable[[], Awaitable[Any]]]:
    return {
        "read": lambda: store.read("s1"),
        "write": lambda: store.write("s1", Lineage(2, "two"), 60),
        "lock": lambda: store.lock("s1", 60, 5),
        "release": lambda: store.release(lock),
        "wait_released": lambda: store.wait_released("s1", 5),
        "bury": lambda: store.bury([Tombstone("s:s1", 1.0)], 60),
        "tombstones": lambda: store.tombstones(0.0),
        "claim": lambda: store.claim("jti", 60),
    }


async def assert_unavailable(store: Any, lock: Any, server: RedisServer) -> None:
    for name, call in every_call(store, lock).items():
        started = time.monotonic()
        with pytest.raises(StoreUnavailable) as caught:
            await call()
        assert time.monotonic() - started < TIMEOUT + PROMPTLY, name
        assert str(server.port) not in str(caught.value), name


async def assert_works(store: Any, session_id: str) -> None:
    await store.write(session_id, Lineage(1, "one"), 60)
    assert await store.read(session_id) == Lineage(1, "one")
    lock = await store.lock(session_id, 60, 5)
    assert lock is not None
    await store.release(lock)
    assert await store.wait_released(session_id, 0) is True
    await store.bury([Tombstone(f"sub:{session_id}", 5.0)], 60)
    assert Tombstone(f"sub:{session_id}", 5.0) in await store.tombstones(0.0)
    assert await store.claim(f"jti-{session_id}", 60) is True


async def test_a_stopped_redis_fails_every_call_and_the_store_recovers(
        kind: str, own_server: RedisServer) -> None:
    store = open_store(kind, own_server.url)
    try:
        await assert_works(store, "s0")
        held = await store.lock("s1", 60, 0)
        own_server.stop()
        await assert_unavailable(store, held, own_server)
        own_server.start()
        await assert_works(store, "s1")
    finally:
        await store.close()


async def test_a_frozen_redis_times_out_and_the_store_recovers(
        kind: str, own_server: RedisServer) -> None:
    store = open_store(kind, own_server.url, timeout=0.5)
    try:
        await assert_works(store, "s0")
        held = await store.lock("s1", 60, 0)
        own_server.pause()
        await assert_unavailable(store, held, own_server)
        own_server.resume()
        # Commands sent before the timeouts may still run now: use fresh keys.
        await assert_works(store, "s2")
    finally:
        await store.close()


@pytest.mark.parametrize("call", ["lock", "wait_released"])
async def test_a_waiter_fails_promptly_when_redis_goes_away(
        kind: str, own_server: RedisServer, call: str) -> None:
    store = open_store(kind, own_server.url)
    try:
        assert await store.lock("s1", 60, 0) is not None
        waiter = asyncio.ensure_future(store.lock("s1", 60, 30) if call == "lock"
                                       else store.wait_released("s1", 30))
        await asyncio.sleep(0.3)
        own_server.stop()
        with pytest.raises(StoreUnavailable):
            await asyncio.wait_for(waiter, PROMPTLY)
        own_server.start()
        await assert_works(store, "s2")
    finally:
        await store.close()
