"""What the phases of the suite share: the plan, the sessions, the apps' labels, and the shape of
a phase module (:class:`Phase`): its sections (measurements, each a key of results.json), its
rows of the printed table and its targets."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from benchmarks import apps
from benchmarks.common import TokenFactory, TokenSet, renewal_cookie, starlette_cookies

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results.json"
LABELS = {
    "bare": "bare Starlette app",
    "asgi_layer": "pure ASGI layer (only calls the app)",
    "starlette_session": "Starlette SessionMiddleware",
    "renewal_signed": "RenewalMiddleware, signed",
    "renewal_encrypted": "RenewalMiddleware, signed+encrypted",
    "wsgi_bare": "bare WSGI app",
    "wsgi_renewal_signed": "WSGIRenewalMiddleware, signed",
    "wsgi_renewal_encrypted": "WSGIRenewalMiddleware, signed+encrypted",
}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def loadavg() -> list[float]:
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


def plan(quick: bool) -> dict[str, Any]:
    if quick:
        return dict(wrk_seconds=1, wrk_warmup=1, rounds=3, connections=32,
                    inproc_n=2_000, inproc_repeats=2, many_sessions=300, many_n=1_000,
                    many_repeats=2, p5_sessions=300, p5_requests=5_000, p5_warmup=1,
                    p5_phase=1, p5_min_warmup_passes=2, storm=200, renewals=4, advance=16,
                    instr_requests=(200, 600), side_trials=2, side_seconds=1)
    return dict(wrk_seconds=5, wrk_warmup=2, rounds=5, connections=32,
                inproc_n=50_000, inproc_repeats=5, many_sessions=5_000, many_n=10_000,
                many_repeats=3, p5_sessions=5_000, p5_requests=100_000, p5_warmup=8,
                p5_phase=8, p5_min_warmup_passes=4, storm=200, renewals=20, advance=16,
                instr_requests=(1_000, 3_000), side_trials=6, side_seconds=4)


def pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def target(what: str, goal: str, value: Any, met: bool) -> dict[str, Any]:
    """One entry of results.json's ``targets``."""
    return {"what": what, "target": goal, "value": value, "met": met}


class Cookies:
    """The token sets and every app's cookie for them."""

    def __init__(self, many: int) -> None:
        started = time.perf_counter()
        self.factory = TokenFactory()
        now = int(time.time())
        first = self.factory.token_set(0, now)
        # Every session has its own access and refresh token; the ID token (read only at
        # logout) is shared, as RSA signing is the slow part of minting.
        self.sets: list[TokenSet] = [first] + [
            self.factory.token_set(i, now, id_token=first.id_token) for i in range(1, many)]
        self.tokens = first
        # Minting instances: same settings (and keys) as the apps the benchmarks serve.
        self.minters = {"signed": apps.renewal_signed(), "encrypted": apps.renewal_encrypted()}
        self.renewal = {kind: [renewal_cookie(mw, ts, now) for ts in self.sets]
                        for kind, mw in self.minters.items()}
        self.starlette = starlette_cookies(self.sets)
        self.seconds = time.perf_counter() - started

    def header(self, app: str, index: int = 0) -> str:
        """The Cookie header each app gets; the bare apps get the encrypted session's."""
        if app == "starlette_session":
            return self.starlette[index][0]
        kind = "signed" if app.endswith("_signed") else "encrypted"
        return self.renewal[kind][index][0]

    def digest(self, app: str, index: int = 0) -> str | None:
        if app in ("bare", "asgi_layer", "wsgi_bare"):
            return None
        return apps._digest(self.sets[index].access_token)


@dataclass(frozen=True)
class Context:
    """What every section gets: the plan, uvicorn's loop/http, the sessions."""

    cfg: dict[str, Any]
    stack: dict[str, str]
    cookies: Cookies


@dataclass(frozen=True)
class Section:
    """One measurement: its key in results.json and what computes its value."""

    key: str
    run: Callable[[Context], dict[str, Any]]
    #: Logged when it starts, and the load average taken when it ends (loadavg_by_section).
    logged: bool = True


class Phase(Protocol):
    """A phase module: its sections, then its rows of the table and its targets, both read
    from the whole results (a phase's rows may show another's figures)."""

    SECTIONS: tuple[Section, ...]

    def rows(self, results: dict[str, Any]) -> list[str]: ...

    def targets(self, results: dict[str, Any]) -> list[dict[str, Any]]: ...
