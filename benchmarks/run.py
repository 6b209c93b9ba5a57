"""Performance of renewal_middleware: pass-through cost, renewal storm, renewal latency, cookie
size and memory, in one run. Prints a table and writes benchmarks/results.json.

    python benchmarks/run.py            # the full run (about 6-10 minutes)
    python benchmarks/run.py --quick    # a smoke run (under a minute)
    tox -e bench [-- --quick]

Everything talks to 127.0.0.1 only. Servers run on core 0 and load generators (wrk, this
process, the test provider) on core 1, when the machine has both. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import importlib.util
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    # Behind site-packages: an installed renewal_middleware (tox) wins over the source tree.
    sys.path.append(str(ROOT))

from benchmarks import apps, inprocess, loadgen  # noqa: E402
from benchmarks.common import (  # noqa: E402
    SECRET_KEY,
    TokenFactory,
    TokenSet,
    cookie_header_from_set_cookies,
    renewal_cookie,
    starlette_cookies,
)
from benchmarks.loadgen import Connection, Server, percentile, rss_kib, wrk  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results.json"
ASGI_NAMES = list(apps.ASGI_APPS)
WSGI_NAMES = list(apps.WSGI_APPS)
LABELS = {
    "bare": "bare Starlette app",
    "starlette_session": "Starlette SessionMiddleware",
    "renewal_signed": "RenewalMiddleware, signed",
    "renewal_encrypted": "RenewalMiddleware, signed+encrypted",
    "wsgi_bare": "bare WSGI app",
    "wsgi_renewal_signed": "WSGIRenewalMiddleware, signed",
    "wsgi_renewal_encrypted": "WSGIRenewalMiddleware, signed+encrypted",
}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def loadavg() -> list[float]:
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


# -- configuration ------------------------------------------------------------------------------


def plan(quick: bool) -> dict[str, Any]:
    if quick:
        return dict(wrk_seconds=1, wrk_warmup=1, rounds=3, connections=32,
                    inproc_n=2_000, inproc_repeats=2, many_sessions=300, many_n=1_000,
                    many_repeats=2, p5_sessions=300, p5_requests=5_000, p5_warmup=1,
                    p5_phase=1, p5_min_warmup_passes=2, storm=200, renewals=4, advance=16)
    return dict(wrk_seconds=5, wrk_warmup=2, rounds=5, connections=32,
                inproc_n=50_000, inproc_repeats=5, many_sessions=5_000, many_n=10_000,
                many_repeats=3, p5_sessions=5_000, p5_requests=100_000, p5_warmup=8,
                p5_phase=8, p5_min_warmup_passes=4, storm=200, renewals=20, advance=16)


# -- machine ----------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    model = next((line.split(":", 1)[1].strip()
                  for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())
    mem = next((int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                if line.startswith("MemTotal:")), 0)
    return {"cpu_model": model, "cores": os.cpu_count(),
            "affinity_at_start": sorted(os.sched_getaffinity(0)),
            "memory_gib": round(mem / 2**20, 1), "kernel": platform.release(),
            "platform": platform.platform(), "pinned": loadgen.can_pin()}


def versions() -> dict[str, Any]:
    out: dict[str, Any] = {"python": sys.version.split()[0],
                           "implementation": platform.python_implementation()}
    for name in ("renewal-middleware", "starlette", "itsdangerous", "cryptography", "authlib",
                 "joserfc", "httpx", "uvicorn", "uvloop", "httptools", "h11", "waitress"):
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    import renewal_middleware

    out["renewal_middleware_path"] = str(Path(renewal_middleware.__file__).parent)
    out["wrk"] = loadgen.wrk_version()
    node = subprocess.run(["node", "--version"], capture_output=True, text=True, check=False)
    out["node"] = node.stdout.strip() or None
    package = ROOT / "tests" / "op" / "node_modules" / "oidc-provider" / "package.json"
    if package.exists():
        out["oidc-provider"] = json.loads(package.read_text()).get("version")
    git = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True,
                         text=True, check=False)
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--",
                            "renewal_middleware"], capture_output=True, text=True, check=False)
    out["git_commit"] = git.stdout.strip() or None
    out["package_source_modified"] = bool(dirty.stdout.strip())
    return out


def server_stack(loop: str, http: str) -> dict[str, str]:
    have_uvloop = importlib.util.find_spec("uvloop") is not None
    have_httptools = importlib.util.find_spec("httptools") is not None
    return {"loop": ("uvloop" if have_uvloop else "asyncio") if loop == "auto" else loop,
            "http": ("httptools" if have_httptools else "h11") if http == "auto" else http}


# -- sessions ---------------------------------------------------------------------------------


class Cookies:
    """The token sets and every app's cookie for them."""

    def __init__(self, many: int) -> None:
        started = time.perf_counter()
        self.factory = TokenFactory()
        now = int(time.time())
        first = self.factory.token_set(0, now)
        # Every session has its own access and refresh token; the ID token (read only at
        # logout) is shared, as RSA signing is the slow part of minting.
        self.sets: list[TokenSet] = [first] + [
            self.factory.token_set(i, now, id_token=first.id_token) for i in range(1, many)]
        self.tokens = first
        # Minting instances: same settings (and keys) as the apps the benchmarks serve.
        self.minters = {"signed": apps.renewal_signed(), "encrypted": apps.renewal_encrypted()}
        self.renewal = {kind: [renewal_cookie(mw, ts, now) for ts in self.sets]
                        for kind, mw in self.minters.items()}
        self.starlette = starlette_cookies(self.sets)
        self.seconds = time.perf_counter() - started

    def header(self, app: str, index: int = 0) -> str:
        """The Cookie header each app gets; the bare apps get the encrypted session's."""
        if app == "starlette_session":
            return self.starlette[index][0]
        kind = "signed" if app.endswith("_signed") else "encrypted"
        return self.renewal[kind][index][0]

    def digest(self, app: str, index: int = 0) -> str | None:
        if app in ("bare", "wsgi_bare"):
            return None
        return apps._digest(self.sets[index].access_token)


# -- P4: cookie bytes ---------------------------------------------------------------------------


