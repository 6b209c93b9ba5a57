"""The demo: examples/fastapi_app.py behind the middleware, on a local oidc-provider.

Run ``bash scripts/demo.sh`` (it installs what this needs), then open http://127.0.0.1:8000
and log in as alice / wonderland. Access tokens live 30 s, so renewal happens while you watch:
reload the page and the expiry moves on; the provider's refresh grants are logged.
"""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path

import uvicorn

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.op.harness import CLIENT_ID, CLIENT_SECRET, start_provider  # noqa: E402

APP_PORT = int(os.environ.get("DEMO_PORT", "8000"))
OP_PORT = int(os.environ.get("DEMO_OP_PORT", "9400"))
TOKEN_TTL = int(os.environ.get("DEMO_TOKEN_TTL", "30"))


def main() -> None:
    with start_provider(port=OP_PORT, access_token_ttl=TOKEN_TTL) as provider:
        os.environ.update({
            "RENEWAL_ISSUER": provider.issuer,
            "RENEWAL_CLIENT_ID": CLIENT_ID,
            "RENEWAL_CLIENT_SECRET": CLIENT_SECRET,
            "RENEWAL_SECRET_KEYS": os.environ.get("RENEWAL_SECRET_KEYS")
            or secrets.token_urlsafe(32),
            "RENEWAL_BASE_URL": f"http://127.0.0.1:{APP_PORT}",
            "RENEWAL_GRACE_SECONDS": os.environ.get("RENEWAL_GRACE_SECONDS", "10"),
        })
        print(f"OpenID provider: {provider.issuer} (tokens live {TOKEN_TTL} s)")
        print(f"Demo app:        http://127.0.0.1:{APP_PORT}  (log in as alice / wonderland)")
        uvicorn.run("examples.fastapi_app:app", host="127.0.0.1", port=APP_PORT,
                    log_config=_log_config())


def _log_config() -> dict[str, object]:
    config: dict[str, object] = dict(uvicorn.config.LOGGING_CONFIG)
    config["loggers"] = {
        **uvicorn.config.LOGGING_CONFIG["loggers"],
        "renewal_middleware": {"handlers": ["default"], "level": "INFO"},
    }
    return config


if __name__ == "__main__":
    main()
