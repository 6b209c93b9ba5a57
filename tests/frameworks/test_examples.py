"""Each framework's example, served for real, through login, renewal and logout.

Which examples run: ``RENEWAL_EXAMPLES`` (comma-separated names from
:data:`tests.frameworks.examples.EXAMPLES`); by default, those whose framework is
installed. tox runs each framework in an environment of its own and names it.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.frameworks.examples import EXAMPLES, FRAMEWORK
from tests.op.harness import (
    CLIENT_ID,
    CLIENT_SECRET,
    Provider,
    browse,
    free_port,
    login,
    start_provider,
)

ROOT = Path(__file__).resolve().parents[2]
TOKEN_TTL = 4  # seconds: the grace window is capped at half of it, so renewal comes in 2 s
SELECTED = [name.strip() for name in os.environ.get("RENEWAL_EXAMPLES", "").split(",")
            if name.strip()] or [name for name in EXAMPLES
                                 if importlib.util.find_spec(FRAMEWORK[name]) is not None]


@pytest.fixture(scope="module")
def short_provider() -> Iterator[Provider]:
    with start_provider(access_token_ttl=TOKEN_TTL) as op:
        yield op


def _wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the example exited with {process.returncode}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError("the example did not start listening")


@pytest.fixture(params=SELECTED)
def example_url(request: pytest.FixtureRequest, short_provider: Provider) -> Iterator[str]:
    name = request.param
    port = free_port()
    env = {
        **os.environ,
        "RENEWAL_ISSUER": short_provider.issuer,
        "RENEWAL_CLIENT_ID": CLIENT_ID,
        "RENEWAL_CLIENT_SECRET": CLIENT_SECRET,
        "RENEWAL_SECRET_KEYS": "framework-example-key-0123456789abcdef",
        "RENEWAL_BASE_URL": f"http://127.0.0.1:{port}",
        "PYTHONPATH": str(ROOT),
    }
    command = [part.replace("{port}", str(port)) for part in EXAMPLES[name]]
    # Output to a file, not a pipe: a chatty server never blocks on it.
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=log)
        try:
            try:
                _wait_for_port(port, process)
            except RuntimeError as exc:
                process.kill()
                process.wait(10)
                log.seek(0)
                output = log.read().decode(errors="replace")[-3000:]
                raise RuntimeError(f"{name}: {exc}\n{output}") from None
            short_provider.reset_stats()
            yield f"http://127.0.0.1:{port}"
        finally:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


async def test_login_renewal_logout(example_url: str, short_provider: Provider,
                                    request: pytest.FixtureRequest) -> None:
    async with httpx.AsyncClient(timeout=30) as client:
        anonymous = await client.get(example_url + "/api/me")
        assert anonymous.status_code == 401
        assert anonymous.headers["content-type"].startswith("application/json")
        assert anonymous.headers["www-authenticate"].startswith("Bearer")
        # The guards agree: a page load is sent to the login, and comes back (README, Guards;
        # Starlette's own requires() answers 401 there too).
        navigate = {"sec-fetch-mode": "navigate", "accept": "text/html"}
        page_load = await client.get(example_url + "/api/me?x=1", headers=navigate)
        if request.node.callspec.params["example_url"] == "starlette":
            assert page_load.status_code == 401
        else:
            assert page_load.status_code == 302
            assert page_load.headers["location"] == "/login?return_to=%2Fapi%2Fme%3Fx%3D1"
        page = await client.get(example_url + "/")
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]

        home = await login(client, example_url)
        assert home.status_code == 200
        assert "Alice Liddell" in home.text
        me = (await client.get(example_url + "/api/me")).json()
        assert me["sub"] == "alice" and isinstance(me["expires_at"], int)

        await asyncio.sleep(TOKEN_TTL / 2 + 0.5)  # now inside the (capped) grace window
        burst = await asyncio.gather(*(client.get(example_url + "/api/me") for _ in range(50)))
        assert all(r.status_code == 200 for r in burst)
        assert all(r.json()["expires_at"] > me["expires_at"] for r in burst)
        assert short_provider.stats()["grants"].get("refresh_token") == 1

        # The logout link a page's script gets from /session (a bare /logout from another
        # site only gets a confirmation page).
        session = (await client.get(example_url + "/session")).json()
        assert session["authenticated"] and session["user"]["sub"] == "alice"
        out = await browse(client, example_url + session["logout_url"])
        assert str(out.url) == example_url + "/"
        assert "Alice Liddell" not in out.text
        assert (await client.get(example_url + "/api/me")).status_code == 401
    assert short_provider.stats()["revocations"] == 1