def p4_cookie_bytes(cookies: Cookies) -> dict[str, Any]:
    tokens = cookies.tokens
    out: dict[str, Any] = {
        "token_set": {
            "access_token_bytes": len(tokens.access_token),
            "id_token_bytes": len(tokens.id_token),
            "refresh_token_chars": len(tokens.refresh_token),
            "claims_json_bytes": len(json.dumps(tokens.claims, separators=(",", ":"))),
        },
    }
    for kind in ("signed", "encrypted"):
        mw = cookies.minters[kind]
        value = mw.flows.sessions.encode(tokens.session(), time.time())
        set_cookies = mw.flows.sessions.cookie.set_headers(value, ())
        out[f"renewal_{kind}"] = {
            "value_bytes": len(value), "chunks": len(set_cookies),
            "set_cookie_bytes": sum(len(c) for c in set_cookies),
            "cookie_header_bytes": len(cookie_header_from_set_cookies(set_cookies)),
        }
    header, set_cookies = cookies.starlette[0]
    value = set_cookies[0].split(";", 1)[0].split("=", 1)[1]
    out["starlette_session"] = {
        "value_bytes": len(value), "chunks": len(set_cookies),
        "set_cookie_bytes": sum(len(c) for c in set_cookies),
        "cookie_header_bytes": len(header),
        "over_4096_browser_limit": any(len(c) > 4096 for c in set_cookies),
    }
    return out


# -- P1b / P1c in-process -------------------------------------------------------------------------


def p1_inprocess(cookies: Cookies, cfg: dict[str, Any]) -> dict[str, Any]:
    n, repeats = cfg["inproc_n"], cfg["inproc_repeats"]
    asgi_apps = {name: apps.ASGI_APPS[name]() for name in ASGI_NAMES}
    # Checks: 200, no Set-Cookie, and the app sees the session.
    for name, app in asgi_apps.items():
        scope, messages = asyncio.run(inprocess.asgi_once(
            app, inprocess.asgi_template(cookies.header(name))))
        start = messages[0]
        assert start["status"] == 200, (name, start)
        assert not [h for h in start["headers"] if h[0] == b"set-cookie"], name
        if name.startswith("renewal"):
            assert scope["auth"].access_token == cookies.tokens.access_token, name
        if name == "starlette_session":
            assert scope["session"]["access_token"] == cookies.tokens.access_token
    one = {name: (app, [inprocess.asgi_template(cookies.header(name))])
           for name, app in asgi_apps.items()}
    log(f"P1b in-process ASGI, one session: {n} calls x {repeats}")
    asgi_one = inprocess.asgi_us(one, n, repeats)

    many = cfg["many_sessions"]
    fresh = {name: apps.ASGI_APPS[name]() for name in ASGI_NAMES if name != "bare"}
    cycled = {name: (app, [inprocess.asgi_template(cookies.header(name, i))
                           for i in range(many)]) for name, app in fresh.items()}
    many_n, many_repeats = cfg["many_n"], cfg["many_repeats"]
    log(f"P1b in-process ASGI, {many} sessions cycled: {many_n} calls x {many_repeats}")
    asgi_many = inprocess.asgi_us(cycled, many_n, many_repeats)

    wsgi_apps = {name: apps.WSGI_APPS[name]() for name in WSGI_NAMES}
    for name, app in wsgi_apps.items():
        environ, status, headers, body = inprocess.wsgi_once(app, cookies.header(name))
        assert status.startswith("200") and body == b"ok", (name, status, body)
        assert not [h for h in headers if h[0].lower() == "set-cookie"], name
        if name != "wsgi_bare":
            auth = environ["renewal_middleware"].auth
            assert auth.access_token == cookies.tokens.access_token, name
    log(f"P1c in-process WSGI: {n} calls x {repeats}")
    wsgi_one = inprocess.wsgi_us(
        {name: (app, [inprocess.wsgi_template(cookies.header(name))])
         for name, app in wsgi_apps.items()}, n, repeats)
    fresh_wsgi = {name: apps.WSGI_APPS[name]() for name in WSGI_NAMES if name != "wsgi_bare"}
    wsgi_many = inprocess.wsgi_us(
        {name: (app, [inprocess.wsgi_template(cookies.header(name, i)) for i in range(many)])
         for name, app in fresh_wsgi.items()}, many_n, many_repeats)

    def added(table: dict[str, Any], bare: dict[str, Any]) -> None:
        for row in table.values():
            row["added_cpu_us"] = round(row["cpu_us"] - bare["cpu_us"], 3)
            row["added_wall_us"] = round(row["wall_us"] - bare["wall_us"], 3)

    added(asgi_one, asgi_one["bare"])
    added(asgi_many, asgi_one["bare"])
    added(wsgi_one, wsgi_one["wsgi_bare"])
    added(wsgi_many, wsgi_one["wsgi_bare"])
    return {"calls_per_run": n, "runs": repeats, "cycled_calls_per_run": many_n,
            "cycled_runs": many_repeats, "asgi_one_session": asgi_one,
            f"asgi_{many}_sessions_cycled": asgi_many, "wsgi_one_session": wsgi_one,
            f"wsgi_{many}_sessions_cycled": wsgi_many, "many_sessions": many}


# -- P1a / P1c under a server with wrk ------------------------------------------------------------


