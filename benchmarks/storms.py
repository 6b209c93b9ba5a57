"""P6: refresh grants per 200-request renewal storm of one session, for 1, 2 and 4 workers of
the FastAPI example (uvicorn --workers) and each store; P7: how long waiters blocked on a
session's lock take to have the winner's result, per store (real processes)."""

from __future__ import annotations

import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from benchmarks.suite import Context, Section, log, target
from renewal_middleware.stores.base import Lineage

STORES = ("memory", "host", "redis")
WORKERS = (1, 2, 4)
TOKEN_TTL = 8
STORM = 200
WAITERS = (1, 4)
ROUNDS = 5


async def _one(op: Any, url: str) -> dict[str, Any]:
    from tests.op.harness import login

    limits = httpx.Limits(max_connections=STORM, max_keepalive_connections=STORM)
    async with httpx.AsyncClient(limits=limits, timeout=60, trust_env=False) as client:
        await login(client, url)
        me = (await client.get(url + "/api/me")).json()
        await asyncio.sleep(max(0.0, me["expires_at"] - TOKEN_TTL / 2 + 0.5 - time.time()))
        op.reset_stats()
        answers = await asyncio.gather(*(client.get(url + "/api/me") for _ in range(STORM)))
    stats = op.stats()
    return {"grants": stats["grants"].get("refresh_token", 0),
            "refused": stats["grant_errors"].get("refresh_token", 0),
            "served": sum(1 for r in answers
                          if r.status_code == 200 and r.json().get("sub") == "alice")}


def storms(ctx: Context) -> dict[str, Any]:
    from tests.frameworks.workers import serve
    from tests.op.harness import CLIENT_ID, CLIENT_SECRET, start_provider
    from tests.redis_server import RedisServer

    out: dict[str, Any] = {}
    with start_provider(access_token_ttl=TOKEN_TTL) as op, RedisServer() as redis, \
            tempfile.TemporaryDirectory() as scratch:
        for workers in WORKERS:
            for store in STORES:
                run = Path(scratch) / f"{store}-{workers}"
                (run / "store").mkdir(parents=True)
                environ = {"RENEWAL_ISSUER": op.issuer, "RENEWAL_CLIENT_ID": CLIENT_ID,
                           "RENEWAL_CLIENT_SECRET": CLIENT_SECRET,
                           "RENEWAL_SECRET_KEYS": "benchmark-storm-key-0123456789abcdef",
                           "RENEWAL_STORE": redis.url if store == "redis" else store,
                           "RENEWAL_STORE_DIRECTORY": str(run / "store")}
                with serve("fastapi", environ, run, workers=workers) as server:
                    row = asyncio.run(_one(op, server.url))
                log(f"  {workers} worker(s), {store}: {row}")
                out[f"{store}_{workers}"] = row
    return out


# -- P7: waiters --------------------------------------------------------------------------------

WAITER = """
import json, sys, time
from renewal_middleware.stores.host import HostStore
from renewal_middleware.stores.redis_sync import RedisStore
kind, where, sid = sys.argv[1:4]
store = HostStore(where) if kind == "host" else RedisStore(where, "bench")
store.read("warm-up")  # a worker's connection is open long before a renewal
print("ready", flush=True)
assert store.wait_released(sid, 30)
known = store.read(sid)
at = time.time()
print(json.dumps({"at": at, "generation": known.generation if known else None}), flush=True)
"""


def _store(kind: str, where: str) -> Any:
    if kind == "memory":
        from renewal_middleware.stores.memory import MemoryStore

        return MemoryStore()
    if kind == "host":
        from renewal_middleware.stores.host import HostStore

        return HostStore(where)
    from renewal_middleware.stores.redis_sync import RedisStore

    return RedisStore(where, "bench")


def _waiter_thread(store: Any, sid: str, seen: list[float]) -> None:
    assert store.wait_released(sid, 30)
    store.read(sid)
    seen.append(time.time())


