"""P1d: CPU instructions per pass-through request, counted by callgrind (valgrind).

Wall-clock ratios move by a few percent from one run to the next on a shared machine;
instruction counts do not: the same code, inputs and interpreter give the same count
whatever else the machine does. Each ASGI app of P1b serves N1 and then N2 requests
in-process (after a warm-up), each run under callgrind from a fresh interpreter, and
the difference divided by N2 - N1 is what one request costs, start-up excluded. The
session cookie is minted beforehand and read from a file, since minting generates an
RSA key whose prime search would make the counts differ from run to run.

    python -m benchmarks.instructions APP N COOKIE_FILE    # one probe (what valgrind runs)
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from benchmarks import apps
from benchmarks.common import http_scope
from benchmarks.suite import LABELS, ROOT, Context, Section, log

NAMES = list(apps.ASGI_APPS)
HEADERS = [(b"host", b"127.0.0.1:8000"), (b"user-agent", b"wrk")]


def probe(name: str, n: int, cookie: bytes) -> None:
    """Serve ``n`` requests of one session to ``name`` in-process (what callgrind counts)."""
    app = apps.ASGI_APPS[name]()
    template = http_scope("/", [])

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        pass

    async def serve(count: int) -> None:
        for _ in range(count):
            scope = dict(template)
            # Fresh objects per request, as a server parses them.
            scope["headers"] = [*HEADERS, (b"cookie", bytes(bytearray(cookie)))]
            scope["state"] = {}
            await app(scope, receive, send)

    asyncio.run(serve(300 + n))


def _count(name: str, n: int, cookie_file: Path) -> int:
    run = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable,
         "-m", "benchmarks.instructions", name, str(n), str(cookie_file)],
        cwd=ROOT, capture_output=True, text=True, check=False,
        env={**os.environ, "PYTHONHASHSEED": "0"}, timeout=1800)
    found = re.search(r"Collected : (\d+)", run.stderr)
    if run.returncode != 0 or not found:
        raise RuntimeError(f"callgrind of {name} failed: {run.stderr[-500:]}")
    return int(found.group(1))


def measure(ctx: Context) -> dict[str, Any]:
    if shutil.which("valgrind") is None:
        log("valgrind is missing (apt-get install -y valgrind): P1d skipped")
        return {"skipped": "valgrind is missing"}
    n1, n2 = ctx.cfg["instr_requests"]
    with tempfile.TemporaryDirectory() as tmp:
        out: dict[str, Any] = {"requests": [n1, n2], "apps": {}}
        for name in NAMES:
            cookie_file = Path(tmp) / f"{name}.cookie"
            cookie_file.write_text(ctx.cookies.header(name))
            with ThreadPoolExecutor(2) as pool:  # the two runs of an app side by side
                a, b = pool.map(lambda n, f=cookie_file, m=name: _count(m, n, f), (n1, n2))
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
    lines = ["", f"P1d instructions per pass-through request, in-process (callgrind: runs of "
             f"{n2} and {n1} requests, difference / {n2 - n1}; deterministic)",
             f"  {'':42} {'instr/req':>10} {'added':>8} {'ratio':>7}"]
    for name, row in p1d["apps"].items():
        lines.append(f"  {LABELS[name]:42} {row['instructions_per_request']:>10} "
                     f"{row['added']:>+8} {row['ratio_to_bare']:>7.3f}")
    return lines


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    return []


if __name__ == "__main__":
    probe(sys.argv[1], int(sys.argv[2]), Path(sys.argv[3]).read_bytes())
