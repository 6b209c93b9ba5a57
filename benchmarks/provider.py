"""P2 and P3 against the real oidc-provider (tests/op): a renewal storm of one session, then
renewing requests next to token-endpoint round trips alone; P3 again against a local stand-in
token endpoint (``apps.token_stand_in``: canned answers, so that the provider's own time and its
jitter do not swamp what the middleware adds)."""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from benchmarks import loadgen
from benchmarks.common import Codec, cookie_header_from_set_cookies
from benchmarks.loadgen import Connection, Server, percentile
from benchmarks.renewal_server import (
    DISCOVERY_PATH,
    RenewingServer,
    TokenRoundTrips,
    cookie_from_reply,
    delta,
    log_in_twice,
    op_client,
    refresh_grants,
)
from benchmarks.suite import Context, Section, log, target
from renewal_middleware import Session

# -- P3: renewing requests -----------------------------------------------------------------------


@dataclass
class _Triples:
    """Per renewal: the round trip alone, then the renewing and the pass-through request."""

    rtt_ms: list[float] = field(default_factory=list)
    renewing_ms: list[float] = field(default_factory=list)
    passing_ms: list[float] = field(default_factory=list)
    renew_cpu_ms: list[float] = field(default_factory=list)
    pass_cpu_ms: list[float] = field(default_factory=list)


async def _triple(app: RenewingServer, conn: Connection, cookie: str, direct: TokenRoundTrips,
                  advance: float, out: _Triples) -> str:
    """One triple into ``out``; returns the renewed session's cookie."""
    out.rtt_ms.append(await direct() * 1e3)
    await app.advance(advance)
    await asyncio.sleep(0.02)  # let the server go idle: its CPU time is then exact
    cpu0 = app.cpu_ns()
    renew = await conn.request("GET", "/", {"cookie": cookie})
    await asyncio.sleep(0.02)
    cpu1 = app.cpu_ns()
    if renew.status != 200 or not renew.header_list("set-cookie"):
        raise RuntimeError(f"P3: no renewal: {renew.status} {renew.headers}")
    cookie = cookie_from_reply(renew)
    passthrough = await conn.request("GET", "/", {"cookie": cookie})
    await asyncio.sleep(0.02)
    cpu2 = app.cpu_ns()
    if passthrough.status != 200 or passthrough.header_list("set-cookie"):
        raise RuntimeError("P3: the renewed session is not fresh")
    out.renewing_ms.append(renew.seconds * 1e3)
    out.passing_ms.append(passthrough.seconds * 1e3)
    out.renew_cpu_ms.append((cpu1 - cpu0) / 1e6)
    out.pass_cpu_ms.append((cpu2 - cpu1) / 1e6)
    return cookie


def _renewal_figures(triples: _Triples, count: int) -> dict[str, Any]:
    """The medians, the first triple (warm-up) dropped."""
    rtts, renewing = triples.rtt_ms[1:], triples.renewing_ms[1:]
    renew_cpu, pass_cpu = triples.renew_cpu_ms[1:], triples.pass_cpu_ms[1:]
    med = statistics.median
    return {
        "renewals": count,
        "token_endpoint_rtt_ms_median": round(med(rtts), 3),
        "renewing_request_ms_median": round(med(renewing), 3),
        "passthrough_request_ms_median": round(med(triples.passing_ms[1:]), 3),
        "added_ms_median": round(med(renewing) - med(rtts), 3),
        "added_ms_median_of_pairs": round(med(r - t for r, t in zip(renewing, rtts,
                                                                    strict=True)), 3),
        "server_cpu_ms_renewing_median": round(med(renew_cpu), 3),
        "server_cpu_ms_passthrough_median": round(med(pass_cpu), 3),
        "server_cpu_ms_added_by_renewal": round(med(renew_cpu) - med(pass_cpu), 3),
        "token_rtt_ms_runs": [round(v, 3) for v in rtts],
        "renewing_ms_runs": [round(v, 3) for v in renewing],
    }


async def _renewals(app: RenewingServer, cookie: str, direct: TokenRoundTrips,
                    cfg: dict[str, Any], token_path: str, jwks_path: str) -> dict[str, Any]:
    """``renewals`` + 1 times, interleaved: the token-endpoint round trip alone (``direct``), a
    request that renews, a request that passes through. The first triple warms the code paths
    and is dropped; provider requests are counted after it."""
    count = cfg["renewals"]
    triples = _Triples()
    async with direct:
        conn = await Connection.open(app.server.port)
        sent_before = await app.sent()
        first_sent: dict[str, int] = {}
        for index in range(count + 1):
            cookie = await _triple(app, conn, cookie, direct, cfg["advance"], triples)
            if index == 0:
                first_sent = delta(await app.sent(), sent_before)
                sent_before = await app.sent()
        steady = delta(await app.sent(), sent_before)
        await conn.close()
        return {
            **_renewal_figures(triples, count),
            "provider_requests_first_renewal": first_sent,
            "provider_requests_steady_state": steady,
            "token_requests_per_renewal": round(steady.get(token_path, 0) / count, 3),
            "discovery_fetches_per_renewal": round(steady.get(DISCOVERY_PATH, 0) / count, 3),
            "jwks_fetches_per_renewal": round(steady.get(jwks_path, 0) / count, 3),
            "clock_offset_s_at_end": await app.offset(),
        }


