"""The store contract, on the memory and host stores, called directly and through ThreadedStore.

The host store also gets real processes: they share writes, a holder killed with
SIGKILL frees its lock at once, and processes waiting for a release all wake at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Coroutine, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pytest

from renewal_middleware.errors import ConfigurationError
from renewal_middleware.stores.base import Lineage, Lock, StoreUnavailable, SyncStore, Tombstone
from renewal_middleware.stores.effects import (
    AwaitRelease,
    ReleaseLock,
    TakeLock,
    perform,
    perform_async,
)
from renewal_middleware.stores.host import HostStore, default_directory
from renewal_middleware.stores.memory import MemoryStore
from renewal_middleware.stores.threaded import ThreadedStore
from tests.unit.helpers import FakeClock

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[2]
WAIT = 5.0  # a waiter woken by a release gets the lock well within WAIT / 2
PROMPTLY = 1.0  # "at once", generously
SPREAD = 0.5  # waiters woken by one release wake within this of each other (CI runs loaded)


class LoopThread:
    """An event loop running in its own thread, so that blocking tests can drive coroutines."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=30)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()
        self.loop.close()


class ViaLoop:
    """A ThreadedStore seen as a SyncStore: each call is a coroutine run on ``LoopThread``."""

    def __init__(self, store: ThreadedStore, loop: LoopThread) -> None:
        self.store, self.loop, self.local = store, loop, store.local

    def read(self, session_id: str) -> Lineage | None:
        return self.loop.run(self.store.read(session_id))

    def write(self, session_id: str, lineage: Lineage, ttl: float) -> None:
        self.loop.run(self.store.write(session_id, lineage, ttl))

    def lock(self, session_id: str, ttl: float, wait: float) -> Lock | None:
        return self.loop.run(self.store.lock(session_id, ttl, wait))

    def release(self, lock: Lock) -> None:
        self.loop.run(self.store.release(lock))

    def wait_released(self, session_id: str, wait: float) -> bool:
        return self.loop.run(self.store.wait_released(session_id, wait))

    def bury(self, tombstones: Sequence[Tombstone], ttl: float) -> None:
        self.loop.run(self.store.bury(tombstones, ttl))

    def tombstones(self, since: float) -> list[Tombstone]:
        return self.loop.run(self.store.tombstones(since))

    def claim(self, key: str, ttl: float) -> bool:
        return self.loop.run(self.store.claim(key, ttl))

    def close(self) -> None:
        self.loop.run(self.store.close())


def make_store(kind: str, tmp_path: Path, clock: FakeClock) -> SyncStore:
    if kind == "memory":
        return MemoryStore(clock=clock)
    return HostStore(str(tmp_path / "store"), clock=clock)


@pytest.fixture(params=["memory-sync", "memory-async", "host-sync", "host-async"])
def store(request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock) -> Iterator[Any]:
    kind, mode = request.param.split("-")
    sync_store = make_store(kind, tmp_path, clock)
    if mode == "sync":
        yield sync_store
        sync_store.close()
        return
    loop = LoopThread()
    via_loop = ViaLoop(ThreadedStore(sync_store), loop)
    yield via_loop
    via_loop.close()
    loop.stop()


@pytest.fixture
def host(tmp_path: Path) -> Iterator[HostStore]:
    store = HostStore(str(tmp_path / "store"))
    yield store
    store.close()


# --- the contract -------------------------------------------------------------------------


def test_local_tells_one_process_from_a_host(store: SyncStore) -> None:
    wrapped = store.store.sync_store if isinstance(store, ViaLoop) else store
    assert store.local is isinstance(wrapped, MemoryStore)


def test_read_of_an_unknown_session_is_none(store: SyncStore) -> None:
    assert store.read("nobody") is None


def test_write_then_read(store: SyncStore) -> None:
    store.write("s1", Lineage(1, "sealed-1"), 3600)
    store.write("s2", Lineage(7, "sealed-7"), 3600)
    assert store.read("s1") == Lineage(1, "sealed-1")
    assert store.read("s2") == Lineage(7, "sealed-7")


