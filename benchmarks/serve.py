"""Serve one app of benchmarks.apps under uvicorn or waitress (started by the suite, pinned).

    python -m benchmarks.serve uvicorn renewal_encrypted PORT [--loop auto] [--http auto]
    python -m benchmarks.serve waitress wsgi_renewal_encrypted PORT [--threads 4]

Started in the repository root, like the suite (``python -m benchmarks``): both import the
source tree's renewal_middleware, so the one served is the one the cookies are minted with.
"""

from __future__ import annotations

import argparse


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
