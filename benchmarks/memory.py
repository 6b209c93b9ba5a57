"""P5: VmRSS of one uvicorn process (signed+encrypted) while wrk cycles through many distinct
sessions (``cycle_cookies.lua``), after a warm-up that fills the caches."""

from __future__ import annotations

import contextlib
import os
import statistics
import tempfile
from collections.abc import Iterator
from typing import Any

from benchmarks import loadgen
from benchmarks.loadgen import Server, WrkResult, rss_kib, wrk
from benchmarks.suite import ROOT, Context, Section, pct, target

SCRIPT = str(ROOT / "benchmarks" / "cycle_cookies.lua")
#: At most this many warm-up phases.
MAX_WARMUP_PHASES = 8


@contextlib.contextmanager
def _cookie_file(headers: list[str]) -> Iterator[str]:
    """A temporary file of Cookie headers, one a line, for cycle_cookies.lua."""
    fd, path = tempfile.mkstemp(prefix="bench-cookies-", suffix=".txt")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write("\n".join(headers) + "\n")
        yield path
    finally:
        os.unlink(path)


class _Cycler:
    """wrk runs that go on through the sessions of the file where the previous run stopped."""

    def __init__(self, server: Server, connections: int, path: str) -> None:
        self.server, self.connections, self.path = server, connections, path
        self.sent = 0

    def run(self, seconds: float) -> WrkResult:
        result = wrk(self.server.url + "/", duration=seconds, connections=self.connections,
                     script=SCRIPT, script_args=[self.path, str(self.sent)])
        extra = result.script_output
        if result.non_2xx or int(extra.get("bad", 0)) or int(extra.get("set_cookie", 0)):
            raise RuntimeError(f"P5: refused or renewed sessions: {result.non_2xx} non-2xx, "
                               f"{extra}")
        self.sent += result.requests
        return result


def _warm_up(cycler: _Cycler, ctx: Context) -> tuple[list[dict[str, Any]], int]:
    """Every session several times (the caches fill, then evict), and on until one phase
    moves RSS by less than 1%: (RSS after each phase, requests sent)."""
    pid, cfg = cycler.server.pid, ctx.cfg
    requests = 0
    warmup: list[dict[str, Any]] = [{"requests": 0, "rss_kib": rss_kib(pid)}]
    while len(warmup) <= MAX_WARMUP_PHASES:
        requests += cycler.run(cfg["p5_warmup"]).requests
        warmup.append({"requests": requests, "rss_kib": rss_kib(pid)})
        moved = abs(warmup[-1]["rss_kib"] - warmup[-2]["rss_kib"]) / warmup[-2]["rss_kib"]
        if requests >= cfg["p5_min_warmup_passes"] * cfg["p5_sessions"] and moved < 0.01:
            break
    return warmup, requests


def _measured(cycler: _Cycler, ctx: Context) -> dict[str, Any]:
    pid = cycler.server.pid
    samples: list[dict[str, Any]] = [{"requests": 0, "rss_kib": rss_kib(pid)}]
    measured = 0
    rates = []
    sched = loadgen.sched_times(pid)
    while measured < ctx.cfg["p5_requests"]:
        result = cycler.run(ctx.cfg["p5_phase"])
        measured += result.requests
        rates.append(result.rps)
        samples.append({"requests": measured, "rss_kib": rss_kib(pid)})
    after = loadgen.sched_times(pid)
    return {"samples": samples, "measured": measured, "rates": rates,
            "waited": loadgen.wait_fraction(sched, after),
            "cpu_us": (after[0] - sched[0]) / 1e3 / measured, "command": result.command}


def measure(ctx: Context) -> dict[str, Any]:
    sessions = ctx.cfg["p5_sessions"]
    headers = [ctx.cookies.header("renewal_encrypted", i) for i in range(sessions)]
    server = Server("uvicorn", "renewal_encrypted", loop=ctx.stack["loop"],
                    http=ctx.stack["http"])
    with _cookie_file(headers) as path, loadgen.servers(server):
        rss_start = rss_kib(server.pid)
        loadgen.check_session(server.url, headers[0], ctx.cookies.digest("renewal_encrypted"))
        cycler = _Cycler(server, ctx.cfg["connections"], path)
        warmup, warm_requests = _warm_up(cycler, ctx)
        run = _measured(cycler, ctx)
    samples = run["samples"]
    rss_before, rss_after = samples[0]["rss_kib"], samples[-1]["rss_kib"]
    peak = max(s["rss_kib"] for s in samples)
    return {"server": "uvicorn, RenewalMiddleware signed+encrypted", "distinct_sessions": sessions,
            "warmup_requests": warm_requests, "measured_requests": run["measured"],
            "rss_kib_at_start": rss_start, "rss_kib_before": rss_before,
            "rss_kib_after": rss_after, "rss_kib_peak": peak,
            "growth_pct": round(100 * (rss_after - rss_before) / rss_before, 2),
            "peak_growth_pct": round(100 * (peak - rss_before) / rss_before, 2),
            "median_rps_while_cycling": round(statistics.median(run["rates"]), 1),
            "server_cpu_wait": run["waited"],
            "server_cpu_us_per_request": round(run["cpu_us"], 2),
            "warmup_samples": warmup, "samples": samples,
            "wrk_command_example": run["command"]}


SECTIONS: tuple[Section, ...] = (Section("p5_memory", measure),)


def rows(results: dict[str, Any]) -> list[str]:
    mem = results["p5_memory"]
    curve = ", ".join(f"{s['rss_kib'] / 1024:.0f}" for s in mem["warmup_samples"])
    return [
        "", f"P5 memory: one uvicorn process (signed+encrypted), "
        f"{mem['distinct_sessions']} distinct sessions cycled by wrk, "
        f"{mem['warmup_requests']} warm-up + {mem['measured_requests']} measured requests",
        f"  VmRSS during warm-up (MiB, one value per phase): {curve}",
        f"  VmRSS: at start {mem['rss_kib_at_start'] / 1024:.1f} MiB, after warm-up "
        f"{mem['rss_kib_before'] / 1024:.1f} MiB, at the end "
        f"{mem['rss_kib_after'] / 1024:.1f} MiB: growth {mem['growth_pct']}% (peak "
        f"{mem['peak_growth_pct']}%)",
        f"  {mem['median_rps_while_cycling']:.0f} req/s, "
        f"{mem['server_cpu_us_per_request']} us server CPU per request while cycling "
        f"(cpu wait {pct(mem['server_cpu_wait'])})",
    ]


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    memory = results["p5_memory"]
    return [target("P5 RSS growth after warm-up (%)", "<= 5%", memory["growth_pct"],
                   abs(memory["growth_pct"]) <= 5)]
