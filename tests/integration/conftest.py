"""Fixtures for integration tests that need the test OpenID Provider (tests/op)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.op.harness import Provider, start_provider
from tests.redis_server import RedisServer


@pytest.fixture(autouse=True)
def own_store(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test's middlewares share a host store of their own (the default store)."""
    monkeypatch.setenv("RENEWAL_STORE_DIRECTORY", str(tmp_path_factory.mktemp("store")))


@pytest.fixture(scope="session")
def provider() -> Iterator[Provider]:
    """One test OP for the whole session: access tokens live 60 s, default ``demo-app`` client."""
    op = start_provider(access_token_ttl=60)
    try:
        yield op
    finally:
        op.stop()


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """One Redis for the tests that only use it (those that stop it start their own)."""
    server = RedisServer()
    server.start()
    try:
        yield server.url
    finally:
        server.close()


@pytest.fixture(params=["asgi-host", "wsgi-host", "asgi-redis", "wsgi-redis"])
def driver_and_store(request: pytest.FixtureRequest) -> tuple[str, str]:
    """Each driver with the default host store and with Redis (``running(store=...)``)."""
    driver, store = str(request.param).split("-")
    return driver, (request.getfixturevalue("redis_url") if store == "redis" else "host")
