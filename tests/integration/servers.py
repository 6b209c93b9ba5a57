"""Serve an ASGI app with uvicorn on 127.0.0.1 in a background thread, for integration tests."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import uvicorn
from starlette.types import ASGIApp
from waitress import wasyncore
from waitress.server import create_server

from tests.op.harness import free_port

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication


class FakeClock:
    """Real time plus an offset the test moves forward, to reach a token's grace window."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


@contextmanager
def serve(app: ASGIApp, port: int | None = None) -> Iterator[str]:
    """Run ``app`` under uvicorn (lifespan on) and yield its base URL."""
    port = port or free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                            lifespan="on", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@contextmanager
def serve_wsgi(app: WSGIApplication, port: int | None = None, threads: int = 8) -> Iterator[str]:
    """Run a WSGI ``app`` under waitress with ``threads`` worker threads; yield its base URL."""
    port = port or free_port()
    server = create_server(app, host="127.0.0.1", port=port, threads=threads,
                           connection_limit=1000)
    stop = threading.Event()

    def run() -> None:
        # Poll in short steps and close from this thread: closing sockets under another
        # thread's select() breaks it.
        while not stop.is_set():
            wasyncore.loop(timeout=0.05, map=server._map, count=1)
        server.task_dispatcher.shutdown()
        wasyncore.close_all(server._map)

    thread = threading.Thread(target=run, name=f"waitress-{port}", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop.set()
        thread.join(10)
