"""P1: the pass-through cost of a valid session far from renewal. P1a: ASGI apps under uvicorn
with wrk; P1b: the same apps called in-process (one session, and many cycled); P1c: WSGI apps
under waitress with wrk, and in-process."""

from __future__ import annotations

import asyncio
import statistics
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from benchmarks import apps, inprocess, loadgen
from benchmarks.loadgen import Server, rss_kib, wrk
from benchmarks.suite import LABELS, ROOT, Context, Cookies, Section, log, pct, target

ASGI_NAMES = list(apps.ASGI_APPS)
WSGI_NAMES = list(apps.WSGI_APPS)

Calls = dict[str, tuple[Any, list[dict[str, Any]]]]


# -- in-process (P1b, and P1c's in-process figures) ---------------------------------------------


def _check_asgi(made: dict[str, Any], cookies: Cookies) -> None:
    """200, no Set-Cookie, and the app sees the session."""
    for name, app in made.items():
        scope, messages = asyncio.run(inprocess.asgi_once(
            app, inprocess.asgi_template(cookies.header(name))))
        start = messages[0]
        assert start["status"] == 200, (name, start)
        assert not [h for h in start["headers"] if h[0] == b"set-cookie"], name
        if name.startswith("renewal"):
            assert scope["auth"].access_token == cookies.tokens.access_token, name
        if name == "starlette_session":
            assert scope["session"]["access_token"] == cookies.tokens.access_token


def _check_wsgi(made: dict[str, Any], cookies: Cookies) -> None:
    for name, app in made.items():
        environ, status, headers, body = inprocess.wsgi_once(app, cookies.header(name))
        assert status.startswith("200") and body == b"ok", (name, status, body)
        assert not [h for h in headers if h[0].lower() == "set-cookie"], name
        if name != "wsgi_bare":
            auth = environ["renewal_middleware"].auth
            assert auth.access_token == cookies.tokens.access_token, name


@dataclass(frozen=True)
class _Driver:
    """How one kind of app (ASGI or WSGI) is checked and timed in-process."""

    label: str
    factories: Mapping[str, Callable[[], Any]]
    bare: str
    check: Callable[[dict[str, Any], Cookies], None]
    template: Callable[[str | None], dict[str, Any]]
    timed: Callable[[Calls, int, int], dict[str, dict[str, Any]]]


ASGI = _Driver("P1b in-process ASGI", apps.ASGI_APPS, "bare", _check_asgi,
               inprocess.asgi_template, inprocess.asgi_us)
WSGI = _Driver("P1c in-process WSGI", apps.WSGI_APPS, "wsgi_bare", _check_wsgi,
               inprocess.wsgi_template, inprocess.wsgi_us)


def _timed(driver: _Driver, ctx: Context) -> tuple[dict[str, Any], dict[str, Any]]:
    """(one session, sessions cycled): µs per call of each app, and what it adds to bare."""
    cfg, cookies = ctx.cfg, ctx.cookies
    n, repeats, many = cfg["inproc_n"], cfg["inproc_repeats"], cfg["many_sessions"]
    made = {name: factory() for name, factory in driver.factories.items()}
    driver.check(made, cookies)
    log(f"{driver.label}, one session: {n} calls x {repeats}")
    one = driver.timed({name: (app, [driver.template(cookies.header(name))])
                        for name, app in made.items()}, n, repeats)
    # Fresh instances: nothing cached from the single session.
    fresh = {name: factory() for name, factory in driver.factories.items()
             if name != driver.bare}
    log(f"{driver.label}, {many} sessions cycled: {cfg['many_n']} calls x "
        f"{cfg['many_repeats']}")
    cycled = driver.timed({name: (app, [driver.template(cookies.header(name, i))
                                        for i in range(many)])
                           for name, app in fresh.items()}, cfg["many_n"], cfg["many_repeats"])
    bare = one[driver.bare]
    for row in [*one.values(), *cycled.values()]:
        row["added_cpu_us"] = round(row["cpu_us"] - bare["cpu_us"], 3)
        row["added_wall_us"] = round(row["wall_us"] - bare["wall_us"], 3)
    return one, cycled


