#!/usr/bin/env bash
# Starts the demo on a fresh machine: a virtualenv with the package, the local OpenID provider
# (npm oidc-provider) on 127.0.0.1:9400 and an example (default: FastAPI) on http://127.0.0.1:8000.
#   bash scripts/demo.sh [fastapi|starlette|litestar|quart|django-asgi|django-wsgi|flask]
# DEMO_PORT, DEMO_OP_PORT and DEMO_TOKEN_TTL change the ports and the access token lifetime.
set -euo pipefail
cd "$(dirname "$0")/.."
name="${1:-fastapi}"
case "$name" in
  fastapi|starlette|litestar|quart|flask) extra="$name" ;;
  django-asgi|django-wsgi) extra=django ;;
  -h|--help) extra="" ;;
  *)
    echo "demo.sh: unknown example '$name'" >&2
    echo "usage: bash scripts/demo.sh [fastapi|starlette|litestar|quart|django-asgi|django-wsgi|flask]" >&2
    exit 2 ;;
esac
[ -x .venv/bin/python ] || python3 -m venv .venv
if [ -z "$extra" ]; then
  exec .venv/bin/python examples/demo.py --help
fi
# starlette needs no extra of its own: the test extra's uvicorn and the package bring it.
if [ "$extra" = starlette ]; then spec='.[test]'; else spec=".[$extra,test]"; fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e "$spec"
(cd tests/op && npm ci --no-audit --no-fund --loglevel=error)
exec .venv/bin/python examples/demo.py "$@"
