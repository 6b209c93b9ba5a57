#!/usr/bin/env bash
# Starts the demo on a fresh machine: a virtualenv with the package, the local OpenID provider
# (npm oidc-provider) on 127.0.0.1:9400 and the FastAPI example on http://127.0.0.1:8000.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[fastapi,test]'
(cd tests/op && npm ci --no-audit --no-fund --loglevel=error)
exec .venv/bin/python examples/demo.py
