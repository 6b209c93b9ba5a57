"""What the core reads of a request: return_to, navigations."""

from __future__ import annotations

import pytest

from renewal_middleware.requests import is_navigation, safe_return_to
from tests.unit.drive import (
    JSON,
)

# -- small pure helpers ----------------------------------------------------------------------


@pytest.mark.parametrize("value", [
    None, "", "//evil.example", "//evil.example/path", "https://evil.example",
    "http://evil.example/", "/\\evil.example", "/\\/evil.example", "\\\\evil.example",
    "javascript:alert(1)", "evil.example", "/path\r\nSet-Cookie: x=1", "/\tpath", "/pa\x00th",
    "/pa\x7fth", " /path",
])
def test_unsafe_return_to_becomes_root(value: str | None) -> None:
    assert safe_return_to(value) == "/"


@pytest.mark.parametrize("value", ["/", "/path?q=1", "/a/b#frag", "/caf%C3%A9", "/?next=//x"])
def test_safe_return_to_is_kept(value: str) -> None:
    assert safe_return_to(value) == value


@pytest.mark.parametrize(("method", "mode", "accept", "xrw", "expected"), [
    ("GET", "navigate", None, None, True),
    ("GET", "cors", "text/html", None, False),
    ("GET", None, "text/html,application/xhtml+xml", None, True),
    ("GET", None, JSON, None, False),
    ("GET", None, None, None, False),
    ("POST", "navigate", "text/html", None, False),
    ("GET", None, "text/html", "XMLHttpRequest", False),
])
def test_is_navigation(method: str, mode: str | None, accept: str | None, xrw: str | None,
                       expected: bool) -> None:
    assert is_navigation(method, mode, accept, xrw) is expected
