"""The demo: one of the examples behind the middleware, on a local oidc-provider.

Run ``bash scripts/demo.sh [example]`` (it installs what this needs; the default is fastapi),
then open http://127.0.0.1:8000 and log in as alice / wonderland. Access tokens live 30 s, so
renewal happens while you watch: reload the page and the expiry moves on; the provider's
refresh grants are logged. ASGI examples are served by uvicorn, WSGI ones by waitress, both in
this process. ``python examples/demo.py --help`` lists the examples and the variables.
"""

from __future__ import annotations

import importlib
import logging
import os
import secrets
import signal
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.op.harness import CLIENT_ID, CLIENT_SECRET, start_provider  # noqa: E402

#: example name -> (server, "module:attribute" of the app)
EXAMPLES: dict[str, tuple[str, str]] = {
    "fastapi": ("uvicorn", "examples.fastapi_app:app"),
    "starlette": ("uvicorn", "examples.starlette_app:app"),
    "litestar": ("uvicorn", "examples.litestar_app:app"),
    "quart": ("uvicorn", "examples.quart_app:app"),
    "django-asgi": ("uvicorn", "examples.django_app.asgi:application"),
    "django-wsgi": ("waitress", "examples.django_app.wsgi:application"),
    "flask": ("waitress", "examples.flask_app:app"),
}
DEFAULT = "fastapi"

USAGE = f"""\
usage: python examples/demo.py [EXAMPLE]   (or: bash scripts/demo.sh [EXAMPLE])

Serves one example behind the middleware on a local OpenID provider; log in as alice / wonderland.

examples: {", ".join(EXAMPLES)}   (default: {DEFAULT})
  ASGI ones are served by uvicorn, WSGI ones (flask, django-wsgi) by waitress (8 threads).

environment:
  DEMO_PORT       the example's port on 127.0.0.1 (default 8000)
  DEMO_OP_PORT    the OpenID provider's port on 127.0.0.1 (default 9400)
  DEMO_TOKEN_TTL  access token lifetime in seconds (default 30)
"""


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] in ("-h", "--help"):
        print(USAGE, end="")
        return 0
    if len(args) > 1 or (args and args[0] not in EXAMPLES):
        what = " ".join(args)
        print(f"demo.py: unknown example {what!r}; choose one of: {', '.join(EXAMPLES)}\n",
              file=sys.stderr)
        print(USAGE, end="", file=sys.stderr)
        return 2
    name = args[0] if args else DEFAULT
    server, target = EXAMPLES[name]

    app_port = int(os.environ.get("DEMO_PORT", "8000"))
    op_port = int(os.environ.get("DEMO_OP_PORT", "9400"))
    token_ttl = int(os.environ.get("DEMO_TOKEN_TTL", "30"))

    # SIGTERM ends the demo like Ctrl-C does: the servers stop, then the provider.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    with start_provider(port=op_port, access_token_ttl=token_ttl) as provider:
        os.environ.update({
            "RENEWAL_ISSUER": provider.issuer,
            "RENEWAL_CLIENT_ID": CLIENT_ID,
            "RENEWAL_CLIENT_SECRET": CLIENT_SECRET,
            "RENEWAL_SECRET_KEYS": os.environ.get("RENEWAL_SECRET_KEYS")
            or secrets.token_urlsafe(32),
            "RENEWAL_BASE_URL": f"http://127.0.0.1:{app_port}",
            "RENEWAL_GRACE_SECONDS": os.environ.get("RENEWAL_GRACE_SECONDS", "10"),
        })
        print(f"OpenID provider: {provider.issuer} (tokens live {token_ttl} s)")
        print(f"Demo app:        http://127.0.0.1:{app_port}  (log in as alice / wonderland)")
        print(f"Example:         {name} ({target}, served by {server})", flush=True)
        if server == "uvicorn":
            _serve_asgi(target, app_port)
        else:
            _serve_wsgi(target, app_port)
    return 0


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


def _serve_asgi(target: str, port: int) -> None:
    import uvicorn

    uvicorn.run(target, host="127.0.0.1", port=port, log_config=_log_config())


def _serve_wsgi(target: str, port: int) -> None:
    import waitress

    logging.basicConfig(format="%(levelname)s:     %(message)s", level=logging.WARNING)
    for logger in ("renewal_middleware", "waitress"):
        logging.getLogger(logger).setLevel(logging.INFO)
    module, _, attribute = target.partition(":")
    app = getattr(importlib.import_module(module), attribute)
    waitress.serve(app, host="127.0.0.1", port=port, threads=8)


def _log_config() -> dict[str, object]:
    import uvicorn

    config: dict[str, object] = dict(uvicorn.config.LOGGING_CONFIG)
    config["loggers"] = {
        **uvicorn.config.LOGGING_CONFIG["loggers"],
        "renewal_middleware": {"handlers": ["default"], "level": "INFO"},
    }
    return config


if __name__ == "__main__":
    sys.exit(main())