def test_write_keeps_a_newer_generation(store: SyncStore) -> None:
    store.write("s1", Lineage(3, "third"), 3600)
    store.write("s1", Lineage(2, "second"), 3600)
    assert store.read("s1") == Lineage(3, "third")
    store.write("s1", Lineage(4, "fourth"), 3600)
    assert store.read("s1") == Lineage(4, "fourth")
    store.write("s1", Lineage(4, "fourth again"), 3600)
    assert store.read("s1") == Lineage(4, "fourth again")


def test_an_ended_lineage_is_never_overwritten(store: SyncStore) -> None:
    store.write("s1", Lineage(2, "", ended=True), 3600)
    store.write("s1", Lineage(9, "revived"), 3600)
    assert store.read("s1") == Lineage(2, "", ended=True)


def test_a_session_tombstone_ends_the_lineage(store: SyncStore, clock: FakeClock) -> None:
    store.write("s1", Lineage(4, "fourth"), 3600)
    store.write("s2", Lineage(1, "first"), 3600)
    store.bury([Tombstone("s:s1", clock()), Tombstone("s:unknown", clock()),
                Tombstone("sid:s2", clock()), Tombstone("sub:s2", clock())], 3600)
    assert store.read("s1") == Lineage(4, "", ended=True)
    assert store.read("unknown") == Lineage(0, "", ended=True)
    assert store.read("s2") == Lineage(1, "first")  # only ``s:`` names a lineage
    store.write("s1", Lineage(5, "fifth"), 3600)
    assert store.read("s1") == Lineage(4, "", ended=True)


def test_tombstones_since(store: SyncStore, clock: FakeClock) -> None:
    now = clock()
    store.bury([Tombstone("s:old", now - 10), Tombstone("sid:x", now)], 3600)
    store.bury([Tombstone("sub:y", now + 10)], 3600)
    assert store.tombstones(now) == [Tombstone("sid:x", now), Tombstone("sub:y", now + 10)]
    assert store.tombstones(now + 11) == []
    assert {t.key for t in store.tombstones(0)} == {"s:old", "sid:x", "sub:y"}


def test_a_tombstone_buried_again_keeps_the_later_time(store: SyncStore, clock: FakeClock) -> None:
    now = clock()
    store.bury([Tombstone("sub:y", now)], 3600)
    store.bury([Tombstone("sub:y", now + 5)], 3600)
    store.bury([Tombstone("sub:y", now + 1)], 3600)
    assert store.tombstones(0) == [Tombstone("sub:y", now + 5)]


def test_claim_is_true_only_the_first_time(store: SyncStore, clock: FakeClock) -> None:
    assert store.claim("jti:1", 60) is True
    assert store.claim("jti:1", 60) is False
    assert store.claim("jti:2", 60) is True
    clock.advance(59)
    assert store.claim("jti:1", 60) is False
    clock.advance(2)
    assert store.claim("jti:1", 60) is True
    assert store.claim("jti:1", 60) is False


def test_entries_expire_by_the_clock(store: SyncStore, clock: FakeClock) -> None:
    store.write("s1", Lineage(5, "fifth"), 10)
    store.bury([Tombstone("sid:x", clock())], 10)
    clock.advance(9)
    assert store.read("s1") == Lineage(5, "fifth")
    assert [t.key for t in store.tombstones(0)] == ["sid:x"]
    clock.advance(2)
    assert store.read("s1") is None
    assert store.tombstones(0) == []
    store.write("s1", Lineage(1, "a new first"), 10)  # an expired lineage is no more
    assert store.read("s1") == Lineage(1, "a new first")


def test_an_expired_ended_lineage_is_no_more(store: SyncStore, clock: FakeClock) -> None:
    store.write("s1", Lineage(3, "third"), 10)
    clock.advance(11)
    store.bury([Tombstone("s:s1", clock())], 10)
    assert store.read("s1") == Lineage(0, "", ended=True)
    clock.advance(11)
    store.write("s1", Lineage(1, "first"), 10)
    assert store.read("s1") == Lineage(1, "first")