def _round(kind: str, where: str, store: Any, sid: str, waiters: int) -> list[float]:
    """Milliseconds from the winner's release to each waiter having read the result: the
    waiters found the lock taken and wait for its release, as renewals do."""
    holder = store.lock(sid, 30, 0)
    assert holder is not None
    seen: list[float] = []
    if kind == "memory":
        threads = [threading.Thread(target=_waiter_thread, args=(store, sid, seen))
                   for _ in range(waiters)]
        for thread in threads:
            thread.start()
    else:
        procs = [subprocess.Popen([sys.executable, "-c", WAITER, kind, where, sid],
                                  stdout=subprocess.PIPE, text=True) for _ in range(waiters)]
        for proc in procs:
            assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    time.sleep(0.5)  # every waiter is blocked on the lock by now
    store.write(sid, Lineage(1, "sealed"), 60)
    released = time.time()
    store.release(holder)
    if kind == "memory":
        for thread in threads:
            thread.join(30)
    else:
        for proc in procs:
            out, _ = proc.communicate(timeout=30)
            seen.append(json.loads(out)["at"])
    return sorted(1000 * (at - released) for at in seen)


def waiters(ctx: Context) -> dict[str, Any]:
    from tests.redis_server import RedisServer

    out: dict[str, Any] = {}
    with RedisServer() as redis, tempfile.TemporaryDirectory() as scratch:
        for kind in STORES:
            where = redis.url if kind == "redis" else scratch
            store = _store(kind, where)
            for waiters in WAITERS:
                rounds = [_round(kind, where, store, f"bench-{kind}-{waiters}-{i}", waiters)
                          for i in range(ROUNDS)]
                every = [ms for r in rounds for ms in r]
                out[f"{kind}_{waiters}"] = {
                    "waiters": waiters, "rounds": ROUNDS,
                    "median_ms": round(statistics.median(every), 2),
                    "last_waiter_median_ms": round(statistics.median(r[-1] for r in rounds), 2),
                    "max_ms": round(max(every), 2)}
                log(f"  {kind}, {waiters} waiter(s): {out[f'{kind}_{waiters}']}")
            store.close()
    return out


SECTIONS: tuple[Section, ...] = (Section("p6_storms", storms), Section("p7_waiters", waiters))


def rows(results: dict[str, Any]) -> list[str]:
    lines = ["", f"P6 refresh grants per {STORM}-request renewal storm of one session "
             "(FastAPI example, uvicorn --workers; granted/refused, requests served)"]
    p6 = results.get("p6_storms", {})
    lines.append(f"  {'workers':>8} " + " ".join(f"{s:>22}" for s in STORES))
    for workers in WORKERS:
        cells = []
        for store in STORES:
            row = p6.get(f"{store}_{workers}")
            cells.append("n/a" if row is None else
                         f"{row['grants']}/{row['refused']}, {row['served']}/{STORM}")
        lines.append(f"  {workers:>8} " + " ".join(f"{c:>22}" for c in cells))
    p7 = results.get("p7_waiters", {})
    lines += ["", "P7 from the winner's release to each waiting worker process having its result "
              "(threads for memory; median / last waiter / max, ms)"]
    for kind in STORES:
        cells = []
        for waiters in WAITERS:
            row = p7.get(f"{kind}_{waiters}")
            if row is not None:
                cells.append(f"{waiters} waiting: {row['median_ms']:.2f} / "
                             f"{row['last_waiter_median_ms']:.2f} / {row['max_ms']:.2f}")
        lines.append(f"  {kind:8} " + ";  ".join(cells))
    return lines


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    p6, p7 = results.get("p6_storms", {}), results.get("p7_waiters", {})
    found = []
    for store in ("host", "redis"):
        cells = [p6.get(f"{store}_{w}") for w in WORKERS]
        if all(cells):
            one = all(c["grants"] == 1 and c["refused"] == 0 and c["served"] == STORM
                      for c in cells if c)
            found.append(target(f"P6 {store} store: grants per storm, 1-4 workers", "1",
                                [c["grants"] for c in cells if c], one))
        for waiters in WAITERS:
            row = p7.get(f"{store}_{waiters}")
            if row is not None:
                found.append(target(f"P7 {store} store, {waiters} waiting: median latency",
                                    "<= 5 ms", row["median_ms"], row["median_ms"] <= 5))
    return found
