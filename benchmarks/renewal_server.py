"""The middleware served against a provider (P2, P3): its control endpoints (clock, counters),
session cookies out of clients and answers, and token-endpoint round trips alone."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import httpx

from benchmarks import loadgen
from benchmarks.common import SECRET_KEY, cookie_header_from_set_cookies
from benchmarks.loadgen import Connection, Server
from benchmarks.suite import ROOT

DISCOVERY_PATH = "/.well-known/openid-configuration"


def op_client() -> tuple[str, str]:
    """(client ID, client secret) the test provider (tests/op) registers."""
    from tests.op.harness import CLIENT_ID, CLIENT_SECRET

    return CLIENT_ID, CLIENT_SECRET


def cookie_from_jar(client: Any) -> str:
    """The session's Cookie header out of an httpx client's jar."""
    pairs = [(c.name, c.value) for c in client.cookies.jar
             if c.name == "renewal_session" or c.name.startswith("renewal_session.")]
    return "; ".join(f"{n}={v}" for n, v in sorted(pairs))


def cookie_from_reply(reply: loadgen.Reply) -> str:
    """The Cookie header a browser sends back after ``reply``."""
    values = [c for c in reply.header_list("set-cookie") if "Max-Age=0" not in c]
    return cookie_header_from_set_cookies(values)


def delta(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {k: after.get(k, 0) - before.get(k, 0) for k in after
            if after.get(k, 0) - before.get(k, 0)}


async def log_in_twice(url: str) -> tuple[str, str]:
    """Two sessions by headless logins: (for the storm, for round trips alone)."""
    from tests.op.harness import login

    async with httpx.AsyncClient(trust_env=False, timeout=30) as one, \
            httpx.AsyncClient(trust_env=False, timeout=30) as two:
        final = await login(one, url)
        if final.status_code != 200 or final.text != "ok":
            raise RuntimeError(f"login failed: {final.status_code} {final.text[:200]}")
        await login(two, url)
    return cookie_from_jar(one), cookie_from_jar(two)


def refresh_grants(op: Any) -> int:
    """The refresh_token grants the test provider ``op`` has made."""
    return int(op.stats()["grants"].get("refresh_token", 0))


class RenewingServer:
    """The middleware against a provider (real or stand-in), with its clock and counters."""

    def __init__(self, issuer: str, stack: dict[str, str]) -> None:
        client_id, client_secret = op_client()
        self.server = Server("uvicorn", "renewal_against_provider", loop=stack["loop"],
                             http=stack["http"])
        self.server.env = {"BENCH_ISSUER": issuer, "BENCH_BASE_URL": self.server.url,
                           "BENCH_SECRET_KEY": SECRET_KEY, "BENCH_CLIENT_ID": client_id,
                           "BENCH_CLIENT_SECRET": client_secret}
        self.control: Connection | None = None

    async def open(self) -> None:
        self.control = await Connection.open(self.server.port)

    async def request(self, method: str, path: str,
                      headers: dict[str, str] | None = None) -> loadgen.Reply:
        """A request on the control connection."""
        assert self.control is not None
        return await self.control.request(method, path, headers)

    async def sent(self) -> dict[str, int]:
        reply = await self.request("GET", "/__bench/stats")
        return dict(json.loads(reply.body)["sent"])

    async def offset(self) -> float:
        reply = await self.request("GET", "/__bench/stats")
        return float(json.loads(reply.body)["offset"])

    async def advance(self, seconds: float) -> None:
        await self.request("POST", f"/__bench/clock?advance={seconds}")

    def cpu_ns(self) -> int:
        return loadgen.sched_times(self.server.pid)[0]


class TokenRoundTrips:
    """benchmarks/token_rtt.py on the server core: one token-endpoint round trip per call."""

    def __init__(self, endpoint: str, refresh_token: str) -> None:
        self.argv = loadgen.pinned(loadgen.SERVER_CORE, [
            sys.executable, str(ROOT / "benchmarks" / "token_rtt.py"), endpoint, *op_client(),
            refresh_token])
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
