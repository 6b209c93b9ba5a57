"""P8: server-side session storage. The cookie's bytes; what the store adds to a renewal (the
reads, the lock, the write a renewal makes, on the host store and on Redis); the first request of
a cookie in a process, which reads the store; and the pass-through, the same code for both."""

from __future__ import annotations

import dataclasses
import hashlib
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any

from benchmarks import apps
from benchmarks.suite import Context, Section
from renewal_middleware.config import Settings
from renewal_middleware.flows import Flows
from renewal_middleware.session import Session
from renewal_middleware.stores.base import Lineage, SyncStore
from renewal_middleware.stores.host import HostStore
from renewal_middleware.stores.redis_sync import RedisStore
from tests.redis_server import RedisServer
from tests.unit.helpers import cookie_header, set_cookie_pairs


def _median_us(run: Callable[[], object], n: int) -> float:
    times = []
    for _ in range(n):
        started = time.perf_counter_ns()
        run()
        times.append(time.perf_counter_ns() - started)
    return round(statistics.median(times) / 1e3, 1)


def _renewal_store_calls(store: SyncStore, sealed: str) -> Callable[[], object]:
    """What a renewal asks of the store: read, take the lock, read again, write, release."""
    generation = [0]

    def run() -> None:
        store.read("bench-session")
        lock = store.lock("bench-session", 25, 0)
        assert lock is not None
        store.read("bench-session")
        generation[0] += 1
        store.write("bench-session", Lineage(generation[0], sealed), 3600)
        store.release(lock)

    return run


def _flows(storage: str) -> Flows:
    settings: Settings = apps.renewal_encrypted().settings
    return Flows(Settings.load(environ={}, **{
        **{f: getattr(settings, f) for f in ("issuer", "client_id", "client_secret", "base_url")},
        "secret_keys": list(settings.secret_keys), "store": "memory",
        "session_storage": storage}), time.time)


def measure(ctx: Context) -> dict[str, Any]:
    n = 300 if ctx.cfg["rounds"] < 5 else 2_000
    session: Session = ctx.cookies.tokens.session()
    # The test provider's Carol: 1,200 groups named by hashes, about 80 KB.
    groups = [hashlib.sha256(f"group {i}".encode()).hexdigest() for i in range(1200)]
    big = dataclasses.replace(session, claims={**session.claims, "groups": groups})
    out: dict[str, Any] = {}
    server, cookie = _flows("server"), _flows("cookie")
    for name, flows in (("server", server), ("cookie", cookie)):
        value = flows.sessions.encode(session, time.time())
        out[f"{name}_cookie_header_bytes"] = len(cookie_header(set_cookie_pairs(
            flows.sessions.cookie.set_headers(value, ()))))
    sealed = server.lineages.seal(session)
    out["sealed_bytes"], out["sealed_bytes_80kb_token_set"] = len(sealed), len(
        server.lineages.seal(big))
    with tempfile.TemporaryDirectory() as where, RedisServer() as redis:
        stores: dict[str, SyncStore] = {"host": HostStore(where),
                                        "redis": RedisStore(redis.url, "bench")}
        for name, store in stores.items():
            out[f"{name}_renewal_store_us"] = _median_us(_renewal_store_calls(store, sealed), n)
            store.write("bench-read", Lineage(1, sealed), 3600)
            out[f"{name}_first_request_read_us"] = _median_us(
                lambda store=store: server.lineages.unseal(store.read("bench-read").sealed), n)
            store.close()
    big_sealed = server.lineages.seal(big)
    out["unseal_80kb_token_set_us"] = _median_us(lambda: server.lineages.unseal(big_sealed), 50)
    for name, flows in (("server", server), ("cookie", cookie)):
        value = flows.sessions.encode(session, time.time())
        header = cookie_header(set_cookie_pairs(flows.sessions.cookie.set_headers(value, ())))
        flows.sessions.remember_header(header, flows.sessions.view_of(value, session,
                                                                      time.time()))
        now = time.time()
        out[f"{name}_passthrough_ns"] = round(_median_us(
            lambda flows=flows, header=header, now=now: [flows.pass_through("/", header, now)
                                                for _ in range(100)], n // 10) * 10, 1)
    return out


SECTIONS: tuple[Section, ...] = (Section("p8_server_storage", measure),)


def rows(results: dict[str, Any]) -> list[str]:
    p8 = results["p8_server_storage"]
    return [
        "",
        f"P8 server-side sessions: Cookie header {p8['server_cookie_header_bytes']} B "
        f"(cookie storage: {p8['cookie_cookie_header_bytes']} B); sealed in the store "
        f"{p8['sealed_bytes']} B ({p8['sealed_bytes_80kb_token_set']} B for an 80 KB token set)",
        f"  store calls of one renewal: host {p8['host_renewal_store_us']} µs, Redis "
        f"{p8['redis_renewal_store_us']} µs; first request of a cookie (read + unseal): host "
        f"{p8['host_first_request_read_us']} µs, Redis {p8['redis_first_request_read_us']} µs",
        f"  pass-through in-process: server {p8['server_passthrough_ns']} ns, cookie "
        f"{p8['cookie_passthrough_ns']} ns per request",
    ]


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    return []
