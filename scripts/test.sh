#!/usr/bin/env bash
# The test command of the README. Works on a fresh machine: creates the virtualenv, installs the Python
# and system requirements the tests use (espeak-ng for real speech, chromium for the browser test,
# redis-server, Node packages for the BullMQ interop test), starts Redis if it is not running, then runs
# pytest. Extra arguments go to pytest (e.g. `-m "not slow"`).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=${SADTALKER_VENV:-$ROOT/.venv}

if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
# (this machine's pip config names local package folders that may be absent: drop those warnings)
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -r requirements-dev.txt \
  2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)

missing=()
command -v espeak-ng >/dev/null || missing+=(espeak-ng)
command -v chromium >/dev/null || missing+=(chromium)
command -v redis-server >/dev/null || missing+=(redis-server)
command -v node >/dev/null || missing+=(nodejs npm)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "missing system packages: ${missing[*]} (install them with apt-get)" >&2
  fi
fi

if ! (exec 3<>/dev/tcp/127.0.0.1/6379) 2>/dev/null; then
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >/dev/null
fi

node_dir=tests/dispatch/node
if [ -f $node_dir/package.json ] && { [ ! -d $node_dir/node_modules ] || [ $node_dir/package-lock.json -nt $node_dir/node_modules ]; }; then
  (cd $node_dir && npm ci --silent --no-audit --no-fund >/dev/null && touch node_modules)
fi

exec "$VENV/bin/python" -m pytest "$@"