def p1_wrk(cookies: Cookies, cfg: dict[str, Any], kind: str, names: list[str],
           stack: dict[str, str]) -> dict[str, Any]:
    bare = names[0]
    made = [Server(kind, name, loop=stack["loop"], http=stack["http"]) if kind == "uvicorn"
            else Server(kind, name, threads=4) for name in names]
    rounds: list[dict[str, Any]] = []
    commands: dict[str, list[str]] = {}
    with loadgen.servers(*made) as running:
        by_name = {s.app: s for s in running}
        for name, server in by_name.items():
            loadgen.check_session(server.url, cookies.header(name), cookies.digest(name))
            wrk(server.url + "/", duration=cfg["wrk_warmup"], connections=cfg["connections"],
                headers=[f"Cookie: {cookies.header(name)}"])
        for index in range(cfg["rounds"]):
            order = names if index % 2 == 0 else list(reversed(names))
            this: dict[str, Any] = {}
            for name in order:
                sched = loadgen.sched_times(by_name[name].pid)
                result = wrk(by_name[name].url + "/", duration=cfg["wrk_seconds"],
                             connections=cfg["connections"],
                             headers=[f"Cookie: {cookies.header(name)}"])
                after = loadgen.sched_times(by_name[name].pid)
                waited = loadgen.wait_fraction(sched, after)
                cpu_us = (after[0] - sched[0]) / 1e3 / max(1, result.requests)
                if result.non_2xx or result.socket_errors:
                    raise RuntimeError(f"{name}: {result.non_2xx} non-2xx, "
                                       f"socket errors {result.socket_errors}")
                commands[name] = result.command
                this[name] = {"rps": result.rps, "requests": result.requests,
                              "latency_ms": result.latency_ms, "server_cpu_wait": waited,
                              "server_cpu_us_per_request": cpu_us}
            rounds.append(this)
            log(f"  round {index + 1}: " + ", ".join(
                f"{n} {this[n]['rps']:.0f}" for n in names))
        for name, server in by_name.items():  # still valid, still no Set-Cookie
            loadgen.check_session(server.url, cookies.header(name), cookies.digest(name))
        rss = {name: rss_kib(server.pid) for name, server in by_name.items()}
    summary: dict[str, Any] = {}
    bare_median = statistics.median(r[bare]["rps"] for r in rounds)
    bare_cpu = statistics.median(r[bare]["server_cpu_us_per_request"] for r in rounds)
    for name in names:
        cpu = statistics.median(r[name]["server_cpu_us_per_request"] for r in rounds)
        rps = [r[name]["rps"] for r in rounds]
        ratios = [r[name]["rps"] / r[bare]["rps"] for r in rounds]
        summary[name] = {
            "median_rps": round(statistics.median(rps), 1),
            "ratio_to_bare": round(statistics.median(rps) / bare_median, 4),
            "median_of_round_ratios": round(statistics.median(ratios), 4),
            "round_ratio_min": round(min(ratios), 4), "round_ratio_max": round(max(ratios), 4),
            "rps_runs": [round(v, 1) for v in rps],
            "p50_ms_median": round(statistics.median(
                r[name]["latency_ms"].get("p50", float("nan")) for r in rounds), 3),
            "p99_ms_median": round(statistics.median(
                r[name]["latency_ms"].get("p99", float("nan")) for r in rounds), 3),
            "server_cpu_us_per_request": round(cpu, 2),
            "cpu_ratio_to_bare": round(bare_cpu / cpu, 4),
            "server_cpu_us_runs": [round(r[name]["server_cpu_us_per_request"], 2)
                                   for r in rounds],
            "server_cpu_wait_median": _median_or_none(
                [r[name]["server_cpu_wait"] for r in rounds]),
            "rss_kib_after": rss[name],
            "cookie_header_bytes": len(cookies.header(name)),
        }
    return {"server": ({"kind": "uvicorn", "workers": 1, "access_log": False, **stack}
                       if kind == "uvicorn" else {"kind": "waitress", "threads": 4}),
            "server_command": made[0].argv(), "wrk_command_example": commands.get(names[-1]),
            "rounds": len(rounds), "seconds_per_run": cfg["wrk_seconds"],
            "connections": cfg["connections"], "apps": summary}