def _log_p3(where: str, renewal: dict[str, Any]) -> None:
    log(f"P3 ({where}): rtt {renewal['token_endpoint_rtt_ms_median']} ms, renewing "
        f"{renewal['renewing_request_ms_median']} ms, added {renewal['added_ms_median']} ms")


# -- P2: a renewal storm of one session -----------------------------------------------------------


def _storm_figures(replies: list[loadgen.Reply], old_digest: str,
                   set_values: set[str]) -> dict[str, Any]:
    bodies = [json.loads(r.body) if r.status == 200 else {} for r in replies]
    digests = {b.get("access_token") for b in bodies}
    latencies = [r.seconds * 1e3 for r in replies]
    return {
        "statuses": sorted({r.status for r in replies}),
        "all_authenticated": all(b.get("authenticated") for b in bodies),
        "distinct_access_tokens_seen_by_app": len(digests),
        "app_saw_the_new_token": old_digest not in digests,
        "responses_with_set_cookie": sum(bool(r.header_list("set-cookie")) for r in replies),
        "distinct_set_cookie_values": len(set_values),
        "latency_ms_p50": round(percentile(latencies, 50), 2),
        "latency_ms_p99": round(percentile(latencies, 99), 2),
        "latency_ms_max": round(max(latencies), 2),
    }


async def _storm(app: RenewingServer, op: Any, cfg: dict[str, Any],
                 cookie: str) -> tuple[dict[str, Any], set[str]]:
    """All requests at once on open connections, the session moved into its grace window:
    (the figures, the Set-Cookie headers' cookies)."""
    before = await app.request("GET", "/__bench/who", {"cookie": cookie})
    old_digest = json.loads(before.body)["access_token"]
    conns = [await Connection.open(app.server.port) for _ in range(cfg["storm"])]
    grants_before, sent_before = refresh_grants(op), await app.sent()
    await app.advance(cfg["advance"])
    started = time.perf_counter()
    replies = await asyncio.gather(*(c.request("GET", "/__bench/who", {"cookie": cookie})
                                     for c in conns))
    wall = time.perf_counter() - started
    grants_storm = refresh_grants(op) - grants_before
    sent_storm = delta(await app.sent(), sent_before)
    for c in conns:
        await c.close()
    set_values = {cookie_from_reply(r) for r in replies}
    storm = {"concurrent_requests": len(replies), "refresh_token_grants": grants_storm,
             **_storm_figures(replies, old_digest, set_values),
             "wall_ms": round(wall * 1e3, 2), "provider_requests_by_path": sent_storm}
    log(f"P2 storm: {grants_storm} refresh grant(s) for {len(replies)} requests, "
        f"p50 {storm['latency_ms_p50']} ms, p99 {storm['latency_ms_p99']} ms")
    return storm, set_values


async def against_provider(ctx: Context) -> dict[str, Any]:
    """P2 (storm) and P3 (renewal latency) against the real oidc-provider."""
    from tests.op.harness import start_provider

    ttl = 30
    op = start_provider(access_token_ttl=ttl)
    try:
        app = RenewingServer(op.issuer, ctx.stack)
        discovery = op.discovery()
        with loadgen.servers(app.server):
            storm_cookie, direct_cookie = await log_in_twice(app.server.url)
            # The second session's refresh token, for round trips to the token endpoint alone.
            codec = Codec.against(op.issuer, *op_client(), app.server.url)
            direct = TokenRoundTrips(discovery["token_endpoint"],
                                     codec.refresh_token(direct_cookie))
            await app.open()
            storm, set_values = await _storm(app, op, ctx.cfg, storm_cookie)
            grants_before = refresh_grants(op)
            renewal = await _renewals(app, next(iter(set_values)), direct, ctx.cfg,
                                      httpx.URL(discovery["token_endpoint"]).path,
                                      httpx.URL(discovery["jwks_uri"]).path)
            renewal["refresh_grants_at_provider"] = refresh_grants(op) - grants_before
            renewal["provider_access_token_ttl_s"] = ttl
    finally:
        op.stop()
    _log_p3("oidc-provider", renewal)
    return {"provider": f"oidc-provider {op.issuer}", "storm": storm, "renewal": renewal}


def _stand_in_session(canned: dict[str, Any], now: float) -> Session:
    return Session(id="stand-in-session", access_token=canned["access_token"],
                   expires_at=int(now) + 30, obtained_at=int(now),
                   refresh_token="initial-" + "r" * 35, id_token=canned["id_token"],
                   claims=canned["claims"], scope="openid profile email offline_access")


