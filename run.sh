#!/usr/bin/env bash
# Starts the SadTalker API (the pod start command). Works from any working directory. `./run.sh --help` says how.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: run.sh [--help]

Starts the SadTalker API with uvicorn on $API_HOST:$API_PORT (default 0.0.0.0:8888).

The Python environment:
  - SADTALKER_VENV unset: .venv beside run.sh, created with $PYTHON (3.10+) on first run; requirements.txt is
    installed into it, again whenever requirements.txt changes.
  - SADTALKER_VENV naming an existing environment (e.g. the legacy SadTalker app's): only requirements that are
    missing are installed; nothing installed is replaced (an installed torch is kept, with a note when it
    differs from requirements.txt).
  - SADTALKER_SKIP_INSTALL=1: no installs at all; the environment is used as it is.

Model files: SADTALKER_CHECKPOINT_DIR, else checkpoints/ beside run.sh, else ../checkpoints (the service copied
into a SadTalker install); face/GFPGAN weights also from ../gfpgan/weights, or SADTALKER_FACE_WEIGHTS_DIR.
With SADTALKER_DEVICE=auto (default) the service refuses to start when a GPU is visible but torch cannot use it;
SADTALKER_DEVICE=cpu runs on the CPU anyway.

Other variables: API_KEYS / API_KEY, API_PORT, API_HOST, API_LOG_LEVEL, SADTALKER_OUTPUT_DIR,
SADTALKER_SHUTDOWN_GRACE_S, UVICORN_ARGS (extra uvicorn arguments), PYTHON. See README.md.
EOF
}

case "${1:-}" in
  -h|--help) usage; exit 0 ;;
  "") ;;
  *) echo "run.sh: unknown argument '$1' (run.sh --help)" >&2; exit 2 ;;
esac

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="${SADTALKER_VENV:-$HERE/.venv}"
STAMP="$VENV/.requirements.sha256"

pick_python() {
  for candidate in "${PYTHON:-}" python3.12 python3.11 python3.10 python3; do
    if [ -n "$candidate" ] && command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
      echo "$candidate"
      return 0
    fi
  done
  echo "run.sh: Python 3.10 or newer is needed (set PYTHON=/path/to/python3.x)" >&2
  return 1
}

require_python_310() {
  if ! "$1" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
    echo "run.sh: $VENV runs Python $("$1" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null \
      || echo '?'); the service needs 3.10 or newer. Point SADTALKER_VENV at a 3.10+ environment or unset it" \
      "(run.sh then creates .venv). See README, \"Migrating from the legacy app\"." >&2
    exit 1
  fi
}

install_missing() {
  # An environment we did not create: add what is missing, pin everything installed so nothing is replaced.
  local work
  work="$(mktemp -d)"
  "$VENV/bin/python" "$HERE/scripts/venv_requirements.py" "$HERE/requirements.txt" "$work/missing.txt" \
    "$work/installed.txt"
  if [ -s "$work/missing.txt" ]; then
    echo "run.sh: installing into $VENV what it lacks: $(tr '\n' ' ' < "$work/missing.txt")" >&2
    "$VENV/bin/python" -m pip install --disable-pip-version-check -q -r "$work/missing.txt" -c "$work/installed.txt"
  else
    echo "run.sh: $VENV has every requirement; nothing installed" >&2
  fi
  rm -rf "$work"
}

if [ "${SADTALKER_SKIP_INSTALL:-0}" = "1" ]; then
  if [ ! -x "$VENV/bin/python" ]; then
    echo "run.sh: SADTALKER_SKIP_INSTALL=1 but $VENV/bin/python does not exist (set SADTALKER_VENV)" >&2
    exit 1
  fi
  require_python_310 "$VENV/bin/python"
  echo "run.sh: SADTALKER_SKIP_INSTALL=1: using $VENV as it is" >&2
elif [ -n "${SADTALKER_VENV:-}" ] && [ -x "$VENV/bin/python" ] && [ ! -f "$STAMP" ]; then
  require_python_310 "$VENV/bin/python"
  install_missing
else
  if [ ! -x "$VENV/bin/python" ]; then
    python_bin="$(pick_python)"
    echo "run.sh: creating the virtualenv $VENV with $python_bin" >&2
    "$python_bin" -m venv "$VENV"
  fi
  require_python_310 "$VENV/bin/python"
  wanted="$(sha256sum "$HERE/requirements.txt" | cut -d' ' -f1)"
  if [ "$(cat "$STAMP" 2>/dev/null || true)" != "$wanted" ]; then
    echo "run.sh: installing requirements.txt into $VENV" >&2
    "$VENV/bin/python" -m pip install --disable-pip-version-check -q -r "$HERE/requirements.txt"
    echo "$wanted" > "$STAMP"
  fi
fi
# shellcheck disable=SC1091
source "$VENV/bin/activate"

export API_PORT="${API_PORT:-8888}"
export API_HOST="${API_HOST:-0.0.0.0}"
export API_LOG_LEVEL="${API_LOG_LEVEL:-INFO}"
export SADTALKER_OUTPUT_DIR="${SADTALKER_OUTPUT_DIR:-$HERE/outputs/api}"
export SADTALKER_SHUTDOWN_GRACE_S="${SADTALKER_SHUTDOWN_GRACE_S:-30}"
export PYTHONUNBUFFERED=1

# On SIGTERM open requests (event streams too) get the jobs' grace plus 5 s before uvicorn closes them, so no
# client can hold the shutdown; UVICORN_ARGS comes last and wins.
grace_s="${SADTALKER_SHUTDOWN_GRACE_S%%.*}"
# shellcheck disable=SC2086
exec python -m uvicorn --factory api_app:create_app --app-dir "$HERE" \
  --host "$API_HOST" --port "$API_PORT" --timeout-graceful-shutdown "$(( ${grace_s:-0} + 5 ))" \
  ${UVICORN_ARGS:-}
