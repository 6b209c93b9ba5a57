"""Examples served by several worker processes, with the worker that answered each request.

Each process prefixes its log lines with ``pid <N>``; :meth:`Server.answering_pids` reads the
access lines of ``GET /api/me`` back, so a test can tell how its requests spread over the
processes. ``{port}``, ``{workers}`` and ``{config}`` in a command are filled in by
:func:`serve`; ``{config}`` is a file it writes next to the server's log.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from tests.frameworks.examples import FRAMEWORK
from tests.op.harness import free_port

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class WorkerServer:
    """A server that forks workers: its package, its command, its configuration file, and the
    line each of its workers logs once it takes requests."""

    package: str
    command: list[str]
    config_name: str
    config_text: str
    ready_line: str


#: Every line a process logs starts with its pid; gunicorn's loggers lose their own handlers.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"pid": {"format": "pid <%(process)d> %(message)s"}},
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "pid",
                            "stream": "ext://sys.stderr"}},
    "root": {"level": "INFO", "handlers": ["stderr"]},
    "loggers": {name: {"handlers": [], "propagate": True}
                for name in ("gunicorn.error", "gunicorn.access")},
}

UVICORN = WorkerServer(
    package="uvicorn",
    command=[sys.executable, "-m", "uvicorn", "--host", "127.0.0.1", "--port", "{port}",
             "--workers", "{workers}", "--log-config", "{config}",
             "--timeout-graceful-shutdown", "5",
             # Longer than a test sleeps between bursts: an idle keep-alive connection closed
             # by the server just as the client reuses it is a ReadError, not what we test.
             "--timeout-keep-alive", "60"],
    config_name="logging.json",
    config_text=json.dumps(LOGGING),
    ready_line="Application startup complete.",
)

# Sync workers load the app after "Booting worker", hence the hook. Older versions of gunicorn
# ignore the names they do not know.
_GUNICORN_CONFIG = f"""\
logconfig_dict = {LOGGING!r}
access_log_format = '"%(r)s" %(s)s'
control_socket_disable = True  # else gunicorn >= 25.1 opens one in $HOME, shared by all


def post_worker_init(worker):
    worker.log.info("worker ready")
"""

GUNICORN = WorkerServer(
    package="gunicorn",  # not on Windows
    command=[sys.executable, "-m", "gunicorn", "--bind", "127.0.0.1:{port}",
             "--workers", "{workers}", "--config", "{config}", "--graceful-timeout", "5"],
    config_name="gunicorn.conf.py",
    config_text=_GUNICORN_CONFIG,
    ready_line="worker ready",
)

#: example name -> (server, application)
WORKER_EXAMPLES: dict[str, tuple[WorkerServer, str]] = {
    "fastapi": (UVICORN, "examples.fastapi_app:app"),
    "flask": (GUNICORN, "examples.flask_app:app"),
}

_ACCESS_LINE = re.compile(rb'^pid <(\d+)> .*"GET /api/me HTTP/1\.1"', re.MULTILINE)
_ACCESS_LINE_WITH_END = re.compile(_ACCESS_LINE.pattern + rb".*\n", re.MULTILINE)


def _installed(package: str) -> bool:
    return importlib.util.find_spec(package) is not None


def selected_examples() -> list[str]:
    """The examples of :data:`WORKER_EXAMPLES` to run: those named in ``RENEWAL_EXAMPLES``
    (comma-separated), or by default those whose framework is installed; of either, those
    whose server is installed."""
    named = [name.strip() for name in os.environ.get("RENEWAL_EXAMPLES", "").split(",")
             if name.strip()]
    chosen = named or [name for name in WORKER_EXAMPLES if _installed(FRAMEWORK[name])]
    return [name for name in chosen
            if name in WORKER_EXAMPLES and _installed(WORKER_EXAMPLES[name][0].package)]


class Server:
    """A running example: its URL and everything its processes wrote."""

    def __init__(self, port: int, process: subprocess.Popen[bytes], log: Path) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.process = process
        self.log = log

    def output(self, since: int = 0) -> bytes:
        with self.log.open("rb") as file:
            file.seek(since)
            return file.read()

    def mark(self) -> int:
        """A position in the output; pass it as ``since`` to read what comes after."""
        return self.log.stat().st_size

    def tail(self, chars: int = 4000) -> str:
        """The end of the output but its ``GET /api/me`` access lines, for assertion messages."""
        text = _ACCESS_LINE_WITH_END.sub(b"", self.output()).decode(errors="replace")[-chars:]
        return f"\n--- server output, less /api/me access lines ---\n{text}"

    def answering_pids(self, since: int, requests: int, timeout: float = 5) -> Counter[int]:
        """Worker pid -> how many ``GET /api/me`` it logged after ``since``, once ``requests``
        were logged (a worker may log a request just after its client has the response) or
        ``timeout`` seconds have passed."""
        deadline = time.monotonic() + timeout
        while True:
            pids = Counter(int(pid) for pid in _ACCESS_LINE.findall(self.output(since)))
            if pids.total() >= requests or time.monotonic() > deadline:
                return pids
            time.sleep(0.02)

    def wait_until_ready(self, workers: int, ready_line: str, timeout: float = 30) -> None:
        """Wait until ``workers`` processes logged ``ready_line`` and the port accepts."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited with {self.process.returncode}"
                                   + self.tail())
            if self.output().count(ready_line.encode()) >= workers:
                with socket.socket() as probe:
                    if probe.connect_ex(("127.0.0.1", self.port)) == 0:
                        return
            time.sleep(0.05)
        raise RuntimeError(f"{workers} workers did not get ready in {timeout} s" + self.tail())

    def stop(self) -> None:
        """SIGTERM to the master, which stops its workers; SIGKILL to all of them if that
        takes more than 10 s."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def _fill(part: str, values: Mapping[str, str]) -> str:
    for placeholder, value in values.items():
        part = part.replace(placeholder, value)
    return part


@contextlib.contextmanager
def serve(name: str, environ: Mapping[str, str], directory: Path,
          workers: int = 4) -> Iterator[Server]:
    """Serve the example ``name`` on 127.0.0.1 with ``workers`` processes and the ``RENEWAL_*``
    variables of ``environ``; its output and configuration go to ``directory``."""
    server_kind, application = WORKER_EXAMPLES[name]
    port = free_port()
    config = directory / server_kind.config_name
    config.write_text(server_kind.config_text)
    values = {"{port}": str(port), "{workers}": str(workers), "{config}": str(config)}
    command = [_fill(part, values) for part in server_kind.command] + [application]
    env = {**os.environ, **environ, "RENEWAL_BASE_URL": f"http://127.0.0.1:{port}",
           "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    log = directory / "server.log"
    with log.open("wb") as output:
        # A session of its own: the workers can be killed with their master, by its pid.
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=output, stderr=output,
                                   start_new_session=True)
    server = Server(port, process, log)
    try:
        server.wait_until_ready(workers, server_kind.ready_line)
        yield server
    finally:
        server.stop()
