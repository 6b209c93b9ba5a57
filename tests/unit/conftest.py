"""Fixtures of the unit tests; the helpers they use live in tests/unit/helpers.py."""

from __future__ import annotations

import pytest
from joserfc.jwk import RSAKey

from renewal_middleware.config import Settings
from renewal_middleware.flows import Flows
from tests.unit.helpers import FakeClock, make_settings


@pytest.fixture(scope="session")
def rsa_key() -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": "k1"})


@pytest.fixture(scope="session")
def rotated_key() -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": "k2"})


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def settings() -> Settings:
    return make_settings()


@pytest.fixture
def flows(settings: Settings, clock: FakeClock) -> Flows:
    return Flows(settings, clock)
