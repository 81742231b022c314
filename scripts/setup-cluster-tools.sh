#!/usr/bin/env bash
# Servers that the cluster and object-store tests run as real processes, built from the Go module
# proxy (the only place these machines can get them) and skipped when present (idempotent):
#   - the Temporal server v1.29.1 and its sql schema tool (the same server the CLI embeds; about
#     7 minutes cold, much less when the Temporal CLI was built first: they share the Go build cache);
#   - MinIO, an S3-compatible object store (about 5 minutes cold);
#   - optionally (--ui) the Temporal Web UI server v2.42.1 (about a minute), for a cluster you
#     want to look at; the tests do not need it.
# Binaries land in $SWEEPS_CLUSTER_TOOLS (default ~/.cache/durable-sweeps/cluster); the tests
# find them there, or at SWEEPS_TEMPORAL_SERVER, SWEEPS_TEMPORAL_SQL and SWEEPS_MINIO.
# PostgreSQL 15 comes from Debian (apt, when /usr/lib/postgresql/15/bin is missing).
set -euo pipefail

CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/durable-sweeps"
TOOLS="${SWEEPS_CLUSTER_TOOLS:-$CACHE/cluster}"
TEMPORAL_VERSION="v1.29.1"
UI_VERSION="v2.42.1"
# A pinned MinIO commit: the Go proxy serves MinIO as pseudo-versions (what "latest" was here).
MINIO_VERSION="${SWEEPS_MINIO_VERSION:-v0.0.0-20260212201848-7aac2a2c5b7c}"

log() { echo "setup-cluster-tools: $*"; }
want_ui=false
for arg in "$@"; do
  case "$arg" in
    --ui) want_ui=true ;;
    *) echo "usage: $0 [--ui]" >&2; exit 2 ;;
  esac
done

if ! command -v go >/dev/null; then
  echo "setup-cluster-tools: Go is needed to build the Temporal server and MinIO (https://go.dev/dl/)" >&2
  exit 1
fi

if [ -x /usr/lib/postgresql/15/bin/initdb ] || command -v initdb >/dev/null; then
  log "postgresql present"
else
  log "installing postgresql 15 (apt)"
  bash "$(dirname "$0")/apt-install.sh" postgresql-15
fi

server_dir="$TOOLS/temporal-$TEMPORAL_VERSION"
if [ -x "$server_dir/server" ] && [ -x "$server_dir/sql" ]; then
  log "temporal server $TEMPORAL_VERSION present in $server_dir"
else
  log "building the temporal server $TEMPORAL_VERSION and its sql tool (go install, several minutes the first time)"
  mkdir -p "$server_dir"
  GOBIN="$server_dir" go install \
    "go.temporal.io/server/cmd/server@$TEMPORAL_VERSION" \
    "go.temporal.io/server/cmd/tools/sql@$TEMPORAL_VERSION"
fi
# The sql tool's schema files live in the module itself.
schema_dir="$(go env GOMODCACHE)/go.temporal.io/server@$TEMPORAL_VERSION/schema/postgresql/v12"
if [ ! -d "$schema_dir" ]; then
  go mod download "go.temporal.io/server@$TEMPORAL_VERSION"
fi
log "temporal schema files in $schema_dir"

if [ -x "$TOOLS/minio/minio" ]; then
  log "minio present in $TOOLS/minio"
else
  log "building minio (go install, about 5 minutes the first time)"
  mkdir -p "$TOOLS/minio"
  GOBIN="$TOOLS/minio" go install "github.com/minio/minio@$MINIO_VERSION"
fi

if $want_ui; then
  if [ -x "$TOOLS/ui-$UI_VERSION/server" ]; then
    log "temporal ui-server $UI_VERSION present"
  else
    log "building the temporal ui-server $UI_VERSION (go install, about a minute)"
    mkdir -p "$TOOLS/ui-$UI_VERSION"
    GOBIN="$TOOLS/ui-$UI_VERSION" go install "github.com/temporalio/ui-server/v2/cmd/server@$UI_VERSION"
  fi
fi