def test_a_lock_excludes_a_second_locker_until_released(store: SyncStore,
                                                        clock: FakeClock) -> None:
    first = store.lock("s1", 30, 0)
    assert first is not None
    assert first.acquired_at == clock()
    assert store.lock("s1", 30, 0) is None
    store.release(first)
    second = store.lock("s1", 30, 0)
    assert second is not None
    store.release(second)


def test_locks_of_other_sessions_are_free(store: SyncStore) -> None:
    # "a" and "b" fall in different lock buckets of the host store.
    first = store.lock("a", 30, 0)
    second = store.lock("b", 30, 0)
    assert first is not None
    assert second is not None
    store.release(first)
    store.release(second)


def test_a_second_release_is_harmless(store: SyncStore) -> None:
    first = store.lock("s1", 30, 0)
    assert first is not None
    store.release(first)
    second = store.lock("s1", 30, 0)
    assert second is not None
    store.release(first)
    assert store.lock("s1", 30, 0) is None  # still held by ``second``
    store.release(second)


def test_a_lock_wait_times_out_with_none(store: SyncStore) -> None:
    held = store.lock("s1", 30, 0)
    assert held is not None
    started = time.monotonic()
    assert store.lock("s1", 30, 0.3) is None
    assert time.monotonic() - started >= 0.25  # it did wait
    store.release(held)


def wait_in_thread(store: SyncStore, session_id: str, wait: float) -> tuple[threading.Thread,
                                                                             dict[str, Any]]:
    """Start ``store.lock(session_id, 30, wait)`` in a thread; its result lands in the dict."""
    result: dict[str, Any] = {}

    def take() -> None:
        result["lock"] = store.lock(session_id, 30, wait)
        result["at"] = time.monotonic()

    thread = threading.Thread(target=take)
    thread.start()
    return thread, result


def test_a_waiter_is_woken_by_the_release(store: SyncStore, clock: FakeClock) -> None:
    held = store.lock("s1", 30, 0)
    assert held is not None
    thread, result = wait_in_thread(store, "s1", WAIT)
    time.sleep(0.3)
    assert thread.is_alive()
    clock.advance(7)
    released = time.monotonic()
    store.release(held)
    thread.join(WAIT * 2)
    assert result["lock"] is not None
    assert result["lock"].acquired_at == clock()  # the time after waiting
    assert released <= result["at"] < released + WAIT / 2
    store.release(result["lock"])


def test_wait_released_is_true_at_once_when_nobody_holds_the_lock(store: SyncStore) -> None:
    started = time.monotonic()
    assert store.wait_released("s1", WAIT) is True
    assert store.wait_released("s1", 0) is True
    assert time.monotonic() - started < PROMPTLY
    held = store.lock("s1", 30, 0)  # it did not take the lock
    assert held is not None
    store.release(held)


def test_wait_released_times_out_with_false(store: SyncStore) -> None:
    held = store.lock("s1", 30, 0)
    assert held is not None
    assert store.wait_released("s1", 0) is False
    started = time.monotonic()
    assert store.wait_released("s1", 0.3) is False
    assert time.monotonic() - started >= 0.25  # it did wait
    store.release(held)


def await_in_threads(store: SyncStore, session_id: str, wait: float,
                     count: int = 1) -> tuple[list[threading.Thread], list[tuple[bool, float]]]:
    """Start ``store.wait_released(session_id, wait)`` in ``count`` threads; each appends
    its answer and when it got it."""
    results: list[tuple[bool, float]] = []

    def wait_for_it() -> None:
        answer = store.wait_released(session_id, wait)
        results.append((answer, time.monotonic()))

    threads = [threading.Thread(target=wait_for_it) for _ in range(count)]
    for thread in threads:
        thread.start()
    return threads, results


