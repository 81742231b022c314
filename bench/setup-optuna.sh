#!/usr/bin/env bash
# Makes the Optuna environment that `npm run bench:tune` drives its baseline tuner with
# (bench/optuna_tune.py): a venv under ~/.cache/durable-sweeps/optuna-venv (never in the
# repository) with optuna from PyPI. Idempotent: does nothing when that venv already imports the
# pinned version. OPTUNA_VERSION=… picks another; SWEEPS_OPTUNA_HOME=… another folder.
set -euo pipefail
OPTUNA_VERSION="${OPTUNA_VERSION:-5.0.0}"
VENV="${SWEEPS_OPTUNA_HOME:-$HOME/.cache/durable-sweeps/optuna-venv}"
PY="$VENV/bin/python"

if [ -x "$PY" ] && [ "$("$PY" -c 'import optuna; print(optuna.__version__)' 2>/dev/null)" = "$OPTUNA_VERSION" ]; then
  echo "optuna ready: $PY (optuna $OPTUNA_VERSION)"
  exit 0
fi

command -v python3 >/dev/null || { echo "setup-optuna: python3 is not installed (Python ≥ 3.9 with venv)" >&2; exit 1; }
mkdir -p "$(dirname "$VENV")"
[ -x "$PY" ] || python3 -m venv "$VENV"
"$PY" -m pip install --quiet --disable-pip-version-check "optuna==$OPTUNA_VERSION"
echo "optuna ready: $PY (optuna $("$PY" -c 'import optuna; print(optuna.__version__)'))"
