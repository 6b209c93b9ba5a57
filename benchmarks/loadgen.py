"""Server processes (pinned with taskset), wrk runs, and a minimal keep-alive HTTP/1.1 client."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
SERVER_CORE = "0"
CLIENT_CORE = "1"


#: Whether servers go on core 0 and load generators on core 1 (decided once, at import).
PIN = shutil.which("taskset") is not None and {0, 1} <= os.sched_getaffinity(0)


def can_pin() -> bool:
    return PIN


def pinned(core: str, argv: Sequence[str]) -> list[str]:
    return ["taskset", "-c", core, *argv] if can_pin() else list(argv)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def sched_times(pid: int) -> tuple[int, int]:
    """(ns on a CPU, ns runnable but waiting for one), summed over the process's threads."""
    run = wait = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "schedstat").read_text().split()
        except OSError:
            continue
        run += int(fields[0])
        wait += int(fields[1])
    return run, wait


def wait_fraction(before: tuple[int, int], after: tuple[int, int]) -> float | None:
    """Of the time the process wanted a CPU, the share it spent waiting for one."""
    run, wait = after[0] - before[0], after[1] - before[1]
    return round(wait / (run + wait), 4) if run + wait > 0 else None


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


@dataclass
class Server:
    """One server process on 127.0.0.1, pinned to the server core."""

    kind: str  # "uvicorn" or "waitress"
    app: str  # factory name in benchmarks.apps
    loop: str = "auto"
    http: str = "auto"
    threads: int = 4
    core: str = SERVER_CORE
    env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    log: Any = None

    @property
    def log_path(self) -> Path:
        """Where the server's output goes (one file per port: an app may run twice)."""
        return ROOT / "benchmarks" / f".server-{self.app}-{self.port}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def argv(self) -> list[str]:
        """The server's command; it runs in the repository root (see benchmarks.serve)."""
        serve = [sys.executable, "-m", "benchmarks.serve"]
        if self.kind == "uvicorn":
            return [*serve, "uvicorn", self.app, str(self.port),
                    "--loop", self.loop, "--http", self.http]
        return [*serve, "waitress", self.app, str(self.port), "--threads", str(self.threads)]

    def start(self) -> Server:
        env = {**os.environ, **self.env}
        self.log = open(self.log_path, "wb")  # noqa: SIM115
        self.process = subprocess.Popen(pinned(self.core, self.argv()), cwd=ROOT, env=env,
                                        stdout=self.log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.app} exited: {self.log_text()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{self.app} did not start: {self.log_text()}") from None
                time.sleep(0.05)
        return self

    def log_text(self) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text()[-2000:]
        return ""

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.process = None
        if self.log is not None:
            self.log.close()
            self.log = None
            with contextlib.suppress(OSError):
                self.log_path.unlink()


@contextlib.contextmanager
def servers(*items: Server) -> Iterator[tuple[Server, ...]]:
    """The servers, started at once (each waits for its port), and stopped at the end."""
    try:
        with ThreadPoolExecutor(max(1, len(items))) as pool:
            started = tuple(pool.map(Server.start, items))
        yield started
    finally:
        for item in items:
            item.stop()


# -- wrk --------------------------------------------------------------------------------------

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not match:
        raise ValueError(text)
    return float(match.group(1)) * _UNITS[match.group(2)]


@dataclass
class WrkResult:
    command: list[str]
    requests: int
    seconds: float
    rps: float
    non_2xx: int
    socket_errors: str | None
    latency_ms: dict[str, float]
    script_output: dict[str, str]


def wrk(url: str, *, duration: float, connections: int = 32, threads: int = 1,
        headers: Sequence[str] = (), script: str | None = None,
        script_args: Sequence[str] = ()) -> WrkResult:
    argv = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, round(duration))}s",
            "--latency"]
    for header in headers:
        argv += ["-H", header]
    if script:
        argv += ["-s", script]
    argv.append(url)
    if script_args:
        argv += ["--", *script_args]
    command = pinned(CLIENT_CORE, argv)
    shown = [a if not a.startswith("Cookie: ") else "Cookie: <session cookie>" for a in command]
    run = subprocess.run(command, capture_output=True, text=True, check=False,
                         timeout=duration + 60)
    out = run.stdout
    if run.returncode != 0:
        raise RuntimeError(f"{shown} failed ({run.returncode}): {run.stderr[-500:]}")
    total = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)", out)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not total or not rps:
        raise RuntimeError(f"cannot parse wrk output:\n{out}")
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    latency = {f"p{m.group(1)}": _ms(m.group(2))
               for m in re.finditer(r"^\s+(50|75|90|99)%\s+(\S+)", out, re.M)}
    extra = dict(re.findall(r"^BENCH (\w+)=(\S+)", out, re.M))
    return WrkResult(shown, int(total.group(1)), _ms(total.group(2) + total.group(3)) / 1e3,
                     float(rps.group(1)), int(non_2xx.group(1)) if non_2xx else 0,
                     errors.group(1) if errors else None, latency, extra)


def have_wrk() -> bool:
    return shutil.which("wrk") is not None


def wrk_version() -> str:
    result = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False)
    return (result.stdout + result.stderr).splitlines()[0].strip()


# -- checks over HTTP -------------------------------------------------------------------------


def check_session(url: str, cookie: str, expect_digest: str | None,
                  expect_set_cookie: bool = False) -> dict[str, Any]:
    """One request to ``/`` and one to ``/__bench/who``: 200 "ok", and the app sees the session."""
    with httpx.Client(trust_env=False, timeout=10) as http:
        home = http.get(url + "/", headers={"cookie": cookie})
        seen = http.get(url + "/__bench/who", headers={"cookie": cookie})
    problems = []
    if home.status_code != 200 or home.text != "ok":
        problems.append(f"GET / answered {home.status_code} {home.text[:80]!r}")
    if bool(home.headers.get_list("set-cookie")) != expect_set_cookie:
        problems.append(f"GET / set-cookie: {home.headers.get_list('set-cookie')}")
    body = seen.json() if seen.status_code == 200 else {}
    if expect_digest is not None and (not body.get("authenticated")
                                      or body.get("access_token") != expect_digest):
        problems.append(f"the app does not see the session: {body}")
    if problems:
        raise RuntimeError(f"{url}: " + "; ".join(problems))
    return body


# -- a minimal keep-alive HTTP/1.1 client (P2, P3) -----------------------------------------------


@dataclass
class Reply:
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    seconds: float

    def header_list(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k == name]


class Connection:
    """One keep-alive connection; requests are written whole and answers read by length."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 host: str) -> None:
        self.reader, self.writer, self.host = reader, writer, host

    @classmethod
    async def open(cls, port: int) -> Connection:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer, f"127.0.0.1:{port}")

    async def request(self, method: str, path: str, headers: dict[str, str] | None = None
                      ) -> Reply:
        lines = [f"{method} {path} HTTP/1.1", f"host: {self.host}", "content-length: 0"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        data = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        started = time.perf_counter()
        self.writer.write(data)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")[:-2]
        parsed = []
        for line in header_lines:
            name, _, value = line.partition(":")
            parsed.append((name.strip().lower(), value.strip()))
        length = next((int(v) for k, v in parsed if k == "content-length"), None)
        if length is None:
            raise RuntimeError(f"no content-length in answer to {path}: {head!r}")
        body = await self.reader.readexactly(length)
        return Reply(int(status_line.split()[1]), parsed, body, time.perf_counter() - started)

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 100))))
    return ordered[rank - 1]