def test_wait_released_is_woken_by_the_release_and_leaves_the_lock_free(
        store: SyncStore) -> None:
    held = store.lock("s1", 30, 0)
    assert held is not None
    threads, results = await_in_threads(store, "s1", WAIT)
    time.sleep(0.3)
    assert threads[0].is_alive()
    released = time.monotonic()
    store.release(held)
    threads[0].join(WAIT * 2)
    [(answer, at)] = results
    assert answer is True
    assert released <= at < released + PROMPTLY
    again = store.lock("s1", 30, 0)
    assert again is not None
    store.release(again)


def test_one_release_wakes_every_waiter_together(store: SyncStore) -> None:
    held = store.lock("s1", 30, 0)
    assert held is not None
    threads, results = await_in_threads(store, "s1", WAIT, count=5)
    time.sleep(0.3)
    assert all(thread.is_alive() for thread in threads)
    released = time.monotonic()
    store.release(held)
    for thread in threads:
        thread.join(WAIT * 2)
    assert [answer for answer, _ in results] == [True] * 5
    times = [at for _, at in results]
    assert released <= min(times) and max(times) < released + PROMPTLY
    assert max(times) - min(times) < SPREAD
    again = store.lock("s1", 30, 0)
    assert again is not None
    store.release(again)


# --- memory store ----------------------------------------------------------------------------


def test_memory_lock_expires_after_its_ttl(clock: FakeClock) -> None:
    store = MemoryStore(clock=clock)
    stale = store.lock("s1", 5, 0)
    assert stale is not None
    clock.advance(4)
    assert store.lock("s1", 5, 0) is None
    clock.advance(2)
    fresh = store.lock("s1", 5, 0)
    assert fresh is not None
    store.release(stale)  # expired and taken since: must not free ``fresh``
    assert store.lock("s1", 5, 0) is None
    store.release(fresh)
    assert store.lock("s1", 5, 0) is not None


def test_memory_waiter_takes_the_lock_when_its_ttl_runs_out() -> None:
    store = MemoryStore()
    assert store.lock("s1", 0.3, 0) is not None  # never released
    started = time.monotonic()
    assert store.lock("s1", 30, WAIT) is not None
    assert time.monotonic() - started < WAIT / 2


def test_memory_wait_released_ends_when_the_ttl_runs_out() -> None:
    store = MemoryStore()
    assert store.lock("s1", 0.3, 0) is not None  # never released
    started = time.monotonic()
    assert store.wait_released("s1", WAIT) is True
    assert 0.25 <= time.monotonic() - started < 0.3 + PROMPTLY
    assert store.lock("s1", 30, 0) is not None


def test_memory_release_refuses_a_foreign_lock(host: HostStore) -> None:
    lock = host.lock("s1", 30, 0)
    assert lock is not None
    with pytest.raises(TypeError):
        MemoryStore().release(lock)
    host.release(lock)


# --- ThreadedStore -----------------------------------------------------------------------------


@pytest.fixture(params=["memory", "host"])
def threaded(request: pytest.FixtureRequest, tmp_path: Path,
             clock: FakeClock) -> Iterator[ThreadedStore]:
    store = ThreadedStore(make_store(request.param, tmp_path, clock))
    yield store
    store.sync_store.close()
    store._executor.shutdown(wait=True)


async def test_threaded_lock_wait_leaves_the_loop_free(threaded: ThreadedStore) -> None:
    held = await threaded.lock("s1", 30, 0)
    assert held is not None
    waiter = asyncio.create_task(threaded.lock("s1", 30, WAIT))
    await asyncio.sleep(0.2)
    assert not waiter.done()
    assert await threaded.read("s1") is None  # the loop still serves other calls
    await threaded.release(held)
    got = await asyncio.wait_for(waiter, WAIT / 2)
    assert got is not None
    await threaded.release(got)


async def test_threaded_cancelled_lock_wait_releases_what_it_gets(
        threaded: ThreadedStore) -> None:
    held = await threaded.lock("s1", 30, 0)
    assert held is not None
    waiter = asyncio.create_task(threaded.lock("s1", 30, WAIT))
    await asyncio.sleep(0.2)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    await threaded.release(held)  # the abandoned thread takes it, then frees it
    again = await threaded.lock("s1", 30, WAIT)
    assert again is not None
    await threaded.release(again)