def _median_or_none(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return round(statistics.median(present), 4) if present else None


# -- P5 memory --------------------------------------------------------------------------------


def p5_memory(cookies: Cookies, cfg: dict[str, Any], stack: dict[str, str]) -> dict[str, Any]:
    sessions = cfg["p5_sessions"]
    headers = [cookies.header("renewal_encrypted", i) for i in range(sessions)]
    script = str(ROOT / "benchmarks" / "cycle_cookies.lua")
    fd, path = tempfile.mkstemp(prefix="bench-cookies-", suffix=".txt")
    with os.fdopen(fd, "w") as handle:
        handle.write("\n".join(headers) + "\n")
    samples: list[dict[str, Any]] = []
    server = Server("uvicorn", "renewal_encrypted", loop=stack["loop"], http=stack["http"])
    try:
        with loadgen.servers(server):
            rss_start = rss_kib(server.pid)
            loadgen.check_session(server.url, headers[0], cookies.digest("renewal_encrypted"))
            sent = 0
            warm_requests = 0
            warmup: list[dict[str, Any]] = [{"requests": 0, "rss_kib": rss_kib(server.pid)}]
            # Warm-up: every session several times (the caches fill, then evict), and on
            # until one phase moves RSS by less than 1% (at most 8 phases).
            while len(warmup) < 9:
                result = wrk(server.url + "/", duration=cfg["p5_warmup"],
                             connections=cfg["connections"], script=script,
                             script_args=[path, str(sent)])
                _check_cycle(result)
                warm_requests += result.requests
                sent += result.requests
                warmup.append({"requests": warm_requests, "rss_kib": rss_kib(server.pid)})
                moved = abs(warmup[-1]["rss_kib"] - warmup[-2]["rss_kib"]) / warmup[-2]["rss_kib"]
                if warm_requests >= cfg["p5_min_warmup_passes"] * sessions and moved < 0.01:
                    break
            rss_before = rss_kib(server.pid)
            samples.append({"requests": 0, "rss_kib": rss_before})
            measured = 0
            rates = []
            sched = loadgen.sched_times(server.pid)
            while measured < cfg["p5_requests"]:
                result = wrk(server.url + "/", duration=cfg["p5_phase"],
                             connections=cfg["connections"], script=script,
                             script_args=[path, str(sent)])
                _check_cycle(result)
                measured += result.requests
                sent += result.requests
                rates.append(result.rps)
                samples.append({"requests": measured, "rss_kib": rss_kib(server.pid)})
            rss_after = samples[-1]["rss_kib"]
            after = loadgen.sched_times(server.pid)
            waited = loadgen.wait_fraction(sched, after)
            cpu_us = (after[0] - sched[0]) / 1e3 / measured
            command = result.command
    finally:
        os.unlink(path)
    peak = max(s["rss_kib"] for s in samples)
    return {"server": "uvicorn, RenewalMiddleware signed+encrypted", "distinct_sessions": sessions,
            "warmup_requests": warm_requests, "measured_requests": measured,
            "rss_kib_at_start": rss_start, "rss_kib_before": rss_before,
            "rss_kib_after": rss_after, "rss_kib_peak": peak,
            "growth_pct": round(100 * (rss_after - rss_before) / rss_before, 2),
            "peak_growth_pct": round(100 * (peak - rss_before) / rss_before, 2),
            "median_rps_while_cycling": round(statistics.median(rates), 1),
            "server_cpu_wait": waited, "server_cpu_us_per_request": round(cpu_us, 2),
            "warmup_samples": warmup, "samples": samples, "wrk_command_example": command}


def _check_cycle(result: loadgen.WrkResult) -> None:
    extra = result.script_output
    if result.non_2xx or int(extra.get("bad", 0)) or int(extra.get("set_cookie", 0)):
        raise RuntimeError(f"P5: refused or renewed sessions: {result.non_2xx} non-2xx, {extra}")


# -- P2 / P3 against the real provider ------------------------------------------------------------


def _cookie_from_jar(client: Any) -> str:
    pairs = [(c.name, c.value) for c in client.cookies.jar
             if c.name == "renewal_session" or c.name.startswith("renewal_session.")]
    return "; ".join(f"{n}={v}" for n, v in sorted(pairs))


def _cookie_from_reply(reply: loadgen.Reply) -> str:
    values = [c for c in reply.header_list("set-cookie") if "Max-Age=0" not in c]
    return cookie_header_from_set_cookies(values)


DISCOVERY_PATH = "/.well-known/openid-configuration"


class RenewingServer:
    """The middleware against a provider (real or stand-in), with its clock and counters."""

    def __init__(self, issuer: str, stack: dict[str, str]) -> None:
        from tests.op.harness import CLIENT_ID as OP_CLIENT_ID
        from tests.op.harness import CLIENT_SECRET as OP_CLIENT_SECRET

        self.server = Server("uvicorn", "renewal_against_provider", loop=stack["loop"],
                             http=stack["http"])
        self.server.env = {"BENCH_ISSUER": issuer, "BENCH_BASE_URL": self.server.url,
                           "BENCH_SECRET_KEY": SECRET_KEY, "BENCH_CLIENT_ID": OP_CLIENT_ID,
                           "BENCH_CLIENT_SECRET": OP_CLIENT_SECRET}
        self.control: Connection | None = None

    async def open(self) -> None:
        self.control = await Connection.open(self.server.port)

    async def sent(self) -> dict[str, int]:
        assert self.control is not None
        reply = await self.control.request("GET", "/__bench/stats")
        return dict(json.loads(reply.body)["sent"])

    async def offset(self) -> float:
        assert self.control is not None
        reply = await self.control.request("GET", "/__bench/stats")
        return float(json.loads(reply.body)["offset"])

    async def advance(self, seconds: float) -> None:
        assert self.control is not None
        await self.control.request("POST", f"/__bench/clock?advance={seconds}")

    def cpu_ns(self) -> int:
        return loadgen.sched_times(self.server.pid)[0]


class TokenRoundTrips:
    """benchmarks/token_rtt.py on the server core: one token-endpoint round trip per call."""

    def __init__(self, endpoint: str, client_id: str, client_secret: str,
                 refresh_token: str) -> None:
        self.argv = loadgen.pinned(loadgen.SERVER_CORE, [
            sys.executable, str(ROOT / "benchmarks" / "token_rtt.py"), endpoint, client_id,
            client_secret, refresh_token])
        self.process: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> TokenRoundTrips:
        self.process = await asyncio.create_subprocess_exec(
            *self.argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
        return self

    async def __call__(self) -> float:
        assert self.process is not None and self.process.stdin and self.process.stdout
        self.process.stdin.write(b"go\n")
        await self.process.stdin.drain()
        line = (await self.process.stdout.readline()).decode().strip()
        if not line or line.startswith("error"):
            raise RuntimeError(f"token round trip failed: {line or 'no answer'}")
        return float(line)

    async def __aexit__(self, *exc: object) -> None:
        assert self.process is not None and self.process.stdin
        self.process.stdin.close()
        await self.process.wait()


async def _renewals(app: RenewingServer, cookie: str, direct: Any, count: int,
                    advance: float, token_path: str, jwks_path: str) -> dict[str, Any]:
    """``count`` + 1 times, interleaved: the token-endpoint round trip alone (``direct``, an
    async callable returning seconds), a request that renews, a request that passes through.
    The first triple warms the code paths and is dropped."""
    conn = await Connection.open(app.server.port)
    rtts: list[float] = []
    renewing: list[float] = []
    passing: list[float] = []
    renew_cpu: list[float] = []
    pass_cpu: list[float] = []
    sent_before = await app.sent()
    first_sent: dict[str, int] = {}
    for index in range(count + 1):
        rtts.append(await direct() * 1e3)
        await app.advance(advance)
        await asyncio.sleep(0.02)  # let the server go idle: its CPU time is then exact
        cpu0 = app.cpu_ns()
        renew = await conn.request("GET", "/", {"cookie": cookie})
        await asyncio.sleep(0.02)
        cpu1 = app.cpu_ns()
        if renew.status != 200 or not renew.header_list("set-cookie"):
            raise RuntimeError(f"P3: no renewal: {renew.status} {renew.headers}")
        cookie = _cookie_from_reply(renew)
        passthrough = await conn.request("GET", "/", {"cookie": cookie})
        await asyncio.sleep(0.02)
        cpu2 = app.cpu_ns()
        if passthrough.status != 200 or passthrough.header_list("set-cookie"):
            raise RuntimeError("P3: the renewed session is not fresh")
        renewing.append(renew.seconds * 1e3)
        passing.append(passthrough.seconds * 1e3)
        renew_cpu.append((cpu1 - cpu0) / 1e6)
        pass_cpu.append((cpu2 - cpu1) / 1e6)
        if index == 0:
            first_sent = _delta(await app.sent(), sent_before)
            sent_before = await app.sent()
    steady = _delta(await app.sent(), sent_before)
    await conn.close()
    rtts, renewing, passing = rtts[1:], renewing[1:], passing[1:]
    renew_cpu, pass_cpu = renew_cpu[1:], pass_cpu[1:]
    med = statistics.median
    return {
        "renewals": count,
        "token_endpoint_rtt_ms_median": round(med(rtts), 3),
        "renewing_request_ms_median": round(med(renewing), 3),
        "passthrough_request_ms_median": round(med(passing), 3),
        "added_ms_median": round(med(renewing) - med(rtts), 3),
        "added_ms_median_of_pairs": round(med(r - t for r, t in zip(renewing, rtts,
                                                                    strict=True)), 3),
        "server_cpu_ms_renewing_median": round(med(renew_cpu), 3),
        "server_cpu_ms_passthrough_median": round(med(pass_cpu), 3),
        "server_cpu_ms_added_by_renewal": round(med(renew_cpu) - med(pass_cpu), 3),
        "token_rtt_ms_runs": [round(v, 3) for v in rtts],
        "renewing_ms_runs": [round(v, 3) for v in renewing],
        "provider_requests_first_renewal": first_sent,
        "provider_requests_steady_state": steady,
        "token_requests_per_renewal": round(steady.get(token_path, 0) / count, 3),
        "discovery_fetches_per_renewal": round(steady.get(DISCOVERY_PATH, 0) / count, 3),
        "jwks_fetches_per_renewal": round(steady.get(jwks_path, 0) / count, 3),
        "clock_offset_s_at_end": await app.offset(),
    }


async def p2_p3_provider(cfg: dict[str, Any], stack: dict[str, str]) -> dict[str, Any]:
    """P2 (storm) and P3 (renewal latency) against the real oidc-provider."""
    import httpx

    from renewal_middleware.config import Settings
    from renewal_middleware.flows import Flows
    from tests.op.harness import CLIENT_ID as OP_CLIENT_ID
    from tests.op.harness import CLIENT_SECRET as OP_CLIENT_SECRET
    from tests.op.harness import login, start_provider

    ttl = 30
    op = start_provider(access_token_ttl=ttl)
    app = RenewingServer(op.issuer, stack)
    discovery = op.discovery()
    token_path = httpx.URL(discovery["token_endpoint"]).path
    jwks_path = httpx.URL(discovery["jwks_uri"]).path
    try:
        with loadgen.servers(app.server):
            async with httpx.AsyncClient(trust_env=False, timeout=30) as one, \
                    httpx.AsyncClient(trust_env=False, timeout=30) as two:
                final = await login(one, app.server.url)
                if final.status_code != 200 or final.text != "ok":
                    raise RuntimeError(f"login failed: {final.status_code} {final.text[:200]}")
                await login(two, app.server.url)
            storm_cookie, direct_cookie = _cookie_from_jar(one), _cookie_from_jar(two)
            # The second session's refresh token, for round trips to the token endpoint alone.
            flows = Flows(Settings.load(issuer=op.issuer, client_id=OP_CLIENT_ID,
                                        client_secret=OP_CLIENT_SECRET,
                                        secret_keys=[SECRET_KEY], base_url=app.server.url),
                          time.time)
            view = flows.sessions.load(direct_cookie, time.time()).view
            assert view is not None and view.session.refresh_token
            refresh_token = view.session.refresh_token
            await app.open()

            def grants() -> int:
                return int(op.stats()["grants"].get("refresh_token", 0))

            # -- P2: a renewal storm of one session ----------------------------------------
            assert app.control is not None
            before = await app.control.request("GET", "/__bench/who", {"cookie": storm_cookie})
            old_digest = json.loads(before.body)["access_token"]
            conns = [await Connection.open(app.server.port) for _ in range(cfg["storm"])]
            grants_before, sent_before = grants(), await app.sent()
            await app.advance(cfg["advance"])
            started = time.perf_counter()
            replies = await asyncio.gather(*(c.request("GET", "/__bench/who",
                                                       {"cookie": storm_cookie})
                                             for c in conns))
            wall = time.perf_counter() - started
            grants_storm = grants() - grants_before
            sent_storm = _delta(await app.sent(), sent_before)
            for c in conns:
                await c.close()
            bodies = [json.loads(r.body) if r.status == 200 else {} for r in replies]
            digests = {b.get("access_token") for b in bodies}
            set_values = {_cookie_from_reply(r) for r in replies}
            latencies = [r.seconds * 1e3 for r in replies]
            storm = {
                "concurrent_requests": len(replies), "refresh_token_grants": grants_storm,
                "statuses": sorted({r.status for r in replies}),
                "all_authenticated": all(b.get("authenticated") for b in bodies),
                "distinct_access_tokens_seen_by_app": len(digests),
                "app_saw_the_new_token": old_digest not in digests,
                "responses_with_set_cookie": sum(bool(r.header_list("set-cookie"))
                                                 for r in replies),
                "distinct_set_cookie_values": len(set_values),
                "latency_ms_p50": round(percentile(latencies, 50), 2),
                "latency_ms_p99": round(percentile(latencies, 99), 2),
                "latency_ms_max": round(max(latencies), 2),
                "wall_ms": round(wall * 1e3, 2), "provider_requests_by_path": sent_storm,
            }
            log(f"P2 storm: {grants_storm} refresh grant(s) for {len(replies)} requests, "
                f"p50 {storm['latency_ms_p50']} ms, p99 {storm['latency_ms_p99']} ms")

            # -- P3: one renewing request vs one token-endpoint round trip ------------------
            grants_before = grants()
            async with TokenRoundTrips(discovery["token_endpoint"], OP_CLIENT_ID,
                                       OP_CLIENT_SECRET, refresh_token) as direct:
                renewal = await _renewals(app, next(iter(set_values)), direct,
                                          cfg["renewals"], cfg["advance"], token_path,
                                          jwks_path)
            renewal["refresh_grants_at_provider"] = grants() - grants_before
            renewal["provider_access_token_ttl_s"] = ttl
    finally:
        op.stop()
    log(f"P3 (oidc-provider): rtt {renewal['token_endpoint_rtt_ms_median']} ms, renewing "
        f"{renewal['renewing_request_ms_median']} ms, added {renewal['added_ms_median']} ms")
    return {"provider": f"oidc-provider {op.issuer}", "storm": storm, "renewal": renewal}


async def p3_stand_in(cfg: dict[str, Any], stack: dict[str, str]) -> dict[str, Any]:
    """P3 against a local stand-in token endpoint (benchmarks.apps.token_stand_in)."""
    import httpx

    from renewal_middleware import Session
    from renewal_middleware.config import Settings
    from renewal_middleware.flows import Flows
    from tests.op.harness import CLIENT_ID as OP_CLIENT_ID
    from tests.op.harness import CLIENT_SECRET as OP_CLIENT_SECRET

    stand_in = Server("uvicorn", "token_stand_in", loop=stack["loop"], http=stack["http"],
                      core=loadgen.CLIENT_CORE)
    stand_in.env = {"BENCH_STANDIN_ISSUER": stand_in.url, "BENCH_CLIENT_ID": OP_CLIENT_ID}
    app = RenewingServer(stand_in.url, stack)
    with loadgen.servers(stand_in, app.server):
        async with httpx.AsyncClient(trust_env=False, timeout=30) as http:
            canned = (await http.get(stand_in.url + "/__session")).json()
            now = time.time()
            flows = Flows(Settings.load(issuer=stand_in.url, client_id=OP_CLIENT_ID,
                                        client_secret=OP_CLIENT_SECRET,
                                        secret_keys=[SECRET_KEY], base_url=app.server.url),
                          time.time)
            value = flows.sessions.encode(Session(
                id="stand-in-session", access_token=canned["access_token"],
                expires_at=int(now) + 30, obtained_at=int(now),
                refresh_token="initial-" + "r" * 35, id_token=canned["id_token"],
                claims=canned["claims"], scope="openid profile email offline_access"), now)
            cookie = cookie_header_from_set_cookies(
                flows.sessions.cookie.set_headers(value, ()))
            await app.open()
        async with TokenRoundTrips(stand_in.url + "/token", OP_CLIENT_ID, OP_CLIENT_SECRET,
                                   "r" * 43) as direct:
            renewal = await _renewals(app, cookie, direct, cfg["renewals"], cfg["advance"],
                                      "/token", "/jwks")
    log(f"P3 (stand-in): rtt {renewal['token_endpoint_rtt_ms_median']} ms, renewing "
        f"{renewal['renewing_request_ms_median']} ms, added {renewal['added_ms_median']} ms")
    return {"provider": "local stand-in token endpoint (benchmarks.apps.token_stand_in)",
            "renewal": renewal}


def _delta(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {k: after.get(k, 0) - before.get(k, 0) for k in after
            if after.get(k, 0) - before.get(k, 0)}


# -- the table ----------------------------------------------------------------------------------


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []

    def add(name: str, target: str, value: Any, met: bool) -> None:
        out.append({"what": name, "target": target, "value": value, "met": met})

    asgi = results["p1a_asgi_wrk"]["apps"]
    for name in ("renewal_signed", "renewal_encrypted"):
        ratio = asgi[name]["ratio_to_bare"]
        add(f"P1a {LABELS[name]}: req/s vs bare", ">= 0.95x (aim 0.97x)", ratio, ratio >= 0.95)
        cpu = asgi[name]["cpu_ratio_to_bare"]
        add(f"P1a {LABELS[name]}: server CPU per request, bare/this", ">= 0.95x (aim 0.97x)",
            cpu, cpu >= 0.95)
    one = results["p1b_inprocess"]["asgi_one_session"]
    limit = one["starlette_session"]["cpu_us"]
    for name in ("renewal_signed", "renewal_encrypted"):
        add(f"P1b {LABELS[name]}: CPU us per request", f"<= SessionMiddleware ({limit} us)",
            one[name]["cpu_us"], one[name]["cpu_us"] <= limit)
    wsgi = results["p1c_wsgi_wrk"]["apps"]
    for name in ("wsgi_renewal_signed", "wsgi_renewal_encrypted"):
        ratio = wsgi[name]["ratio_to_bare"]
        add(f"P1c {LABELS[name]}: req/s vs bare", ">= 0.95x", ratio, ratio >= 0.95)
        cpu = wsgi[name]["cpu_ratio_to_bare"]
        add(f"P1c {LABELS[name]}: server CPU per request, bare/this", ">= 0.95x", cpu,
            cpu >= 0.95)
    storm = results["p2_p3_provider"]["storm"]
    add("P2 refresh_token grants for 200 concurrent requests of one session", "exactly 1",
        storm["refresh_token_grants"], storm["refresh_token_grants"] == 1)
    for key, where in (("p2_p3_provider", "oidc-provider"), ("p3_stand_in", "stand-in")):
        renewal = results[key]["renewal"]
        add(f"P3 ({where}) latency added over one token-endpoint round trip (ms, median)",
            "<= 2 ms", renewal["added_ms_median"], renewal["added_ms_median"] <= 2.0)
        fetches = renewal["discovery_fetches_per_renewal"] + renewal["jwks_fetches_per_renewal"]
        add(f"P3 ({where}) discovery/JWKS fetches per renewal (steady state)", "0", fetches,
            fetches == 0)
    memory = results["p5_memory"]
    add("P5 RSS growth after warm-up (%)", "<= 5%", memory["growth_pct"],
        abs(memory["growth_pct"]) <= 5)
    return out


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def table(results: dict[str, Any]) -> str:
    lines: list[str] = []
    meta = results["meta"]
    m, v = meta["machine"], meta["versions"]
    lines.append(f"renewal_middleware benchmarks ({'quick' if meta['quick'] else 'full'} run, "
                 f"{meta['started_at']})")
    lines.append(f"machine: {m['cpu_model']}, {m['cores']} cores, {m['memory_gib']} GiB, "
                 f"Linux {m['kernel']}; servers on core 0, wrk/clients on core 1: {m['pinned']}")
    lines.append(f"load average (other work on the machine): at start {meta['loadavg_start']}, "
                 f"at end {meta['loadavg_end']}")
    lines.append(f"python {v['python']}; renewal-middleware {v['renewal-middleware']} "
                 f"(git {str(v['git_commit'])[:10]}), starlette {v['starlette']}, itsdangerous "
                 f"{v['itsdangerous']}, cryptography {v['cryptography']}, authlib "
                 f"{v['authlib']}, joserfc {v['joserfc']}, httpx {v['httpx']}, uvicorn "
                 f"{v['uvicorn']} ({meta['uvicorn']['loop']}/{meta['uvicorn']['http']}), "
                 f"waitress {v['waitress']}, wrk {v['wrk'].split()[1] if v['wrk'] else '?'}, "
                 f"node {v['node']}, oidc-provider {v.get('oidc-provider')}")
    lines.append(f"command: {meta['command']}")
    lines.append("cpu = CPU time (server: /proc/PID/schedstat; in-process: thread CPU time); "
                 "cpu wait = share of the time a server was runnable that it waited for a core")

    p4 = results["p4_cookie_bytes"]
    ts = p4["token_set"]
    lines += ["", f"P4 cookie bytes: access token {ts['access_token_bytes']} B (RS256 JWT with "
              f"aud), ID token {ts['id_token_bytes']} B, refresh token "
              f"{ts['refresh_token_chars']} chars, claims {ts['claims_json_bytes']} B"]
    lines.append(f"  {'':42} {'value':>7} {'chunks':>7} {'Set-Cookie':>11} {'Cookie hdr':>11}")
    for key in ("renewal_signed", "renewal_encrypted", "starlette_session"):
        row = p4[key]
        lines.append(f"  {LABELS[key]:42} {row['value_bytes']:>7} {row['chunks']:>7} "
                     f"{row['set_cookie_bytes']:>11} {row['cookie_header_bytes']:>11}")

    def served(section: dict[str, Any], inproc_one: dict[str, Any],
               inproc_many: dict[str, Any]) -> None:
        lines.append(f"  {'':42} {'req/s':>7} {'x bare':>7} {'rounds x bare':>13} "
                     f"{'p50 ms':>7} {'p99 ms':>7} {'cpu us/req':>10} {'x bare':>7} "
                     f"{'cpu wait':>8} | {'in-proc cpu us':>14} {'+bare':>6} "
                     f"{f'{many} sess':>10} {'+bare':>6}")
        for name, row in section["apps"].items():
            one, cyc = inproc_one[name], inproc_many.get(name)
            tail = (f" {cyc['cpu_us']:>10.2f} {cyc['added_cpu_us']:>6.2f}" if cyc
                    else f" {'':>10} {'':>6}")
            lines.append(
                f"  {LABELS[name]:42} {row['median_rps']:>7.0f} {row['ratio_to_bare']:>7.3f} "
                f"{row['round_ratio_min']:>6.2f}-{row['round_ratio_max']:<6.2f} "
                f"{row['p50_ms_median']:>7.2f} {row['p99_ms_median']:>7.2f} "
                f"{row['server_cpu_us_per_request']:>10.1f} {row['cpu_ratio_to_bare']:>7.3f} "
                f"{_pct(row['server_cpu_wait_median']):>8} | {one['cpu_us']:>14.2f} "
                f"{one['added_cpu_us']:>6.2f}{tail}")

    b = results["p1b_inprocess"]
    many = b["many_sessions"]
    a = results["p1a_asgi_wrk"]
    lines += ["", f"P1a/P1b pass-through (valid session, no renewal due): uvicorn "
              f"{a['server']['loop']}/{a['server']['http']}, 1 worker, no access log; wrk -t1 "
              f"-c{a['connections']} -d{a['seconds_per_run']}s, {a['rounds']} rounds "
              f"alternated, medians; in-process: best of {b['runs']} x {b['calls_per_run']} "
              f"calls, 1 session or {many} distinct sessions cycled"]
    served(a, b["asgi_one_session"], b[f"asgi_{many}_sessions_cycled"])
    c = results["p1c_wsgi_wrk"]
    lines += ["", f"P1c WSGI pass-through: waitress --threads {c['server']['threads']}; same "
              "wrk and in-process method"]
    served(c, b["wsgi_one_session"], b[f"wsgi_{many}_sessions_cycled"])

    p = results["p2_p3_provider"]
    s = p["storm"]
    lines += ["", "P2 renewal storm: oidc-provider on 127.0.0.1, one session moved into its "
              "grace window, all requests sent at once on open connections"]
    lines.append(f"  {s['concurrent_requests']} concurrent requests -> "
                 f"{s['refresh_token_grants']} refresh_token grant(s); latency p50 "
                 f"{s['latency_ms_p50']} ms, p99 {s['latency_ms_p99']} ms, max "
                 f"{s['latency_ms_max']} ms (all {s['concurrent_requests']} in "
                 f"{s['wall_ms']} ms)")
    lines.append(f"  statuses {s['statuses']}; {s['responses_with_set_cookie']} answers carry "
                 f"the new cookie ({s['distinct_set_cookie_values']} distinct value); the app "
                 f"saw {s['distinct_access_tokens_seen_by_app']} access token(s), the new one: "
                 f"{s['app_saw_the_new_token']}; provider requests "
                 f"{s['provider_requests_by_path']}")
    for key, where in (("p2_p3_provider", "oidc-provider on 127.0.0.1"),
                       ("p3_stand_in", "local stand-in token endpoint, canned answer")):
        r = results[key]["renewal"]
        lines += ["", f"P3 one renewing request against {where} ({r['renewals']} renewals, "
                  "medians; token round trip, renewing and pass-through requests interleaved)"]
        rows = [
            ("token endpoint round trip alone (httpx, core 0)",
         r["token_endpoint_rtt_ms_median"]),
            ("request that renews", r["renewing_request_ms_median"]),
            ("request that passes through (same connection)",
             r["passthrough_request_ms_median"]),
            ("added over one round trip", r["added_ms_median"]),
            ("  same, median of per-renewal differences", r["added_ms_median_of_pairs"]),
            ("server CPU: renewing request", r["server_cpu_ms_renewing_median"]),
            ("server CPU: pass-through request", r["server_cpu_ms_passthrough_median"]),
            ("server CPU added by a renewal", r["server_cpu_ms_added_by_renewal"]),
        ]
        for label, value in rows:
            lines.append(f"  {label:48} {value:>8.3f} ms")
        lines.append(f"  provider requests per renewal at steady state: token "
                     f"{r['token_requests_per_renewal']}, discovery "
                     f"{r['discovery_fetches_per_renewal']}, JWKS {r['jwks_fetches_per_renewal']}"
                     f" (first renewal: {r['provider_requests_first_renewal']})")

    mem = results["p5_memory"]
    lines += ["", f"P5 memory: one uvicorn process (signed+encrypted), "
              f"{mem['distinct_sessions']} distinct sessions cycled by wrk, "
              f"{mem['warmup_requests']} warm-up + {mem['measured_requests']} measured requests"]
    curve = ", ".join(f"{s['rss_kib'] / 1024:.0f}" for s in mem["warmup_samples"])
    lines.append(f"  VmRSS during warm-up (MiB, one value per phase): {curve}")
    lines.append(f"  VmRSS: at start {mem['rss_kib_at_start'] / 1024:.1f} MiB, after warm-up "
                 f"{mem['rss_kib_before'] / 1024:.1f} MiB, at the end "
                 f"{mem['rss_kib_after'] / 1024:.1f} MiB: growth {mem['growth_pct']}% (peak "
                 f"{mem['peak_growth_pct']}%)")
    lines.append(f"  {mem['median_rps_while_cycling']:.0f} req/s, "
                 f"{mem['server_cpu_us_per_request']} us server CPU per request while cycling "
                 f"(cpu wait {_pct(mem['server_cpu_wait'])})")

    lines += ["", "targets"]
    for t in results["targets"]:
        lines.append(f"  [{'met' if t['met'] else 'MISSED'}] {t['what']}: {t['value']} "
                     f"(target {t['target']})")
    lines.append(f"\nwrote {RESULTS.relative_to(ROOT)} in {meta['seconds']:.0f} s")
    return "\n".join(lines)


# -- profile (optional) -------------------------------------------------------------------------


def profile(cookies: Cookies, calls: int) -> dict[str, str]:
    """pyinstrument over the in-process pass-through loop of each ASGI app; text files."""
    from pyinstrument import Profiler

    written = {}
    for name in ASGI_NAMES:
        app = apps.ASGI_APPS[name]()
        templates = [inprocess.asgi_template(cookies.header(name))]
        asyncio.run(inprocess._asgi_loop(app, templates, 1000))
        profiler = Profiler(interval=0.001, async_mode="disabled")
        profiler.start()
        asyncio.run(inprocess._asgi_loop(app, templates, calls))
        profiler.stop()
        path = ROOT / "benchmarks" / f"profile-{name}.txt"
        path.write_text(profiler.output_text(unicode=True, show_all=True, short_mode=False))
        written[name] = str(path.relative_to(ROOT))
    return written


# -- main -------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a smoke run (< 1 minute)")
    parser.add_argument("--loop", default="auto", help="uvicorn --loop (default auto)")
    parser.add_argument("--http", default="auto", help="uvicorn --http (default auto)")
    parser.add_argument("--output", default=str(RESULTS), help="where to write the JSON")
    parser.add_argument("--profile", action="store_true",
                        help="only profile the in-process pass-through of each ASGI app "
                             "(pyinstrument) into benchmarks/profile-*.txt")
    args = parser.parse_args()
    if args.profile:
        if loadgen.can_pin():
            os.sched_setaffinity(0, {int(loadgen.CLIENT_CORE)})
        for name, path in profile(Cookies(1), 5_000 if args.quick else 20_000).items():
            print(f"{name}: {path}")
        return 0
    if not loadgen.have_wrk():
        print("wrk is missing: apt-get install -y wrk", file=sys.stderr)
        return 2
    started = time.perf_counter()
    cfg = plan(args.quick)
    stack = server_stack(args.loop, args.http)
    command = " ".join(shlex.quote(a) for a in ["python", *sys.argv])
    if os.environ.get("TOX_ENV_NAME"):
        command = f"tox -e {os.environ['TOX_ENV_NAME']} (runs: {command})"
    meta: dict[str, Any] = {"quick": args.quick, "command": command, "argv": sys.argv,
                            "executable": sys.executable, "cwd": os.getcwd(),
                            "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                            "machine": machine(), "versions": versions(), "uvicorn": stack,
                            "plan": cfg, "loadavg_start": loadavg(), "loadavg_by_section": {}}
    if loadgen.can_pin():
        os.sched_setaffinity(0, {int(loadgen.CLIENT_CORE)})
    results: dict[str, Any] = {"meta": meta}
    log(f"minting {max(cfg['many_sessions'], cfg['p5_sessions'])} token sets and cookies")
    cookies = Cookies(max(cfg["many_sessions"], cfg["p5_sessions"]))
    meta["minting_seconds"] = round(cookies.seconds, 1)
    results["p4_cookie_bytes"] = p4_cookie_bytes(cookies)
    sections = [
        ("p1b_inprocess", lambda: p1_inprocess(cookies, cfg)),
        ("p1a_asgi_wrk", lambda: p1_wrk(cookies, cfg, "uvicorn", ASGI_NAMES, stack)),
        ("p1c_wsgi_wrk", lambda: p1_wrk(cookies, cfg, "waitress", WSGI_NAMES, stack)),
        ("p5_memory", lambda: p5_memory(cookies, cfg, stack)),
        ("p2_p3_provider", lambda: asyncio.run(p2_p3_provider(cfg, stack))),
        ("p3_stand_in", lambda: asyncio.run(p3_stand_in(cfg, stack))),
    ]
    for key, run in sections:
        log(key)
        results[key] = run()
        meta["loadavg_by_section"][key] = loadavg()
    meta["loadavg_end"] = loadavg()
    meta["seconds"] = round(time.perf_counter() - started, 1)
    results["targets"] = targets(results)
    output = Path(args.output)
    output.write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
