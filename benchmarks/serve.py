"""Serve one app of benchmarks.apps under uvicorn or waitress (started by run.py, pinned).

    python benchmarks/serve.py uvicorn renewal_encrypted PORT [--loop auto] [--http auto]
    python benchmarks/serve.py waitress wsgi_renewal_encrypted PORT [--threads 4]

The repository root goes at the END of sys.path (as in run.py), so an installed
renewal_middleware (tox) is the one served, the same one run.py mints cookies with.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("server", choices=["uvicorn", "waitress"])
    parser.add_argument("app")
    parser.add_argument("port", type=int)
    parser.add_argument("--loop", default="auto")
    parser.add_argument("--http", default="auto")
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args()

    from benchmarks import apps

    factory = getattr(apps, args.app)
    if args.server == "uvicorn":
        import uvicorn

        uvicorn.run(factory(), host="127.0.0.1", port=args.port, loop=args.loop,
                    http=args.http, workers=None, access_log=False, server_header=False,
                    date_header=True, log_level="warning", lifespan="auto")
    else:
        import waitress

        waitress.serve(factory(), listen=f"127.0.0.1:{args.port}", threads=args.threads,
                       connection_limit=200, _quiet=True)


if __name__ == "__main__":
    main()
