#!/usr/bin/env bash
# Starts the SadTalker API (the pod start command). Works from any working directory:
#   - activates $SADTALKER_VENV (default: .venv beside this script), creating it and installing
#     requirements.txt when it is missing or requirements.txt changed since the last install;
#   - exports defaults for the variables below (any already set wins);
#   - runs uvicorn on $API_PORT (default 8888) with extra $UVICORN_ARGS.
set -euo pipefail

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

if [ ! -x "$VENV/bin/python" ]; then
  python_bin="$(pick_python)"
  echo "run.sh: creating the virtualenv $VENV with $python_bin" >&2
  "$python_bin" -m venv "$VENV"
fi
wanted="$(sha256sum "$HERE/requirements.txt" | cut -d' ' -f1)"
if [ "$(cat "$STAMP" 2>/dev/null || true)" != "$wanted" ]; then
  echo "run.sh: installing requirements.txt into $VENV" >&2
  "$VENV/bin/python" -m pip install --disable-pip-version-check -q -r "$HERE/requirements.txt"
  echo "$wanted" > "$STAMP"
fi
# shellcheck disable=SC1091
source "$VENV/bin/activate"

export API_PORT="${API_PORT:-8888}"
export API_HOST="${API_HOST:-0.0.0.0}"
export API_LOG_LEVEL="${API_LOG_LEVEL:-INFO}"
export SADTALKER_CHECKPOINT_DIR="${SADTALKER_CHECKPOINT_DIR:-$HERE/checkpoints}"
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