def in_process(ctx: Context) -> dict[str, Any]:
    cfg = ctx.cfg
    many = cfg["many_sessions"]
    asgi_one, asgi_many = _timed(ASGI, ctx)
    wsgi_one, wsgi_many = _timed(WSGI, ctx)
    return {"calls_per_run": cfg["inproc_n"], "runs": cfg["inproc_repeats"],
            "cycled_calls_per_run": cfg["many_n"], "cycled_runs": cfg["many_repeats"],
            "asgi_one_session": asgi_one, f"asgi_{many}_sessions_cycled": asgi_many,
            "wsgi_one_session": wsgi_one, f"wsgi_{many}_sessions_cycled": wsgi_many,
            "many_sessions": many}


# -- under a server, with wrk (P1a, P1c) ----------------------------------------------------------


def _wrk_run(server: Server, name: str, ctx: Context) -> tuple[dict[str, Any], list[str]]:
    """One measured wrk run of ``name``: its figures and the wrk command."""
    sched = loadgen.sched_times(server.pid)
    result = wrk(server.url + "/", duration=ctx.cfg["wrk_seconds"],
                 connections=ctx.cfg["connections"],
                 headers=[f"Cookie: {ctx.cookies.header(name)}"])
    after = loadgen.sched_times(server.pid)
    if result.non_2xx or result.socket_errors:
        raise RuntimeError(f"{name}: {result.non_2xx} non-2xx, "
                           f"socket errors {result.socket_errors}")
    return {"rps": result.rps, "requests": result.requests, "latency_ms": result.latency_ms,
            "server_cpu_wait": loadgen.wait_fraction(sched, after),
            "server_cpu_us_per_request": (after[0] - sched[0]) / 1e3 / max(1, result.requests)
            }, result.command


def _rounds(by_name: dict[str, Server], names: list[str], ctx: Context,
            commands: dict[str, list[str]]) -> list[dict[str, Any]]:
    """Warm-up, then the measured rounds, apps alternated; the apps checked before and after."""
    cookies = ctx.cookies
    for name, server in by_name.items():
        loadgen.check_session(server.url, cookies.header(name), cookies.digest(name))
        wrk(server.url + "/", duration=ctx.cfg["wrk_warmup"], connections=ctx.cfg["connections"],
            headers=[f"Cookie: {cookies.header(name)}"])
    rounds: list[dict[str, Any]] = []
    for index in range(ctx.cfg["rounds"]):
        this: dict[str, Any] = {}
        for name in names if index % 2 == 0 else list(reversed(names)):
            this[name], commands[name] = _wrk_run(by_name[name], name, ctx)
        rounds.append(this)
        log(f"  round {index + 1}: " + ", ".join(f"{n} {this[n]['rps']:.0f}" for n in names))
    for name, server in by_name.items():  # still valid, still no Set-Cookie
        loadgen.check_session(server.url, cookies.header(name), cookies.digest(name))
    return rounds