async def test_threaded_wait_released_leaves_the_loop_free(threaded: ThreadedStore) -> None:
    held = await threaded.lock("s1", 30, 0)
    assert held is not None
    waiters = [asyncio.create_task(threaded.wait_released("s1", WAIT)) for _ in range(3)]
    await asyncio.sleep(0.2)
    assert not any(waiter.done() for waiter in waiters)
    assert await threaded.read("s1") is None  # the loop still serves other calls
    await threaded.release(held)
    assert await asyncio.wait_for(asyncio.gather(*waiters), WAIT / 2) == [True] * 3
    again = await threaded.lock("s1", 30, 0)
    assert again is not None
    await threaded.release(again)


async def test_the_await_release_effect_is_performed_sync_and_async(
        threaded: ThreadedStore) -> None:
    sync_store = threaded.sync_store
    assert perform(sync_store, AwaitRelease("s1", 0)) is True
    held = perform(sync_store, TakeLock("s1", 30, 0))
    assert held is not None
    assert perform(sync_store, AwaitRelease("s1", 0)) is False
    assert await perform_async(threaded, AwaitRelease("s1", 0.1)) is False
    waiter = asyncio.create_task(perform_async(threaded, AwaitRelease("s1", WAIT)))
    await asyncio.sleep(0.2)
    perform(sync_store, ReleaseLock(held))
    assert await asyncio.wait_for(waiter, WAIT / 2) is True
    assert await perform_async(threaded, AwaitRelease("s1", 0)) is True


async def test_threaded_wait_released_after_close_is_unavailable(tmp_path: Path) -> None:
    threaded = ThreadedStore(HostStore(str(tmp_path / "store")))
    await threaded.close()
    with pytest.raises(StoreUnavailable):
        await threaded.wait_released("s1", 0)


async def test_threaded_close_closes_the_store(tmp_path: Path) -> None:
    threaded = ThreadedStore(HostStore(str(tmp_path / "store")))
    await threaded.write("s1", Lineage(1, "first"), 3600)
    await threaded.close()
    with pytest.raises(StoreUnavailable):
        await threaded.lock("s1", 30, 0)
    reopened = HostStore(str(tmp_path / "store"))
    assert reopened.read("s1") == Lineage(1, "first")
    reopened.close()


# --- host store: files, processes ------------------------------------------------------------

CHILD = """
import sys, time
from renewal_middleware.stores.base import Lineage
from renewal_middleware.stores.host import HostStore

store = HostStore(sys.argv[1])
command, session_id = sys.argv[2], sys.argv[3]
if command == "hold":
    print("locked" if store.lock(session_id, 60, 0) else "busy", flush=True)
    time.sleep(60)
elif command == "write":
    store.write(session_id, Lineage(int(sys.argv[4]), sys.argv[5]), 3600)
elif command == "read":
    print(repr(store.read(session_id)), flush=True)
elif command == "await":
    print("waiting", flush=True)
    answer = store.wait_released(session_id, float(sys.argv[4]))
    print(answer, repr(time.time()), flush=True)
"""


