"""P1e: the pass-through against the bare app, side by side on one core (ASGI and WSGI).

Servers measured one after another (P1a) disagree by several percent from run to run on a
shared machine, for two reasons: the machine drifts between the runs (other virtual machines,
the CPU's clock), and every process has its own memory layout (ASLR), which alone moves a
server's speed by 2-4 %: two processes of the same bare app differ by that much, and stay
that way for their whole life.

So here both servers of a pair run at once on core 0, each loaded by its own wrk on core 1.
Both are always runnable, so the scheduler gives each half of the core: what each serves in the
same seconds is inversely proportional to what a request costs it, and whatever the machine does
meanwhile touches both alike. Every trial starts fresh processes of every app, so that layouts
vary and the median over trials does not rest on one lucky or unlucky process, and each pair
has its own bare app, with the same past as its partner. A control pair, the bare app against
a second bare app, shows the method's own spread.
"""

from __future__ import annotations

import statistics
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from benchmarks import loadgen
from benchmarks.loadgen import Server, wrk
from benchmarks.suite import LABELS, Context, Section, log, target

#: By server: its bare app, and the apps each measured against one (the bare app itself is
#: the control pair), the first of them not judged.
KINDS = {
    "uvicorn": ("bare", ("bare", "asgi_layer", "starlette_session", "renewal_signed",
                         "renewal_encrypted")),
    "waitress": ("wsgi_bare", ("wsgi_bare", "wsgi_renewal_signed", "wsgi_renewal_encrypted")),
}
TARGETED = ("renewal_signed", "renewal_encrypted", "wsgi_renewal_signed",
            "wsgi_renewal_encrypted")


def _pair(bare: Server, other: Server, name: str, ctx: Context) -> dict[str, float]:
    """Both servers loaded at once: the other's requests and CPU per request, over bare's."""
    seconds, connections = ctx.cfg["side_seconds"], ctx.cfg["connections"]
    before = [loadgen.sched_times(s.pid) for s in (bare, other)]

    def load(server: Server, app: str) -> loadgen.WrkResult:
        return wrk(server.url + "/", duration=seconds, connections=connections,
                   headers=[f"Cookie: {ctx.cookies.header(app)}"])

    with ThreadPoolExecutor(2) as pool:
        ours, theirs = pool.map(load, (bare, other), (bare.app, name))
    after = [loadgen.sched_times(s.pid) for s in (bare, other)]
    for result in (ours, theirs):
        if result.non_2xx or result.socket_errors:
            raise RuntimeError(f"{name}: {result.non_2xx} non-2xx, {result.socket_errors}")
    cpu = [(a[0] - b[0]) / max(1, r.requests)
           for a, b, r in zip(after, before, (ours, theirs), strict=True)]
    return {"ratio": theirs.requests / ours.requests, "cpu_ratio": cpu[0] / cpu[1],
            "bare_rps": ours.rps, "rps": theirs.rps}


def _server(kind: str, name: str, ctx: Context) -> Server:
    if kind == "uvicorn":
        return Server(kind, name, loop=ctx.stack["loop"], http=ctx.stack["http"])
    return Server(kind, name, threads=4)


def _trial(kind: str, index: int, ctx: Context) -> dict[str, dict[str, float]]:
    """Fresh processes, a bare app for each pair (so both have the same past: a process
    that has served more runs slower); each pair measured once, in a rotating order."""
    bare, others = KINDS[kind]
    pairs = [(_server(kind, bare, ctx), _server(kind, name, ctx)) for name in others]
    with loadgen.servers(*(server for pair in pairs for server in pair)) as running:
        for server in running:
            loadgen.check_session(server.url, ctx.cookies.header(server.app),
                                  ctx.cookies.digest(server.app))
            wrk(server.url + "/", duration=ctx.cfg["wrk_warmup"],
                connections=ctx.cfg["connections"],
                headers=[f"Cookie: {ctx.cookies.header(server.app)}"])
        shift = index % len(others)
        order = list(range(len(others)))[shift:] + list(range(len(others)))[:shift]
        return {others[i]: _pair(*pairs[i], others[i], ctx) for i in order}


def _summary(trials: list[dict[str, dict[str, float]]], name: str) -> dict[str, Any]:
    ratios = [t[name]["ratio"] for t in trials]
    return {"median_ratio": round(statistics.median(ratios), 4),
            "min_ratio": round(min(ratios), 4), "max_ratio": round(max(ratios), 4),
            "ratios": [round(r, 4) for r in ratios],
            "median_cpu_ratio": round(statistics.median(t[name]["cpu_ratio"] for t in trials), 4),
            "median_rps": round(statistics.median(t[name]["rps"] for t in trials)),
            "median_bare_rps": round(statistics.median(t[name]["bare_rps"] for t in trials))}


def measure(ctx: Context) -> dict[str, Any]:
    out: dict[str, Any] = {"trials": ctx.cfg["side_trials"],
                           "seconds_per_pair": ctx.cfg["side_seconds"],
                           "connections": ctx.cfg["connections"], "servers": {}}
    for kind, (_, others) in KINDS.items():
        trials = []
        for index in range(ctx.cfg["side_trials"]):
            trials.append(_trial(kind, index, ctx))
            log(f"  {kind} trial {index + 1}: " + ", ".join(
                f"{name} {trials[-1][name]['ratio']:.3f}" for name in others))
        out["servers"][kind] = {name: _summary(trials, name) for name in others}
    return out


SECTIONS: tuple[Section, ...] = (Section("p1e_side_by_side", measure),)


def rows(results: dict[str, Any]) -> list[str]:
    e = results.get("p1e_side_by_side")
    if not e:
        return []
    lines = ["", f"P1e pass-through side by side: each app and a bare app served at once on "
             f"core 0 (1 process each; uvicorn 1 worker, waitress 4 threads), a wrk "
             f"-c{e['connections']} -d{e['seconds_per_pair']}s each on core 1; {e['trials']} "
             f"trials of fresh processes; requests served / bare's in the same seconds",
             f"  {'':42} {'median':>7} {'min':>6} {'max':>6} {'cpu/req':>8} {'req/s':>7} "
             f"{'bare':>7}"]
    for kind, apps in e["servers"].items():
        for name, row in apps.items():
            label = (f"a second bare app (control, {kind})" if name == KINDS[kind][0]
                     else LABELS[name])
            lines.append(f"  {label:42} {row['median_ratio']:>7.3f} {row['min_ratio']:>6.3f} "
                         f"{row['max_ratio']:>6.3f} {row['median_cpu_ratio']:>8.3f} "
                         f"{row['median_rps']:>7} {row['median_bare_rps']:>7}")
    return lines


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    e = results.get("p1e_side_by_side")
    if not e:
        return []
    found = {name: row for apps in e["servers"].values() for name, row in apps.items()}
    return [target(f"P1e {LABELS[name]}: req/s vs bare, side by side (median of trials)",
                   ">= 0.95x (aim 0.97x)", found[name]["median_ratio"],
                   found[name]["median_ratio"] >= 0.95) for name in TARGETED]
