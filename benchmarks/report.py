"""The printed table and results.json: a header about the run, then each phase's rows (in the
order of :data:`PHASES`), then the targets every phase sets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from benchmarks import (
    cookie_bytes,
    instructions,
    memory,
    passthrough,
    provider,
    server_storage,
    side_by_side,
    storms,
)
from benchmarks.suite import ROOT, Phase

#: The phases in the order of the table (and of the targets).
PHASES: tuple[Phase, ...] = (cookie_bytes, passthrough, side_by_side, instructions, provider,
                             memory, storms, server_storage)


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    return [entry for phase in PHASES for entry in phase.targets(results)]


def header(results: dict[str, Any]) -> list[str]:
    meta = results["meta"]
    m, v, stack = meta["machine"], meta["versions"], meta["uvicorn"]
    return [
        f"renewal_middleware benchmarks ({'quick' if meta['quick'] else 'full'} run, "
        f"{meta['started_at']})",
        f"machine: {m['cpu_model']}, {m['cores']} cores, {m['memory_gib']} GiB, "
        f"Linux {m['kernel']}; servers on core 0, wrk/clients on core 1: {m['pinned']}",
        f"load average (other work on the machine): at start {meta['loadavg_start']}, "
        f"at end {meta['loadavg_end']}",
        f"python {v['python']}; renewal-middleware {v['renewal-middleware']} "
        f"(git {str(v['git_commit'])[:10]}), starlette {v['starlette']}, itsdangerous "
        f"{v['itsdangerous']}, cryptography {v['cryptography']}, authlib "
        f"{v['authlib']}, joserfc {v['joserfc']}, httpx {v['httpx']}, uvicorn "
        f"{v['uvicorn']} ({stack['loop']}/{stack['http']}), "
        f"waitress {v['waitress']}, wrk {v['wrk'].split()[1] if v['wrk'] else '?'}, "
        f"node {v['node']}, oidc-provider {v.get('oidc-provider')}",
        f"command: {meta['command']}",
        "cpu = CPU time (server: /proc/PID/schedstat; in-process: thread CPU time); "
        "cpu wait = share of the time a server was runnable that it waited for a core",
    ]


def _shown(path: Path) -> str:
    path = path.resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def table(results: dict[str, Any], output: Path) -> str:
    lines = header(results)
    for phase in PHASES:
        lines += phase.rows(results)
    lines += ["", "targets"]
    for t in results["targets"]:
        lines.append(f"  [{'met' if t['met'] else 'MISSED'}] {t['what']}: {t['value']} "
                     f"(target {t['target']})")
    lines.append(f"\nwrote {_shown(output)} in {results['meta']['seconds']:.0f} s")
    return "\n".join(lines)


def write(results: dict[str, Any], output: Path) -> None:
    output.write_text(json.dumps(results, indent=2) + "\n")
