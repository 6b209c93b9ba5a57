"""P1d: CPU instructions per pass-through request under uvicorn, counted by callgrind (valgrind).

Wall-clock ratios move by a few percent from one run to the next on a shared machine;
instruction counts barely do: the same code, inputs and interpreter give the same count
whatever else the machine does. Each ASGI app of P1a is served by uvicorn (uvloop, httptools,
as in P1a) under callgrind, in a fresh process with a fixed hash seed, and gets N1 and then,
in a second process, N2 requests of one session on one keep-alive connection; the difference
divided by N2 - N1 is what one request costs the server, start-up excluded: HTTP parsing,
the event loop, Starlette and the middleware. The only part that depends on time is the
middleware's once-a-second look at the store for sessions ended elsewhere.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from benchmarks import apps, loadgen
from benchmarks.suite import LABELS, ROOT, Context, Section, log

NAMES = list(apps.ASGI_APPS)


async def _requests(port: int, n: int, cookie: str) -> None:
    """``n`` requests of the session, one after another; each must pass through."""
    deadline = time.monotonic() + 600  # the server starts slowly under valgrind
    while True:
        try:
            connection = await loadgen.Connection.open(port)
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)
    try:
        for _ in range(n):
            reply = await connection.request("GET", "/", {"cookie": cookie})
            if reply.status != 200 or reply.header_list("set-cookie"):
                raise RuntimeError(f"GET / answered {reply.status} {reply.headers}")
    finally:
        await connection.close()


def _count(name: str, n: int, cookie: str, stack: dict[str, str]) -> int:
    port = loadgen.free_port()
    server = subprocess.Popen(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable,
         "-m", "benchmarks.serve", "uvicorn", name, str(port), "--loop", stack["loop"],
         "--http", stack["http"]],
        cwd=ROOT, env={**os.environ, "PYTHONHASHSEED": "0"}, stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        asyncio.run(_requests(port, n, cookie))
    finally:
        server.send_signal(signal.SIGINT)
        _, err = server.communicate(timeout=600)
    found = re.search(r"Collected : (\d+)", err)
    if not found:
        raise RuntimeError(f"callgrind of {name} failed: {err[-500:]}")
    return int(found.group(1))


def measure(ctx: Context) -> dict[str, Any]:
    if shutil.which("valgrind") is None:
        log("valgrind is missing (apt-get install -y valgrind): P1d skipped")
        return {"skipped": "valgrind is missing"}
    n1, n2 = ctx.cfg["instr_requests"]
    out: dict[str, Any] = {"requests": [n1, n2], "apps": {}}
    for name in NAMES:
        cookie = ctx.cookies.header(name)
        with ThreadPoolExecutor(2) as pool:  # the two runs of an app side by side
            a, b = pool.map(lambda n, c=cookie, m=name: _count(m, n, c, ctx.stack), (n1, n2))
        out["apps"][name] = {"instructions_per_request": round((b - a) / (n2 - n1))}
    bare = out["apps"]["bare"]["instructions_per_request"]
    for row in out["apps"].values():
        row["added"] = row["instructions_per_request"] - bare
        row["ratio_to_bare"] = round(bare / row["instructions_per_request"], 4)
    return out


SECTIONS: tuple[Section, ...] = (Section("p1d_instructions", measure),)


def rows(results: dict[str, Any]) -> list[str]:
    p1d = results.get("p1d_instructions", {})
    if "apps" not in p1d:
        return ["", f"P1d instructions per request (callgrind): {p1d.get('skipped', 'not run')}"]
    n1, n2 = p1d["requests"]
    lines = ["", f"P1d instructions per pass-through request under uvicorn (callgrind: runs of "
             f"{n2} and {n1} requests, difference / {n2 - n1}; the whole server's work)",
             f"  {'':42} {'instr/req':>10} {'added':>8} {'ratio':>7}"]
    for name, row in p1d["apps"].items():
        lines.append(f"  {LABELS[name]:42} {row['instructions_per_request']:>10} "
                     f"{row['added']:>+8} {row['ratio_to_bare']:>7.3f}")
    return lines


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    return []