async def against_stand_in(ctx: Context) -> dict[str, Any]:
    """P3 against a local stand-in token endpoint (benchmarks.apps.token_stand_in)."""
    stand_in = Server("uvicorn", "token_stand_in", loop=ctx.stack["loop"],
                      http=ctx.stack["http"], core=loadgen.CLIENT_CORE)
    stand_in.env = {"BENCH_STANDIN_ISSUER": stand_in.url, "BENCH_CLIENT_ID": op_client()[0]}
    app = RenewingServer(stand_in.url, ctx.stack)
    with loadgen.servers(stand_in, app.server):
        async with httpx.AsyncClient(trust_env=False, timeout=30) as http:
            canned = (await http.get(stand_in.url + "/__session")).json()
            now = time.time()
            codec = Codec.against(stand_in.url, *op_client(), app.server.url)
            _, set_cookies = codec.mint(_stand_in_session(canned, now), now)
            cookie = cookie_header_from_set_cookies(set_cookies)
            await app.open()
        renewal = await _renewals(app, cookie, TokenRoundTrips(stand_in.url + "/token", "r" * 43),
                                  ctx.cfg, "/token", "/jwks")
    _log_p3("stand-in", renewal)
    return {"provider": "local stand-in token endpoint (benchmarks.apps.token_stand_in)",
            "renewal": renewal}


SECTIONS: tuple[Section, ...] = (
    Section("p2_p3_provider", lambda ctx: asyncio.run(against_provider(ctx))),
    Section("p3_stand_in", lambda ctx: asyncio.run(against_stand_in(ctx))),
)
#: The P3 sections and how the table and the targets name their provider.
P3 = (("p2_p3_provider", "oidc-provider on 127.0.0.1", "oidc-provider"),
      ("p3_stand_in", "local stand-in token endpoint, canned answer", "stand-in"))


# -- the table --------------------------------------------------------------------------------


def _storm_rows(s: dict[str, Any]) -> list[str]:
    return [
        "", "P2 renewal storm: oidc-provider on 127.0.0.1, one session moved into its grace "
        "window, all requests sent at once on open connections",
        f"  {s['concurrent_requests']} concurrent requests -> {s['refresh_token_grants']} "
        f"refresh_token grant(s); latency p50 {s['latency_ms_p50']} ms, p99 "
        f"{s['latency_ms_p99']} ms, max {s['latency_ms_max']} ms (all "
        f"{s['concurrent_requests']} in {s['wall_ms']} ms)",
        f"  statuses {s['statuses']}; {s['responses_with_set_cookie']} answers carry the new "
        f"cookie ({s['distinct_set_cookie_values']} distinct value); the app saw "
        f"{s['distinct_access_tokens_seen_by_app']} access token(s), the new one: "
        f"{s['app_saw_the_new_token']}; provider requests {s['provider_requests_by_path']}",
    ]


def _renewal_rows(r: dict[str, Any], where: str) -> list[str]:
    lines = ["", f"P3 one renewing request against {where} ({r['renewals']} renewals, "
             "medians; token round trip, renewing and pass-through requests interleaved)"]
    figures = [
        ("token endpoint round trip alone (httpx, core 0)", r["token_endpoint_rtt_ms_median"]),
        ("request that renews", r["renewing_request_ms_median"]),
        ("request that passes through (same connection)", r["passthrough_request_ms_median"]),
        ("added over one round trip", r["added_ms_median"]),
        ("  same, median of per-renewal differences", r["added_ms_median_of_pairs"]),
        ("server CPU: renewing request", r["server_cpu_ms_renewing_median"]),
        ("server CPU: pass-through request", r["server_cpu_ms_passthrough_median"]),
        ("server CPU added by a renewal", r["server_cpu_ms_added_by_renewal"]),
    ]
    lines += [f"  {label:48} {value:>8.3f} ms" for label, value in figures]
    lines.append(f"  provider requests per renewal at steady state: token "
                 f"{r['token_requests_per_renewal']}, discovery "
                 f"{r['discovery_fetches_per_renewal']}, JWKS {r['jwks_fetches_per_renewal']}"
                 f" (first renewal: {r['provider_requests_first_renewal']})")
    return lines


def rows(results: dict[str, Any]) -> list[str]:
    lines = _storm_rows(results["p2_p3_provider"]["storm"])
    for key, where, _ in P3:
        lines += _renewal_rows(results[key]["renewal"], where)
    return lines


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    storm = results["p2_p3_provider"]["storm"]
    out = [target("P2 refresh_token grants for 200 concurrent requests of one session",
                  "exactly 1", storm["refresh_token_grants"], storm["refresh_token_grants"] == 1)]
    for key, _, where in P3:
        renewal = results[key]["renewal"]
        added = renewal["added_ms_median"]
        out.append(target(f"P3 ({where}) latency added over one token-endpoint round trip "
                          "(ms, median)", "<= 2 ms", added, added <= 2.0))
        fetches = renewal["discovery_fetches_per_renewal"] + renewal["jwks_fetches_per_renewal"]
        out.append(target(f"P3 ({where}) discovery/JWKS fetches per renewal (steady state)",
                          "0", fetches, fetches == 0))
    return out
