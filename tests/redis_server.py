"""A throwaway ``redis-server`` on 127.0.0.1 for the tests, which they may stop and restart.

    with RedisServer() as server:
        store = RedisStore(server.url, "ns")
        server.stop()    # every call fails now
        server.start()   # the same port again, empty
        server.pause()   # connections hang until server.resume()
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from types import TracebackType

HOST = "127.0.0.1"
START_TIMEOUT = 10.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def _binary() -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("the Redis store tests need redis-server on PATH: "
                           "apt-get install redis-server")
    return binary


def _answers_ping(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.5) as connection:
            connection.sendall(b"PING\r\n")
            return connection.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """``redis-server`` without persistence, in a temporary directory."""

    def __init__(self) -> None:
        self._binary = _binary()
        self.directory = tempfile.mkdtemp(prefix="renewal-redis-")
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._log = os.path.join(self.directory, "redis.log")

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """Start the server (on the port it had before, if any) and wait for its PONG."""
        if self.running:
            return
        # A port found free may be taken before the server binds it: try another then.
        attempts = 1 if self.port else 3
        for attempt in range(attempts):
            port = self.port or free_port()
            if self._launch(port):
                self.port = port
                return
            if attempt == attempts - 1:
                with open(self._log, errors="replace") as log:
                    tail = log.read()[-2000:]
                raise RuntimeError(f"redis-server did not start on {HOST}:{port}:\n{tail}")

    def _launch(self, port: int) -> bool:
        with open(self._log, "ab") as log:
            self._process = subprocess.Popen(
                [self._binary, "--port", str(port), "--bind", HOST, "--save", "",
                 "--appendonly", "no", "--dir", self.directory, "--daemonize", "no"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                break
            if _answers_ping(port):
                return True
            time.sleep(0.02)
        self.stop()
        return False

    def stop(self) -> None:
        """Stop the server (connections to it are refused until :meth:`start`)."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGCONT)  # a paused server would not act on SIGTERM
            process.terminate()
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def pause(self) -> None:
        """Freeze the server (SIGSTOP): it accepts connections but answers nothing."""
        if self._process is not None:
            self._process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self._process is not None:
            self._process.send_signal(signal.SIGCONT)

    def close(self) -> None:
        self.stop()
        with contextlib.suppress(OSError):
            shutil.rmtree(self.directory)

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()
