#!/usr/bin/env bash
# Tools the report and tracking tests drive, installed from registries only and skipped when
# present (idempotent; safe to call from .ci/run on every run):
#   - Chromium (Debian apt) — the report's HTML is opened in a real headless browser;
#   - a Python venv with MLflow (a real tracking server) and TensorBoard (its own event-file
#     reader), under the user-level cache like the project's other heavy one-time installs.
# The tests find them at /usr/bin/chromium and $SWEEPS_TEST_VENV (default below).
set -euo pipefail

CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/durable-sweeps"
VENV="${SWEEPS_TEST_VENV:-$CACHE/venv}"
# Versions the tests were written against; a newer MLflow or TensorBoard may well work too.
MLFLOW_VERSION="${SWEEPS_MLFLOW_VERSION:-3.17.2}"
TENSORBOARD_VERSION="${SWEEPS_TENSORBOARD_VERSION:-2.20.0}"

log() { echo "setup-test-tools: $*"; }

if [ -x /usr/bin/chromium ]; then
  log "chromium present ($(/usr/bin/chromium --version 2>/dev/null | head -1))"
else
  log "installing chromium (apt, about 2 minutes)"
  bash "$(dirname "$0")/apt-install.sh" chromium
fi

# The live view's test drives the CLI in a pseudo-terminal.
if command -v tmux >/dev/null; then
  log "tmux present ($(tmux -V))"
else
  log "installing tmux (apt)"
  bash "$(dirname "$0")/apt-install.sh" tmux
fi

if "$VENV/bin/python" -c 'import mlflow, tensorboard' >/dev/null 2>&1; then
  log "mlflow + tensorboard present in $VENV"
else
  log "installing mlflow $MLFLOW_VERSION + tensorboard $TENSORBOARD_VERSION into $VENV (PyPI, about 3 minutes)"
  mkdir -p "$(dirname "$VENV")"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check \
    "mlflow==$MLFLOW_VERSION" "tensorboard==$TENSORBOARD_VERSION"
  "$VENV/bin/python" -c 'import mlflow, tensorboard' # fail here, not in the tests, when it did not work
fi

# The Compose specification's JSON Schema, so that tests/deploy can validate docker-compose.yml
# where no Docker engine runs. It ships in compose-go, the Go module Docker Compose loads files
# with; the Go module proxy serves it and the test reads it from the module cache. A failure here
# does not stop CI: the test then fails and says what is missing.
COMPOSE_GO_MODULE="github.com/compose-spec/compose-go/v2@v2.16.2"
if ! command -v go >/dev/null; then
  log "go not found: cannot fetch the Compose schema ($COMPOSE_GO_MODULE)"
elif [ -f "$(go env GOMODCACHE)/$COMPOSE_GO_MODULE/schema/compose-spec.json" ]; then
  log "compose schema present ($COMPOSE_GO_MODULE)"
else
  log "downloading $COMPOSE_GO_MODULE from the Go module proxy (the Compose schema)"
  (cd / && go mod download -json "$COMPOSE_GO_MODULE") >/dev/null || log "go mod download $COMPOSE_GO_MODULE failed"
fi

# Real UEA/UCR datasets for the dataset readers and a non-gestures sweep: PyPI's sktime wheel (a
# zip, 8 MB) ships JapaneseVowels, BasicMotions, ArrowHead, GunPoint and others in
# sktime/datasets/data/. Fetched once with pip (PyPI is reachable where the project is built);
# the tests read the wheel through the project's own download step, checked against this sha256.
SKTIME_VERSION="1.2.0"
SKTIME_SHA256="dbffc6731d2d683b668dceb5e2bbc5804bebc8446b4c580803a281684d90e4ae"
WHEELS="${SWEEPS_TEST_WHEELS:-$CACHE/wheels}"
SKTIME_WHEEL="$WHEELS/sktime-$SKTIME_VERSION-py3-none-any.whl"
if [ -f "$SKTIME_WHEEL" ] && echo "$SKTIME_SHA256  $SKTIME_WHEEL" | sha256sum --check --status; then
  log "sktime $SKTIME_VERSION wheel present ($SKTIME_WHEEL)"
else
  log "downloading the sktime $SKTIME_VERSION wheel from PyPI (UEA datasets for the tests, 8 MB)"
  mkdir -p "$WHEELS"
  tmp="$(mktemp -d "$WHEELS/.download-XXXXXX")"
  python3 -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
    "sktime==$SKTIME_VERSION" -d "$tmp"
  echo "$SKTIME_SHA256  $tmp/$(basename "$SKTIME_WHEEL")" | sha256sum --check --status \
    || { log "the sktime wheel's sha256 is not $SKTIME_SHA256"; rm -rf "$tmp"; exit 1; }
  mv "$tmp/$(basename "$SKTIME_WHEEL")" "$SKTIME_WHEEL"
  rm -rf "$tmp"
fi
