"""Set-Cookie headers read the way a browser keeps them (parsed by :mod:`http.cookies`)."""

from __future__ import annotations

from collections.abc import Iterable
from http.cookies import SimpleCookie


def _parsed(header: str) -> tuple[str, str, bool]:
    """``(name, value, deletes)`` of one Set-Cookie header value."""
    cookie: SimpleCookie = SimpleCookie()
    cookie.load(header)
    ((name, morsel),) = cookie.items()
    return name, morsel.value, morsel["max-age"] == "0" or not morsel.value


def set_cookie_pairs(headers: Iterable[str]) -> dict[str, str]:
    """``{name: value}`` of Set-Cookie header values, deletions included (as ``""``)."""
    return {name: value for name, value, _ in map(_parsed, headers)}


def browser_jar_after(headers: Iterable[str], jar: dict[str, str]) -> dict[str, str]:
    """What a browser holding ``jar`` keeps after these Set-Cookie headers, in order."""
    jar = dict(jar)
    for name, value, deletes in map(_parsed, headers):
        if deletes:
            jar.pop(name, None)
        else:
            jar[name] = value
    return jar
