#!/usr/bin/env bash
# Installs Debian packages (apt; sudo when not root). The setup scripts call it only for what is
# missing, so that their runs stay idempotent and quick. apt's and dpkg's chatter goes to a log
# that is printed only when the install fails.
set -euo pipefail
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
log="$(mktemp -t apt-install.XXXXXX.log)"
if ! { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq -o Dpkg::Use-Pty=0 --no-install-recommends "$@"; } >"$log" 2>&1; then
  cat "$log" >&2
  echo "apt-install: installing $* failed (the output is above)" >&2
  exit 1
fi
rm -f "$log"
echo "apt-install: installed $*"
