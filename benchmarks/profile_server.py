"""Where a served request's CPU goes: py-spy samples a uvicorn server under wrk load.

    pip install py-spy
    python -m benchmarks.profile_server [APP ...] [--seconds 15]

APP is a name of benchmarks.apps.ASGI_APPS (default: bare and renewal_encrypted). For each, a
server runs on core 0 with a valid session cookie sent by wrk on core 1 (as in P1a,
benchmarks/passthrough.py); py-spy records it (raw collapsed stacks in benchmarks/pyspy-APP.txt)
and this prints the share of the on-CPU samples in each layer: the middleware's own frames,
Starlette, the server (uvicorn, uvloop, httptools) and the event loop.
"""

from __future__ import annotations

import argparse
import collections
import subprocess
import sys
import time
from pathlib import Path

from benchmarks import apps, loadgen
from benchmarks.common import TokenFactory, renewal_cookie, starlette_cookies
from benchmarks.suite import ROOT


def layer(stack: list[str]) -> str:
    """The layer a sample's innermost frames belong to."""
    for frame in reversed(stack):
        if "renewal_middleware/" in frame:
            return "renewal_middleware"
        if "starlette/middleware/sessions" in frame or "itsdangerous/" in frame:
            return "SessionMiddleware"
        if "starlette/" in frame or "benchmarks/apps.py" in frame:
            return "starlette app"
        if "uvicorn/" in frame or "httptools" in frame or "uvloop" in frame:
            return "uvicorn/uvloop/httptools"
        if "asyncio/" in frame:
            return "asyncio"
    return "other"


def summarise(raw: Path) -> tuple[collections.Counter[str], collections.Counter[str], int]:
    layers: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack_text, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        stack = stack_text.split(";")
        layers[layer(stack)] += count
        leaf = next((f for f in reversed(stack) if "renewal_middleware/" in f), None)
        if leaf is not None and layer(stack) == "renewal_middleware":
            own[leaf.split(" (")[0] + " (" + leaf.split("renewal_middleware/")[1]] += count
    return layers, own, total


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("apps", nargs="*", default=["bare", "renewal_encrypted"])
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--rate", type=int, default=997, help="py-spy samples per second")
    args = parser.parse_args()
    factory = TokenFactory()
    now = int(time.time())
    tokens = factory.token_set(0, now)
    cookies = {
        "bare": renewal_cookie(apps.renewal_encrypted(), tokens, now)[0],
        "starlette_session": starlette_cookies([tokens])[0][0],
        "renewal_signed": renewal_cookie(apps.renewal_signed(), tokens, now)[0],
        "renewal_encrypted": renewal_cookie(apps.renewal_encrypted(), tokens, now)[0],
    }
    for name in args.apps:
        server = loadgen.Server("uvicorn", name)
        raw = ROOT / "benchmarks" / f"pyspy-{name}.txt"
        with loadgen.servers(server):
            loadgen.check_session(server.url, cookies[name], None)
            spy = subprocess.Popen(["py-spy", "record", "--pid", str(server.pid), "--rate",
                                    str(args.rate), "--duration", str(args.seconds), "--format",
                                    "raw", "--output", str(raw)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            time.sleep(1)
            result = loadgen.wrk(server.url + "/", duration=args.seconds - 2,
                                 headers=[f"Cookie: {cookies[name]}"])
            spy.wait(args.seconds + 30)
        layers, own, total = summarise(raw)
        print(f"\n{name}: {result.rps:.0f} req/s under py-spy, {total} samples -> {raw.name}")
        for key, count in layers.most_common():
            print(f"  {key:28} {100 * count / total:6.2f}%")
        if own:
            print("  renewal_middleware, innermost own frame:")
            for key, count in own.most_common(12):
                print(f"    {100 * count / total:6.2f}%  {key}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
