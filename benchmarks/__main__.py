"""Performance of renewal_middleware: pass-through cost, renewal storm, renewal latency, cookie
size and memory, in one run. Prints a table and writes benchmarks/results.json.

    python -m benchmarks            # the full run (about 6-10 minutes)
    python -m benchmarks --quick    # a smoke run (under a minute)
    tox -e bench [-- --quick]

Run it from the repository root: ``python -m`` puts the current directory first on sys.path, so
this process and the servers it starts there (``python -m benchmarks.serve``) import the
renewal_middleware of the source tree, even where tox has installed the package too
(results.json records the path, ``versions.renewal_middleware_path``).

Everything talks to 127.0.0.1 only. Servers run on core 0 and load generators (wrk, this
process, the test provider) on core 1, when the machine has both. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks import (
    cookie_bytes,
    instructions,
    loadgen,
    memory,
    meta,
    passthrough,
    provider,
    report,
    server_storage,
    side_by_side,
    storms,
)
from benchmarks.suite import RESULTS, Context, Cookies, Phase, loadavg, log, plan

#: The phases in the order they are measured (the table has its own order: report.PHASES).
MEASURED: tuple[Phase, ...] = (cookie_bytes, passthrough, side_by_side, instructions, memory,
                               provider, storms, server_storage)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a smoke run (< 1 minute)")
    parser.add_argument("--loop", default="auto", help="uvicorn --loop (default auto)")
    parser.add_argument("--http", default="auto", help="uvicorn --http (default auto)")
    parser.add_argument("--output", default=str(RESULTS), help="where to write the JSON")
    parser.add_argument("--profile", action="store_true",
                        help="only profile the in-process pass-through of each ASGI app "
                             "(pyinstrument) into benchmarks/profile-*.txt")
    return parser.parse_args(argv)


def pin_to_client_core() -> None:
    if loadgen.can_pin():
        os.sched_setaffinity(0, {int(loadgen.CLIENT_CORE)})


def profile(quick: bool) -> None:
    pin_to_client_core()
    for name, path in passthrough.profile(Cookies(1), 5_000 if quick else 20_000).items():
        print(f"{name}: {path}")


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Every section of every phase, in turn; then the targets."""
    started = time.perf_counter()
    cfg = plan(args.quick)
    stack = meta.server_stack(args.loop, args.http)
    about = meta.describe(args.quick, cfg, stack)
    pin_to_client_core()
    results: dict[str, Any] = {"meta": about}
    sessions = max(cfg["many_sessions"], cfg["p5_sessions"])
    log(f"minting {sessions} token sets and cookies")
    cookies = Cookies(sessions)
    about["minting_seconds"] = round(cookies.seconds, 1)
    ctx = Context(cfg, stack, cookies)
    for section in (section for phase in MEASURED for section in phase.SECTIONS):
        if section.logged:
            log(section.key)
        results[section.key] = section.run(ctx)
        if section.logged:
            about["loadavg_by_section"][section.key] = loadavg()
    about["loadavg_end"] = loadavg()
    about["seconds"] = round(time.perf_counter() - started, 1)
    results["targets"] = report.targets(results)
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.profile:
        profile(args.quick)
        return 0
    if not loadgen.have_wrk():
        print("wrk is missing: apt-get install -y wrk", file=sys.stderr)
        return 2
    results = measure(args)
    output = Path(args.output)
    report.write(results, output)
    print(report.table(results, output))
    return 0


if __name__ == "__main__":
    sys.exit(main())
