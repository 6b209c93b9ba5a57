"""examples/fastapi_app.py, configured only from RENEWAL_* variables, against the real provider."""

from __future__ import annotations

import asyncio
import importlib
import sys
from collections.abc import Iterator

import httpx
import pytest

from tests.integration.servers import serve
from tests.op.harness import (
    CLIENT_ID,
    CLIENT_SECRET,
    Provider,
    browse,
    free_port,
    login,
    start_provider,
)

TOKEN_TTL = 4  # seconds: the grace window is then capped at 2 s, so renewal comes quickly


@pytest.fixture(scope="module")
def short_provider() -> Iterator[Provider]:
    with start_provider(access_token_ttl=TOKEN_TTL) as op:
        yield op


@pytest.fixture
def example_url(short_provider: Provider, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    port = free_port()
    for name, value in {
        "RENEWAL_ISSUER": short_provider.issuer, "RENEWAL_CLIENT_ID": CLIENT_ID,
        "RENEWAL_CLIENT_SECRET": CLIENT_SECRET,
        "RENEWAL_SECRET_KEYS": f"{'n' * 32},{'o' * 32}",  # newest first
        "RENEWAL_BASE_URL": f"http://127.0.0.1:{port}",
    }.items():
        monkeypatch.setenv(name, value)
    sys.modules.pop("examples.fastapi_app", None)
    module = importlib.import_module("examples.fastapi_app")
    short_provider.reset_stats()
    with serve(module.app, port) as url:
        yield url


async def test_example_app_login_renewal_logout(example_url: str, short_provider: Provider
                                                ) -> None:
    async with httpx.AsyncClient(timeout=30) as client:
        anonymous = await client.get(example_url + "/api/me")
        assert anonymous.status_code == 401
        assert anonymous.json() == {"error": "not_authenticated"}
        assert "Log in" in (await client.get(example_url + "/")).text

        home = await login(client, example_url)
        assert "Logged in as Alice Liddell" in home.text
        me = (await client.get(example_url + "/api/me")).json()
        assert me["sub"] == "alice"

        await asyncio.sleep(TOKEN_TTL / 2 + 0.5)  # now inside the (capped) grace window
        burst = await asyncio.gather(*(client.get(example_url + "/api/me") for _ in range(50)))
        assert all(r.status_code == 200 for r in burst)
        assert {r.json()["expires_at"] for r in burst} != {me["expires_at"]}
        assert short_provider.stats()["grants"].get("refresh_token") == 1

        out = await browse(client, example_url + "/logout")
        assert str(out.url) == example_url + "/"
        assert "Not logged in" in out.text
    assert short_provider.stats()["revocations"] == 1
