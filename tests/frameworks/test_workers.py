"""One session, many worker processes: one refresh grant per renewal, whichever workers serve it.

The FastAPI example runs under ``uvicorn --workers 4``, the Flask one under ``gunicorn -w 4``,
with the renewal store shared by the workers (``RENEWAL_STORE``: ``host``, then a Redis server
of its own). A browser's requests arrive at renewal time on several workers at once; the
provider rotates refresh tokens and revokes the grant when a rotated one is used again, so
every extra grant would end the session.

Which examples run: ``RENEWAL_EXAMPLES``, as in ``test_examples.py``.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.frameworks.workers import Server, selected_examples, serve
from tests.op.harness import CLIENT_ID, CLIENT_SECRET, Provider, login, start_provider
from tests.redis_server import RedisServer

WORKERS = 4
TOKEN_TTL = 8  # seconds
GRACE = TOKEN_TTL / 2  # the grace window is capped at half the token's lifetime
STORM = 200  # concurrent requests of one session at renewal time
LATE = 50  # requests still carrying the cookie from before the renewal
EXAMPLES = selected_examples()

if not EXAMPLES:
    pytest.skip("none of these examples is served by workers here (RENEWAL_EXAMPLES)",
                allow_module_level=True)


@pytest.fixture(scope="module")
def provider() -> Iterator[Provider]:
    with start_provider(access_token_ttl=TOKEN_TTL) as op:
        yield op


@pytest.fixture(params=["host", "redis"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, str]]:
    """The ``RENEWAL_STORE*`` variables of a store no other test shares."""
    if request.param == "redis":
        with RedisServer() as redis:
            yield {"RENEWAL_STORE": redis.url}
    else:
        directory = tmp_path / "store"
        directory.mkdir()
        yield {"RENEWAL_STORE": "host", "RENEWAL_STORE_DIRECTORY": str(directory)}


@pytest.fixture(params=EXAMPLES)
def app(request: pytest.FixtureRequest, provider: Provider, store: dict[str, str],
        tmp_path: Path) -> Iterator[Server]:
    environ = {
        "RENEWAL_ISSUER": provider.issuer,
        "RENEWAL_CLIENT_ID": CLIENT_ID,
        "RENEWAL_CLIENT_SECRET": CLIENT_SECRET,
        "RENEWAL_SECRET_KEYS": "worker-example-key-0123456789abcdef",
        **store,
    }
    with serve(request.param, environ, tmp_path, workers=WORKERS) as server:
        provider.reset_stats()
        yield server


def browser(cookies: httpx.Cookies | None = None) -> httpx.AsyncClient:
    """A client that keeps up to :data:`STORM` connections open, so that concurrent requests
    reach the server on as many connections, which the workers accept between them."""
    limits = httpx.Limits(max_connections=STORM, max_keepalive_connections=STORM)
    return httpx.AsyncClient(cookies=cookies, limits=limits, timeout=30, trust_env=False)


async def log_in(client: httpx.AsyncClient, server: Server) -> dict[str, Any]:
    """Log in as alice; her ``/api/me``."""
    home = await login(client, server.url)
    assert home.status_code == 200 and "Alice Liddell" in home.text, server.tail()
    me = await client.get(server.url + "/api/me")
    assert me.status_code == 200 and me.json()["sub"] == "alice", server.tail()
    body: dict[str, Any] = me.json()
    return body


async def sleep_into_grace_window(expires_at: int) -> None:
    """Sleep until a token expiring at ``expires_at`` is half a second into its grace window."""
    await asyncio.sleep(max(0.0, expires_at - GRACE + 0.5 - time.time()))


@dataclass
class Burst:
    """Concurrent ``GET /api/me`` of one client, and what the provider and the server saw."""

    responses: list[httpx.Response]
    grants: int  # refresh_token grants the provider issued meanwhile
    grant_errors: int  # refresh_token grants it refused
    pids: Counter[int]  # worker pid -> requests it answered
    seconds: float  # from the first request sent to the last response

    def served(self) -> list[dict[str, Any]]:
        """The bodies of the responses that served alice (status 200)."""
        return [r.json() for r in self.responses
                if r.status_code == 200 and r.json().get("sub") == "alice"]

    def expiries(self) -> set[int]:
        return {body["expires_at"] for body in self.served()}

    def summary(self) -> str:
        statuses = Counter(r.status_code for r in self.responses)
        return (f"{self.grants} refresh grant(s), {self.grant_errors} refused; "
                f"{len(self.served())}/{len(self.responses)} answered 200 as alice; "
                f"statuses {dict(statuses)}; expires_at {sorted(self.expiries())}; "
                f"requests per worker pid {dict(self.pids)}; {self.seconds:.1f} s")


async def burst(client: httpx.AsyncClient, server: Server, provider: Provider,
                count: int) -> Burst:
    """``count`` concurrent ``GET /api/me``; the client takes each response's cookies as it
    arrives, as a browser does."""
    before = provider.stats()
    mark = server.mark()
    started = time.monotonic()
    responses = await asyncio.gather(*(client.get(server.url + "/api/me") for _ in range(count)))
    seconds = time.monotonic() - started
    after = provider.stats()

    def delta(kind: str) -> int:
        return int(after[kind].get("refresh_token", 0) - before[kind].get("refresh_token", 0))

    return Burst(list(responses), delta("grants"), delta("grant_errors"),
                 server.answering_pids(mark, count), seconds)


def assert_renewed_once(storm: Burst, expires_at: int, server: Server) -> int:
    """Exactly one refresh grant, every request served as alice with one newer token spread
    over several workers; that token's expiry."""
    report = storm.summary() + server.tail()
    assert (storm.grants, storm.grant_errors) == (1, 0), report
    assert len(storm.served()) == len(storm.responses), report
    expiries = storm.expiries()
    assert len(expiries) == 1 and min(expiries) > expires_at, report
    assert len(storm.pids) > 1, "the requests reached a single worker: " + report
    return expiries.pop()


async def test_one_grant_per_renewal_across_workers(app: Server, provider: Provider) -> None:
    async with browser() as client:
        expires_at = (await log_in(client, app))["expires_at"]
        for _renewal in range(2):  # the second proves the first left the grant alive
            await sleep_into_grace_window(expires_at)
            storm = await burst(client, app, provider, STORM)
            expires_at = assert_renewed_once(storm, expires_at, app)


async def test_late_requests_with_the_old_cookie(app: Server, provider: Provider) -> None:
    async with browser() as client:
        expires_at = (await log_in(client, app))["expires_at"]
        old_cookies = httpx.Cookies(client.cookies)
        await sleep_into_grace_window(expires_at)
        storm = await burst(client, app, provider, STORM)
        renewed = assert_renewed_once(storm, expires_at, app)

    async with browser(old_cookies) as late_client:
        late = await burst(late_client, app, provider, LATE)
    report = late.summary() + app.tail()
    assert (late.grants, late.grant_errors) == (0, 0), report
    assert len(late.served()) == LATE and late.expiries() == {renewed}, report
    assert len(late.pids) > 1, "the requests reached a single worker: " + report
