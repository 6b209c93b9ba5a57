"""Calling the apps directly: µs per request with a minimal ASGI / WSGI driver."""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Callable, Iterable
from typing import Any

from starlette.types import Message

from benchmarks.common import http_scope, wsgi_environ

HEADERS = [(b"host", b"127.0.0.1:8000"), (b"user-agent", b"wrk"), (b"accept", b"*/*")]


def asgi_template(cookie: str | None) -> dict[str, Any]:
    headers = list(HEADERS)
    if cookie is not None:
        headers.append((b"cookie", cookie.encode("latin-1")))
    return http_scope("/", headers)


async def _receive() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


async def asgi_once(app: Any, template: dict[str, Any]) -> tuple[dict[str, Any], list[Message]]:
    """One call, keeping the scope and the messages (for checks)."""
    messages: list[Message] = []

    async def send(message: Message) -> None:
        messages.append(message)

    scope = dict(template)
    await app(scope, _receive, send)
    return scope, messages


async def _asgi_loop(app: Any, templates: list[dict[str, Any]], n: int) -> tuple[float, float]:
    """(wall, CPU) seconds per call; the requests cycle through ``templates`` (one per session).

    CPU is this thread's CPU time: unlike wall time it does not count the time the
    thread waited for a core, so other work on the machine barely moves it.
    """

    async def send(message: Message) -> None:
        pass

    receive = _receive
    count = len(templates)
    cpu, started = time.thread_time(), time.perf_counter()
    for i in range(n):
        await app(dict(templates[i % count]), receive, send)
    return (time.perf_counter() - started) / n, (time.thread_time() - cpu) / n


def asgi_us(apps: dict[str, tuple[Any, list[dict[str, Any]]]], n: int, repeats: int
            ) -> dict[str, dict[str, Any]]:
    """µs per call of each app, apps alternated, ``repeats`` times; best and all runs."""
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name in apps}

    async def main() -> None:
        for app, templates in apps.values():  # warm-up: every session seen once
            await _asgi_loop(app, templates, max(100, n // 20, len(templates)))
        for _ in range(repeats):
            for name, (app, templates) in apps.items():
                gc.collect()
                runs[name].append(await _asgi_loop(app, templates, n))

    asyncio.run(main())
    return summarize(runs)


def summarize(runs: dict[str, list[tuple[float, float]]]) -> dict[str, dict[str, Any]]:
    return {name: {"cpu_us": round(min(c for _, c in values) * 1e6, 3),
                   "wall_us": round(min(w for w, _ in values) * 1e6, 3),
                   "cpu_us_runs": [round(c * 1e6, 3) for _, c in values],
                   "wall_us_runs": [round(w * 1e6, 3) for w, _ in values]}
            for name, values in runs.items()}


def _start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None
                    ) -> Callable[[bytes], object]:
    return _write


def _write(data: bytes) -> object:
    return None


def wsgi_once(app: Any, cookie: str | None, path: str = "/"
              ) -> tuple[dict[str, Any], str, list[tuple[str, str]], bytes]:
    seen: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None
                       ) -> Callable[[bytes], object]:
        seen["status"], seen["headers"] = status, headers
        return _write

    environ = wsgi_environ(path, cookie)
    body = b"".join(app(environ, start_response))
    return environ, seen["status"], seen["headers"], body


def _wsgi_loop(app: Any, templates: list[dict[str, Any]], n: int) -> tuple[float, float]:
    start_response = _start_response
    count = len(templates)
    cpu, started = time.thread_time(), time.perf_counter()
    for i in range(n):
        result: Iterable[bytes] = app(dict(templates[i % count]), start_response)
        for _chunk in result:
            pass
        close = getattr(result, "close", None)
        if close is not None:
            close()
    return (time.perf_counter() - started) / n, (time.thread_time() - cpu) / n


def wsgi_us(apps: dict[str, tuple[Any, list[dict[str, Any]]]], n: int, repeats: int
            ) -> dict[str, dict[str, Any]]:
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name in apps}
    for app, templates in apps.values():
        _wsgi_loop(app, templates, max(100, n // 20, len(templates)))
    for _ in range(repeats):
        for name, (app, templates) in apps.items():
            gc.collect()
            runs[name].append(_wsgi_loop(app, templates, n))
    return summarize(runs)


def wsgi_template(cookie: str | None) -> dict[str, Any]:
    return wsgi_environ("/", cookie)
