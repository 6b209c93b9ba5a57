"""One setting's value: converters from a keyword argument or a ``RENEWAL_*`` string, the
checks they share, and :class:`Secret`. Each failure names the setting and its variable."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from .errors import ConfigurationError

#: Plain http is accepted on these hosts only (local development).
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


class Secret:
    """A string that does not show itself in reprs, logs or tracebacks."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def env_name(field: str) -> str:
    return f"RENEWAL_{field.upper()}"


def fail(name: str, why: str) -> None:
    raise ConfigurationError(f"setting {name!r} ({env_name(name)}) {why}")


def check_url(name: str, value: str) -> None:
    parts = urlsplit(value)
    scheme = parts.scheme.lower()
    if scheme == "https" and parts.hostname:
        return
    if scheme == "http" and parts.hostname in LOOPBACK_HOSTS:
        return  # plain http only for local development
    fail(name, f"must be an https URL (http only on 127.0.0.1/localhost), got {value!r}")


def as_str(name: str, raw: Any) -> str:
    if not isinstance(raw, str):
        fail(name, f"must be a string, got {type(raw).__name__}")
    return str(raw)


def as_int(name: str, raw: Any) -> int:
    if isinstance(raw, bool):
        fail(name, "must be an integer")
    try:
        return int(raw)
    except (TypeError, ValueError):
        fail(name, f"must be an integer, got {raw!r}")
        raise  # unreachable; keeps type checkers content


def as_float(name: str, raw: Any) -> float:
    try:
        return float(raw)
    except (TypeError, ValueError):
        fail(name, f"must be a number, got {raw!r}")
        raise


def as_bool(name: str, raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    value = as_str(name, raw).strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    fail(name, f"must be true or false, got {raw!r}")
    raise AssertionError  # unreachable


def as_secret(name: str, raw: Any) -> Secret:
    if isinstance(raw, Secret):
        return raw
    return Secret(as_str(name, raw))


def as_secret_keys(name: str, raw: Any) -> tuple[Secret, ...]:
    if isinstance(raw, Secret):
        raw = [raw]
    items = raw.split(",") if isinstance(raw, str) else list(raw)
    keys = tuple(as_secret(name, item.strip() if isinstance(item, str) else item)
                 for item in items)
    return tuple(k for k in keys if k.reveal())


def as_optional_str(name: str, raw: Any) -> str | None:
    return as_str(name, raw) or None


def choice(*options: str) -> Callable[[str, Any], str]:
    def convert(name: str, raw: Any) -> str:
        value = as_str(name, raw).lower()
        if value not in options:
            fail(name, f"must be one of {', '.join(options)}, got {raw!r}")
        return value

    return convert
