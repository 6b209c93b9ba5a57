"""What results.json records about a run: the machine, every version, the git commit, the command
and uvicorn's loop/http."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks import loadgen
from benchmarks.suite import ROOT, loadavg


def machine() -> dict[str, Any]:
    model = next((line.split(":", 1)[1].strip()
                  for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())
    mem = next((int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                if line.startswith("MemTotal:")), 0)
    return {"cpu_model": model, "cores": os.cpu_count(),
            "affinity_at_start": sorted(os.sched_getaffinity(0)),
            "memory_gib": round(mem / 2**20, 1), "kernel": platform.release(),
            "platform": platform.platform(), "pinned": loadgen.can_pin()}


def _git(*args: str) -> str:
    run = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True,
                         check=False)
    return run.stdout.strip()


def versions() -> dict[str, Any]:
    out: dict[str, Any] = {"python": sys.version.split()[0],
                           "implementation": platform.python_implementation()}
    for name in ("renewal-middleware", "starlette", "itsdangerous", "cryptography", "authlib",
                 "joserfc", "httpx", "uvicorn", "uvloop", "httptools", "h11", "waitress"):
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    import renewal_middleware

    out["renewal_middleware_path"] = str(Path(renewal_middleware.__file__).parent)
    out["wrk"] = loadgen.wrk_version()
    node = subprocess.run(["node", "--version"], capture_output=True, text=True, check=False)
    out["node"] = node.stdout.strip() or None
    package = ROOT / "tests" / "op" / "node_modules" / "oidc-provider" / "package.json"
    if package.exists():
        out["oidc-provider"] = json.loads(package.read_text()).get("version")
    out["git_commit"] = _git("rev-parse", "HEAD") or None
    out["package_source_modified"] = bool(_git("status", "--porcelain", "--",
                                               "renewal_middleware"))
    return out


def server_stack(loop: str, http: str) -> dict[str, str]:
    have_uvloop = importlib.util.find_spec("uvloop") is not None
    have_httptools = importlib.util.find_spec("httptools") is not None
    return {"loop": ("uvloop" if have_uvloop else "asyncio") if loop == "auto" else loop,
            "http": ("httptools" if have_httptools else "h11") if http == "auto" else http}


def command() -> str:
    """How this run was started, as one would type it again."""
    shown = " ".join(shlex.quote(a) for a in ["python", "-m", "benchmarks", *sys.argv[1:]])
    if os.environ.get("TOX_ENV_NAME"):
        return f"tox -e {os.environ['TOX_ENV_NAME']} (runs: {shown})"
    return shown


def describe(quick: bool, cfg: dict[str, Any], stack: dict[str, str]) -> dict[str, Any]:
    """results.json's ``meta`` at the start of a run; the run adds its timings."""
    return {"quick": quick, "command": command(), "argv": sys.argv,
            "executable": sys.executable, "cwd": os.getcwd(),
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "machine": machine(), "versions": versions(), "uvicorn": stack,
            "plan": cfg, "loadavg_start": loadavg(), "loadavg_by_section": {}}
