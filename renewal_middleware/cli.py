"""The ``renewal-middleware`` command (also ``python -m renewal_middleware``).

    renewal-middleware keygen   print a new key for RENEWAL_SECRET_KEYS
    renewal-middleware check    check the RENEWAL_* settings against the provider
"""

from __future__ import annotations

import argparse
import secrets
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import TextIO

import httpx

from .config import MIN_SECRET_KEY_LENGTH, Settings
from .doctor import fail, registration
from .doctor_uris import run_checks
from .errors import ConfigurationError

#: Bytes of randomness in a generated key (43 URL-safe characters).
KEY_BYTES = 32


def new_secret_key() -> str:
    """A random key long enough for ``secret_keys`` (at least MIN_SECRET_KEY_LENGTH)."""
    key = secrets.token_urlsafe(KEY_BYTES)
    while len(key) < MIN_SECRET_KEY_LENGTH:  # only if the minimum ever grows
        key += secrets.token_urlsafe(KEY_BYTES)
    return key


def keygen(out: TextIO) -> int:
    print(new_secret_key(), file=out)
    return 0


def check(out: TextIO, environ: Mapping[str, str] | None = None) -> int:
    """Check the settings ``Settings.load()`` reads; 1 when any line is a ✗."""
    try:
        settings = Settings.load(environ)
    except ConfigurationError as exc:
        print(fail(f"configuration: {exc.message}").render(), file=out)
        return 1
    print(f"Checking client {settings.client_id} at {settings.issuer} "
          f"(timeout {settings.http_timeout_seconds:g}s)", file=out)
    with httpx.Client(timeout=settings.http_timeout_seconds, follow_redirects=False) as http:
        lines = run_checks(settings, http)
    for line in lines:
        print(line.render(), file=out)
    print(file=out)
    for text in registration(settings):
        print(text, file=out)
    failed = sum(line.status == "fail" for line in lines)
    print(f"\n{failed} problem(s) found" if failed else "\nAll checks passed", file=out)
    return 1 if failed else 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="renewal-middleware",
        description="Tools for renewal_middleware's OpenID Connect settings.")
    commands = top.add_subparsers(dest="command", required=True)
    commands.add_parser("keygen", help="print a new random key for RENEWAL_SECRET_KEYS",
                        description="Print a new random key for RENEWAL_SECRET_KEYS "
                        "(comma-separate several keys to rotate them).")
    commands.add_parser("check", help="check the RENEWAL_* settings against the provider",
                        description="Read the RENEWAL_* variables as the middleware does and "
                        "check them against the provider; exit 1 on any ✗.")
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    commands: dict[str, Callable[[TextIO], int]] = {"keygen": keygen, "check": check}
    return commands[args.command](sys.stdout)