def _median_or_none(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return round(statistics.median(present), 4) if present else None


def _summary(rounds: list[dict[str, Any]], name: str, bare: str) -> dict[str, Any]:
    med = statistics.median
    cpu = med(r[name]["server_cpu_us_per_request"] for r in rounds)
    rps = [r[name]["rps"] for r in rounds]
    ratios = [r[name]["rps"] / r[bare]["rps"] for r in rounds]
    return {
        "median_rps": round(med(rps), 1),
        "ratio_to_bare": round(med(rps) / med(r[bare]["rps"] for r in rounds), 4),
        "median_of_round_ratios": round(med(ratios), 4),
        "round_ratio_min": round(min(ratios), 4), "round_ratio_max": round(max(ratios), 4),
        "rps_runs": [round(v, 1) for v in rps],
        "p50_ms_median": round(med(
            r[name]["latency_ms"].get("p50", float("nan")) for r in rounds), 3),
        "p99_ms_median": round(med(
            r[name]["latency_ms"].get("p99", float("nan")) for r in rounds), 3),
        "server_cpu_us_per_request": round(cpu, 2),
        "cpu_ratio_to_bare": round(
            med(r[bare]["server_cpu_us_per_request"] for r in rounds) / cpu, 4),
        "server_cpu_us_runs": [round(r[name]["server_cpu_us_per_request"], 2) for r in rounds],
        "server_cpu_wait_median": _median_or_none([r[name]["server_cpu_wait"] for r in rounds]),
    }


def _served(ctx: Context, kind: str, names: list[str]) -> dict[str, Any]:
    stack = ctx.stack
    made = [Server(kind, name, loop=stack["loop"], http=stack["http"]) if kind == "uvicorn"
            else Server(kind, name, threads=4) for name in names]
    commands: dict[str, list[str]] = {}
    with loadgen.servers(*made) as running:
        by_name = {s.app: s for s in running}
        rounds = _rounds(by_name, names, ctx, commands)
        rss = {name: rss_kib(server.pid) for name, server in by_name.items()}
    summary = {name: {**_summary(rounds, name, names[0]), "rss_kib_after": rss[name],
                      "cookie_header_bytes": len(ctx.cookies.header(name))} for name in names}
    return {"server": ({"kind": "uvicorn", "workers": 1, "access_log": False, **stack}
                       if kind == "uvicorn" else {"kind": "waitress", "threads": 4}),
            "server_command": made[0].argv(), "wrk_command_example": commands.get(names[-1]),
            "rounds": len(rounds), "seconds_per_run": ctx.cfg["wrk_seconds"],
            "connections": ctx.cfg["connections"], "apps": summary}


SECTIONS: tuple[Section, ...] = (
    Section("p1b_inprocess", in_process),
    Section("p1a_asgi_wrk", lambda ctx: _served(ctx, "uvicorn", ASGI_NAMES)),
    Section("p1c_wsgi_wrk", lambda ctx: _served(ctx, "waitress", WSGI_NAMES)),
)


# -- the table --------------------------------------------------------------------------------


def _served_rows(section: dict[str, Any], one_session: dict[str, Any],
                 cycled: dict[str, Any], many: int) -> list[str]:
    lines = [f"  {'':42} {'req/s':>7} {'x bare':>7} {'rounds x bare':>13} "
             f"{'p50 ms':>7} {'p99 ms':>7} {'cpu us/req':>10} {'x bare':>7} "
             f"{'cpu wait':>8} | {'in-proc cpu us':>14} {'+bare':>6} "
             f"{f'{many} sess':>10} {'+bare':>6}"]
    for name, row in section["apps"].items():
        one, cyc = one_session[name], cycled.get(name)
        tail = (f" {cyc['cpu_us']:>10.2f} {cyc['added_cpu_us']:>6.2f}" if cyc
                else f" {'':>10} {'':>6}")
        lines.append(
            f"  {LABELS[name]:42} {row['median_rps']:>7.0f} {row['ratio_to_bare']:>7.3f} "
            f"{row['round_ratio_min']:>6.2f}-{row['round_ratio_max']:<6.2f} "
            f"{row['p50_ms_median']:>7.2f} {row['p99_ms_median']:>7.2f} "
            f"{row['server_cpu_us_per_request']:>10.1f} {row['cpu_ratio_to_bare']:>7.3f} "
            f"{pct(row['server_cpu_wait_median']):>8} | {one['cpu_us']:>14.2f} "
            f"{one['added_cpu_us']:>6.2f}{tail}")
    return lines


def rows(results: dict[str, Any]) -> list[str]:
    b = results["p1b_inprocess"]
    many = b["many_sessions"]
    a = results["p1a_asgi_wrk"]
    lines = ["", f"P1a/P1b pass-through (valid session, no renewal due): uvicorn "
             f"{a['server']['loop']}/{a['server']['http']}, 1 worker, no access log; wrk -t1 "
             f"-c{a['connections']} -d{a['seconds_per_run']}s, {a['rounds']} rounds "
             f"alternated, medians; in-process: best of {b['runs']} x {b['calls_per_run']} "
             f"calls, 1 session or {many} distinct sessions cycled"]
    lines += _served_rows(a, b["asgi_one_session"], b[f"asgi_{many}_sessions_cycled"], many)
    c = results["p1c_wsgi_wrk"]
    lines += ["", f"P1c WSGI pass-through: waitress --threads {c['server']['threads']}; same "
              "wrk and in-process method"]
    lines += _served_rows(c, b["wsgi_one_session"], b[f"wsgi_{many}_sessions_cycled"], many)
    return lines


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    # P1a's and P1c's one-after-another ratios are shown, not judged: they move by more
    # than the margin from one run to the next. The ratios are judged side by side (P1e).
    one = results["p1b_inprocess"]["asgi_one_session"]
    limit = one["starlette_session"]["cpu_us"]
    return [target(f"P1b {LABELS[name]}: CPU us per request",
                   f"<= SessionMiddleware ({limit} us)", one[name]["cpu_us"],
                   one[name]["cpu_us"] <= limit)
            for name in ("renewal_signed", "renewal_encrypted")]


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
