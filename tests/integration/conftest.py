"""Fixtures for integration tests that need the test OpenID Provider (tests/op)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.op.harness import Provider, start_provider


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
