"""``examples/demo.py <name>``: each example one command away against the bundled provider.

Runs the demo as ``bash scripts/demo.sh`` does (without the installs), on free ports, for each
example in :data:`tests.frameworks.test_examples.SELECTED` (``RENEWAL_EXAMPLES``; tox's
framework environments each name theirs).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO

import httpx
import pytest

from tests.frameworks.test_examples import SELECTED
from tests.op.harness import free_port

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "examples" / "demo.py"
DEMO_NAMES = ["fastapi", "starlette", "litestar", "quart", "django-asgi", "django-wsgi", "flask"]


def _wait_for_port(port: int, process: subprocess.Popen[bytes], log: IO[bytes],
                   timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log.seek(0)
            raise AssertionError(f"the demo exited with {process.returncode}:\n"
                                 + log.read().decode(errors="replace"))
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise AssertionError("the demo did not start listening")


@pytest.mark.timeout(120)
@pytest.mark.parametrize("name", [name for name in SELECTED if name in DEMO_NAMES])
def test_demo_serves_examples(name: str) -> None:
    port, op_port = free_port(), free_port()
    while op_port == port:
        op_port = free_port()
    env = {**os.environ, "DEMO_PORT": str(port), "DEMO_OP_PORT": str(op_port),
           "DEMO_TOKEN_TTL": "30"}
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen([sys.executable, str(DEMO), name], cwd=ROOT, env=env,
                                   stdout=log, stderr=log)
        try:
            _wait_for_port(port, process, log)
            base = f"http://127.0.0.1:{port}"
            page = httpx.get(base + "/", timeout=10)
            assert page.status_code == 200
            assert "text/html" in page.headers["content-type"]
            assert "Not logged in" in page.text and "/login" in page.text
            session = httpx.get(base + "/session", timeout=10)
            assert session.status_code == 200
            assert session.json()["authenticated"] is False
            login = httpx.get(base + "/login?return_to=/", timeout=10)
            assert login.status_code in (302, 303, 307)
            assert login.headers["location"].startswith(f"http://127.0.0.1:{op_port}/")
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        log.seek(0)
        output = log.read().decode(errors="replace")
    assert f"Demo app:        http://127.0.0.1:{port}" in output
    assert "alice / wonderland" in output
    # The provider went down with the demo.
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", op_port)) != 0


def test_demo_examples_unknown_name_usage() -> None:
    result = subprocess.run([sys.executable, str(DEMO), "no-such-framework"], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "unknown example 'no-such-framework'" in result.stderr
    assert "usage:" in result.stderr
    for name in DEMO_NAMES:
        assert name in result.stderr


def test_demo_examples_help_lists_variables() -> None:
    result = subprocess.run([sys.executable, str(DEMO), "--help"], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    for word in ("DEMO_PORT", "DEMO_OP_PORT", "DEMO_TOKEN_TTL", *DEMO_NAMES):
        assert word in result.stdout
