#!/usr/bin/env bash
# Runs every test (lint, types, unit and integration on Python 3.10-3.13) on a fresh machine.
# Needs python3 and node (>= 20.18) on PATH; installs tox, the test OP's npm packages and, when
# missing, redis-server and chromium (apt-get) itself.
set -euo pipefail
cd "$(dirname "$0")/.."

if command -v pyenv >/dev/null 2>&1; then
  # Put every installed 3.10-3.13 interpreter on PATH (behind the current one), so that tox
  # finds python3.10 ... python3.13 without pyenv's shims.
  root=$(pyenv root)
  current=$(pyenv version-name 2>/dev/null | cut -d: -f1 || true)
  for v in $(pyenv versions --bare | grep -E '^3\.1[0-3]\.[0-9]+$' | sort -rV); do
    [ "$v" = "$current" ] || PATH="$PATH:$root/versions/$v/bin"
  done
  export PATH
fi
export UV_PYTHON_DOWNLOADS=never

python3 -m pip install --quiet --disable-pip-version-check "tox>=4.20" "tox-uv>=1.11"
(cd tests/op && npm ci --no-audit --no-fund --loglevel=error)
sudo=$([ "$(id -u)" = 0 ] || echo "sudo -n")
if ! command -v redis-server >/dev/null 2>&1; then  # the Redis store tests start their own
  $sudo apt-get install -y -q redis-server ||
    { $sudo apt-get update -q && $sudo apt-get install -y -q redis-server; }
fi
if [ ! -x /usr/bin/chromium ] && [ -z "${RENEWAL_CHROMIUM:-}" ]; then  # tox -e browser
  $sudo apt-get install -y -q chromium ||
    { $sudo apt-get update -q && $sudo apt-get install -y -q chromium; }
fi
exec python3 -m tox run-parallel --parallel-no-spinner --parallel auto "$@"