def child(directory: str, *args: str) -> subprocess.Popen[str]:
    """Another process of the host running ``CHILD`` on the store in ``directory``."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-c", CHILD, directory, *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, text=True)


def run_child(directory: str, *args: str) -> str:
    process = child(directory, *args)
    out, _ = process.communicate(timeout=60)
    assert process.returncode == 0
    return out.strip()


def test_host_processes_see_each_others_writes(host: HostStore) -> None:
    run_child(host.directory, "write", "s1", "3", "from the child")
    assert host.read("s1") == Lineage(3, "from the child")
    host.write("s1", Lineage(4, "from the parent"), 3600)
    assert run_child(host.directory, "read", "s1") == repr(Lineage(4, "from the parent"))
    run_child(host.directory, "write", "s1", "2", "older")
    assert host.read("s1") == Lineage(4, "from the parent")


def test_host_lock_of_a_killed_process_is_freed_at_once(host: HostStore) -> None:
    holder = child(host.directory, "hold", "s1")
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "locked"
        assert host.lock("s1", 30, 0) is None
        thread, result = wait_in_thread(host, "s1", WAIT)
        time.sleep(0.3)
        assert thread.is_alive()
        killed = time.monotonic()
        os.kill(holder.pid, signal.SIGKILL)
        thread.join(WAIT * 2)
    finally:
        holder.kill()
        holder.communicate()
    assert result["lock"] is not None
    assert killed <= result["at"] < killed + WAIT / 2
    host.release(result["lock"])


@pytest.mark.parametrize("ending", ["release", "kill"])
def test_host_waiter_processes_all_wake_at_once(host: HostStore, ending: str) -> None:
    """Released by its holder, or its holder killed with SIGKILL: every process waiting
    for the release wakes at once, and together."""
    with contextlib.ExitStack() as processes:
        def start(*args: str) -> subprocess.Popen[str]:
            process = processes.enter_context(child(host.directory, *args))
            processes.callback(process.kill)  # before the context's wait
            assert process.stdout is not None
            return process

        if ending == "kill":
            holder = start("hold", "s1")
            assert holder.stdout is not None
            assert holder.stdout.readline().strip() == "locked"
            end = functools.partial(os.kill, holder.pid, signal.SIGKILL)
        else:
            held = host.lock("s1", 30, 0)
            assert held is not None
            end = functools.partial(host.release, held)
        waiters = [start("await", "s1", str(WAIT * 2)) for _ in range(4)]
        for waiter in waiters:
            assert waiter.stdout is not None
            assert waiter.stdout.readline().strip() == "waiting"
        time.sleep(0.5)
        assert all(waiter.poll() is None for waiter in waiters)
        ended = time.time()
        end()
        answers = [waiter.communicate(timeout=WAIT * 2)[0].split() for waiter in waiters]
    assert [answer for answer, _ in answers] == ["True"] * 4
    times = [float(at) for _, at in answers]
    assert ended <= min(times) and max(times) < ended + PROMPTLY
    assert max(times) - min(times) < SPREAD
    lock = host.lock("s1", 30, 0)
    assert lock is not None
    host.release(lock)


def test_host_abandoned_wait_for_the_release_lets_the_lock_go(host: HostStore) -> None:
    held = host.lock("s1", 30, 0)
    assert held is not None
    assert host.wait_released("s1", 0.2) is False  # its helper still waits for the flock
    helpers = [t for t in threading.enumerate() if t.name == "renewal-store-flock"]
    assert helpers
    host.release(held)  # the helper gets it, finds nobody waiting, and frees it
    for helper in helpers:
        helper.join(WAIT)
    again = host.lock("s1", 30, 0)
    assert again is not None
    host.release(again)


def test_host_abandoned_wait_lets_the_lock_go(host: HostStore) -> None:
    held = host.lock("s1", 30, 0)
    assert held is not None
    assert host.lock("s1", 30, 0.2) is None  # its helper thread still waits for the flock
    helpers = [t for t in threading.enumerate() if t.name == "renewal-store-flock"]
    assert helpers
    host.release(held)  # the helper gets it, finds nobody waiting, and frees it
    for helper in helpers:
        helper.join(WAIT)
    again = host.lock("s1", 30, 0)
    assert again is not None
    host.release(again)


def test_host_forked_worker_uses_its_own_connection(host: HostStore) -> None:
    host.write("s1", Lineage(1, "before the fork"), 3600)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork of a threaded process
        pid = os.fork()
    if pid == 0:
        code = 1
        try:
            if host.read("s1") == Lineage(1, "before the fork"):
                host.write("s1", Lineage(2, "from the worker"), 3600)
                # The parent's connection was set aside, neither used nor closed.
                code = 0 if len(host._inherited) == 1 else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert host.read("s1") == Lineage(2, "from the worker")
    host.write("s1", Lineage(3, "parent again"), 3600)
    assert host.read("s1") == Lineage(3, "parent again")


def test_host_purges_expired_rows(tmp_path: Path, clock: FakeClock) -> None:
    store = HostStore(str(tmp_path / "store"), clock=clock)
    store.write("old", Lineage(1, "old"), 10)
    store.bury([Tombstone("sid:old", clock())], 10)
    store.claim("jti:old", 10)
    clock.advance(61)
    store.write("new", Lineage(1, "new"), 3600)
    store.close()
    with sqlite3.connect(tmp_path / "store" / "store.sqlite3") as db:
        counts = [db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
                  for table in ("lineages", "tombstones", "claims")]
    db.close()
    assert counts == [1, 0, 0]


def test_host_store_files_are_private(host: HostStore) -> None:
    lock = host.lock("s1", 30, 0)
    assert lock is not None
    host.release(lock)
    directory = Path(host.directory)
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert stat.S_IMODE((directory / "store.sqlite3").stat().st_mode) & 0o077 == 0
    assert all(stat.S_IMODE(f.stat().st_mode) & 0o077 == 0
               for f in (directory / "locks").iterdir())


def test_host_failures_are_store_unavailable(tmp_path: Path) -> None:
    store = HostStore(str(tmp_path / "store"))
    store.close()
    for name in ("store.sqlite3", "store.sqlite3-wal", "store.sqlite3-shm"):
        (tmp_path / "store" / name).unlink(missing_ok=True)
    (tmp_path / "store" / "store.sqlite3").write_bytes(b"not a database " * 512)
    with pytest.raises(StoreUnavailable):
        store.read("s1")
    with pytest.raises(StoreUnavailable):
        store.write("s1", Lineage(1, "first"), 3600)
    (tmp_path / "store" / "locks").rename(tmp_path / "store" / "gone")
    (tmp_path / "store" / "locks").write_text("not a directory")
    with pytest.raises(StoreUnavailable):
        store.lock("s1", 30, 0)
    with pytest.raises(StoreUnavailable):
        store.wait_released("s1", 0)
    store.close()


def test_default_directory_is_per_user_and_client() -> None:
    one = default_directory("https://op.example", "client-1")
    assert one == default_directory("https://op.example", "client-1")
    assert one != default_directory("https://op.example", "client-2")
    parent, name = os.path.split(one)
    assert os.path.basename(parent) == f"renewal-middleware-{os.getuid()}"
    assert len(name) == 16
    assert int(name, 16) >= 0


def test_host_creates_missing_directories_private(tmp_path: Path) -> None:
    directory = tmp_path / "a" / "b"
    HostStore(str(directory)).close()
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert stat.S_IMODE(directory.parent.stat().st_mode) == 0o700


def assert_refused(directory: Path) -> None:
    with pytest.raises(ConfigurationError) as caught:
        HostStore(str(directory))
    assert str(directory) in str(caught.value)
    assert "store_directory" in str(caught.value)
    assert "RENEWAL_STORE_DIRECTORY" in str(caught.value)


def test_host_refuses_a_directory_others_may_write(tmp_path: Path) -> None:
    directory = tmp_path / "store"
    directory.mkdir()
    directory.chmod(0o777)
    assert_refused(directory)


def test_host_refuses_a_directory_inside_one_others_may_write(tmp_path: Path) -> None:
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared").chmod(0o777)
    assert_refused(tmp_path / "shared" / "store")


@pytest.mark.skipif(os.getuid() != 0, reason="giving a directory away needs root")
def test_host_refuses_a_directory_of_another_user(tmp_path: Path) -> None:
    directory = tmp_path / "store"
    directory.mkdir(mode=0o700)
    os.chown(directory, 65534, 65534)
    assert_refused(directory)


def test_host_refuses_a_directory_it_cannot_create(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    assert_refused(tmp_path / "file" / "store")
