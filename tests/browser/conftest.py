"""Fixtures of the real-browser tests: Chromium (Playwright), the served example, another origin.

They need Playwright for Python (the ``browser`` extra) and a Chromium binary: Debian's
``/usr/bin/chromium`` or ``RENEWAL_CHROMIUM`` (``playwright install`` is not used). Without
them the tests are skipped with the reason, except under CI (``CI=true``), where they fail.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.browser.support import (
    CHROMIUM_ARGS,
    RECORDER,
    App,
    OtherOrigin,
    serve_app,
    serve_other_origin,
)

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Playwright

CHROMIUM = os.environ.get("RENEWAL_CHROMIUM", "/usr/bin/chromium")


def _missing() -> str | None:
    if importlib.util.find_spec("playwright") is None:
        return "Playwright for Python is not installed (pip install -e '.[browser]')"
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        return (f"no Chromium at {CHROMIUM} (apt-get install chromium, or set "
                "RENEWAL_CHROMIUM to a Chromium binary)")
    return None


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    missing = _missing()
    if missing is not None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"browser tests cannot run under CI: {missing}")
        pytest.skip(missing)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="session")
def browser(playwright: Playwright) -> Iterator[Browser]:
    browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                         args=CHROMIUM_ARGS)
    try:
        yield browser
    finally:
        browser.close()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    """A fresh profile (no cookie, no OP session) recording every page's renewal events."""
    context = browser.new_context()
    context.set_default_timeout(20_000)
    context.add_init_script(RECORDER)
    try:
        yield context
    finally:
        context.close()


def _app(mode: str, factory: pytest.TempPathFactory) -> Iterator[App]:
    assert mode in ("refresh", "iframe")
    directory: Path = factory.mktemp(f"app-{mode}")
    with serve_app("refresh" if mode == "refresh" else "iframe", directory) as app:
        yield app


@pytest.fixture(scope="session")
def refresh_app(browser: Browser, tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    """The example with refresh tokens (default scope): the server renews."""
    yield from _app("refresh", tmp_path_factory)


@pytest.fixture(scope="session")
def iframe_app(browser: Browser, tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    """The example without refresh token (no ``offline_access``): the hidden iframe renews."""
    yield from _app("iframe", tmp_path_factory)


@pytest.fixture(params=["refresh", "iframe"])
def app(request: pytest.FixtureRequest) -> App:
    """Each of the two apps, its OP's counters reset."""
    served: App = request.getfixturevalue(f"{request.param}_app")
    served.provider.reset_stats()
    return served


@pytest.fixture(scope="session")
def other_origin() -> Iterator[OtherOrigin]:
    with serve_other_origin() as origin:
        yield origin
